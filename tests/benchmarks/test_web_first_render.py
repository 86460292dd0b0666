"""benchmarks/web/first_render.py: writes a site of synthetic entries with llem's own export,
serves it and reads the page's first-render mark in Chromium (a small run; nothing is timed here)."""
import json
from pathlib import Path

import pytest

from tests.conftest import load_benchmark
from tests.web.conftest import chromium_path, require


def test_synthetic_studies_go_through_the_real_export(tmp_path):
    mod = load_benchmark("first_render")
    info = mod.write_site(tmp_path, studies=3, entries=31)
    assert info["entries"] == 31 and info["studies"] == 3
    index = json.loads((tmp_path / "data" / "index.json").read_text())
    docs = [json.loads((tmp_path / "data" / s["file"]).read_text()) for s in index["studies"]]
    assert sorted(len(d["entries"]) for d in docs) == [10, 10, 11]
    entries = [e for d in docs for e in d["entries"]]
    assert all(e["synthetic"] and e["synthetic_reason"] for e in entries)  # labelled, never passed off as measured
    assert (tmp_path / "index.html").is_file()


@pytest.mark.parametrize("argv, says", [
    (["--studies", "0"], "--studies=0: 1 or more"),
    (["--entries", "3", "--studies", "5"], "--entries=3: at least --studies (5)"),
    (["--runs", "0"], "--runs=0: 1 or more"),
    (["--chromium", "/nonexistent/chromium"], "--chromium='/nonexistent/chromium': no such file"),
])
def test_bad_input_exits_2(capsys, argv, says):
    mod = load_benchmark("first_render")
    with pytest.raises(SystemExit) as e:
        mod.main(argv)
    assert e.value.code == 2 and says in capsys.readouterr().err


def test_a_small_run_reports_the_first_render_of_every_row(tmp_path):
    require(Path(chromium_path()).is_file(), "needs Chromium (Debian: apt-get install chromium)")
    mod = load_benchmark("first_render")
    out = tmp_path / "r.json"
    assert mod.main(["--entries", "40", "--studies", "2", "--runs", "1", "--chromium", chromium_path(),
                     "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["entries"] == 40 and r["studies"] == 2 and len(r["runs"]) == 1
    run = r["runs"][0]
    assert run["first_render_ms"] > 0 and run["rows_on_page"] == 40 and "of 40 entries" in run["count_text"]
    assert r["first_render_ms"]["max"] == run["first_render_ms"]
