"""`llem results site` as a user types it: the site's files, bad input (exit 2, nothing written),
adding studies to a site, and --serve on 127.0.0.1 (no browser here: tests/web/ drives one)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import LLEM, run_llem, wait_for
from tests.results.results_fixtures import make_study, write_real_job


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("site-study"))


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    return write_real_job(tmp_path_factory.mktemp("site-job"))


def _files(d: Path) -> list[str]:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())


def test_site_holds_the_front_end_and_every_study(study, job, tmp_path):
    out = tmp_path / "site"
    r = run_llem(["results", "site", str(study), str(job), "--out", str(out), "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out)
    files = _files(out)
    assert "index.html" in files and any(f.startswith("assets/") and f.endswith(".js") for f in files)
    index = json.loads((out / "data" / "index.json").read_text())
    assert index["schema"] == "llem.leaderboard.index" and len(index["studies"]) == 2
    for s in index["studies"]:
        doc = json.loads((out / "data" / s["file"]).read_text())
        for e in doc["entries"]:
            assert (out / "data" / e["detail"]).is_file()
    html = (out / "index.html").read_text()
    assert 'name="llem-data-url" content="data/index.json"' in html
    assert "Content-Security-Policy" in html and "connect-src &#39;self&#39;" in html
    # exporting another study into the same site adds it; the front end is replaced, not duplicated
    other = make_study(tmp_path / "more", name="second-study", extra_jobs=False, timeseries=False)
    r = run_llem(["results", "site", str(other), "--out", str(out), "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(json.loads((out / "data" / "index.json").read_text())["studies"]) == 3
    assert len([f for f in _files(out) if f.startswith("assets/") and f.endswith(".css")]) == 1


@pytest.mark.parametrize("args, says", [
    (["missing-dir", "--out", "site"], "DIR: 'missing-dir' does not exist"),
    (["{study}"], "--out: give the site directory (or --serve"),
    (["{study}", "--out", "{file}"], "is a file"),
    (["{study}", "--out", "{busy}"], "holds other files and no llem site"),
    (["{study}", "--serve", "--port", "70000"], "--port: 70000 is not a port"),
    # known only once both are read (-q: without the progress lines of reading them)
    (["{study}", "{study_copy}", "--out", "site", "-q"], "would both be study"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(study, tmp_path, args, says):
    import shutil

    (tmp_path / "afile").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    before = _files(tmp_path)
    fill = {"study": str(study), "file": str(tmp_path / "afile"), "busy": str(tmp_path / "busy"),
            "study_copy": str(copy)}
    r = run_llem(["results", "site", *[a.format(**fill) for a in args]], cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in r.stderr
    assert _files(tmp_path) == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, "", ""


def test_serve_prints_the_url_serves_the_site_and_cleans_up(study, tmp_path):
    port = _free_port()
    p = subprocess.Popen([LLEM, "results", "site", str(study), "--serve", "--port", str(port), "-q"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        lines = []
        assert wait_for(lambda: lines.append(p.stdout.readline()) or "http://" in lines[-1] or p.poll() is not None)
        serving = lines[-1]
        assert serving.startswith("serving ") and f"http://127.0.0.1:{port}/" in serving, (lines, p.stderr.read())
        site = Path(serving.split()[1])
        assert site.is_dir()  # without --out: a temporary folder, removed when the server stops
        url = f"http://127.0.0.1:{port}/"
        status, ctype, body = _get(url)
        assert status == 200 and ctype.startswith("text/html") and 'id="root"' in body
        js = next(f for f in _files(site) if f.endswith(".js"))
        status, ctype, _ = _get(url + js)
        assert status == 200 and ctype.startswith("text/javascript")  # module scripts need a JS type
        status, ctype, body = _get(url + "data/index.json")
        assert status == 200 and ctype.startswith("application/json") and json.loads(body)["studies"]
        assert _get(url + "data/")[0] == 404  # no directory listings
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
    assert rc == 0
    assert not site.exists()


def test_serve_on_a_busy_port_exits_2_before_writing(study, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = tmp_path / "site"
        r = run_llem(["results", "site", str(study), "--out", str(out), "--serve", "--port", str(port)], cwd=tmp_path)
    assert r.returncode == 2 and f"--port: cannot listen on 127.0.0.1:{port}" in r.stderr
    assert not out.exists()
