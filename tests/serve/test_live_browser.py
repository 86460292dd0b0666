"""The web page in a real browser (Playwright driving Debian's Chromium).

1. ``llem serve``, then ``llem results push STUDY --to URL``: the study shows on the page, its
   leaderboard table lists every job, and a study name made of HTML shows as text.
2. A real study (built-in tiny model, llem's simulated NVML as the GPU *test double*, the fastest
   protocol) runs with ``--live URL``: it appears on the page with its job statuses changing as the
   jobs run, and the GPU power read beside the running job. The server is killed (SIGKILL) while a
   job runs: the study goes on, every job's result is on disk; a server started again on the same
   address and database is found by the study and the page, which ends with every job completed.

Chromium comes from Debian's package (scripts/test.sh installs it as root); without it these tests
are skipped with the reason, except under CI, where that is a failure (the ``browser`` and
``serve`` fixtures are in conftest.py).
"""
import json
import os
import shutil
import subprocess
import time
from collections import defaultdict

import pytest

from llem.cli.main import main
from tests.conftest import LLEM
from tests.serve.conftest import ServerThread
from tests.study.conftest import TINY


def test_a_pushed_study_shows_on_the_page_as_text(browser, serve, study_dir, tmp_path, monkeypatch, capsys):
    token = serve.token("alice")
    serve.start()
    hostile = tmp_path / "hostile"
    shutil.copytree(study_dir, hostile)
    name = '<img src=x onerror="window.__pwned=1">study'
    m = json.loads((hostile / "manifest.json").read_text())
    m["study_name"] = name
    (hostile / "manifest.json").write_text(json.dumps(m))
    monkeypatch.setenv("LLEM_API_TOKEN", token)
    assert main(["results", "push", str(hostile), "--to", serve.url, "-q"]) == 0
    assert capsys.readouterr().out.startswith("stored: ")

    page = browser.new_page()
    page.goto(serve.url + "/")
    card = page.locator("details[data-study-id]")
    card.wait_for(timeout=60_000)
    assert page.locator("details[data-study-id] summary strong").text_content() == name
    assert "unverified upload" in card.text_content()
    card.locator("summary").click()
    rows = card.locator("tr[data-job-id]")
    # locators, not wait_for_function: the page's CSP forbids the eval that one would need
    rows.first.wait_for(timeout=60_000)
    assert rows.count() == len(m["jobs"])
    ranked = card.locator("tr[data-job-id]").first.text_content()
    assert "J/token" in ranked
    assert page.evaluate("window.__pwned") is None and page.locator("main img").count() == 0
    page.close()


STATUSES = """name => {
  const card = [...document.querySelectorAll('[data-live-name]')].find(c => c.dataset.liveName === name);
  if (!card) return null;
  const out = {};
  for (const tr of card.querySelectorAll('tr[data-job-id]')) out[tr.dataset.jobId] = tr.querySelector('.status').textContent;
  const w = card.querySelector('.power-w');
  return {jobs: out, power: w ? w.textContent : null, conn: document.getElementById('conn').textContent};
}"""


@pytest.mark.slow
def test_a_live_study_updates_the_page_and_outlives_its_server(browser, serve, tmp_path):
    from tests.devices.sim import gpu

    from llem.devices.simulated import write_spec

    token = serve.token("alice")
    serve.start()
    spec = write_spec(tmp_path / "nvml.json", [gpu(0, power_w=150.0, counter_period_ms=20)])
    study = tmp_path / "study"
    name = "live-browser-study"
    err_path = tmp_path / "study.err"
    env = {**os.environ, "LLEM_API_TOKEN": token, "LLEM_SIMULATED_NVML": str(spec)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    page = browser.new_page()
    page.goto(serve.url + "/")
    page.locator("#conn.ok").wait_for(timeout=60_000)
    proc = subprocess.Popen([LLEM, "run", "-m", "batch=1,2,3", *TINY, "energy=nvml",
                             "measurement.quantisation_target=0.1", f"hydra.sweep.dir={study}",
                             f"hydra.sweeper.study_name={name}", "--live", serve.url],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=err_path.open("w"), text=True)
    history = defaultdict(list)
    power_seen, lost_seen = [], []
    backup = None
    deadline = time.monotonic() + 900
    try:
        while time.monotonic() < deadline:
            seen = page.evaluate(STATUSES, name)
            if seen:
                for job, status in seen["jobs"].items():
                    if not history[job] or history[job][-1] != status:
                        history[job].append(status)
                if seen["power"]:
                    power_seen.append(seen["power"])
                if "lost" in seen["conn"]:
                    lost_seen.append(seen["conn"])
                if serve.proc.poll() is None and backup is None and seen["jobs"].get("0001") == "running":
                    serve.kill()  # the server dies mid-study
                if serve.proc.poll() is not None and backup is None and "is unreachable" in err_path.read_text():
                    # the study noticed and went on; a server comes back on the same address and database
                    backup = ServerThread(serve.db_url, port=serve.port).start()
                if proc.poll() is not None and set(seen["jobs"].values()) == {"completed"}:
                    break
            time.sleep(0.1)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        if backup is not None:
            backup.stop()
        page.close()
    err = err_path.read_text()
    assert proc.returncode == 0, err[-3000:]
    assert backup is not None, f"the server was never killed mid-study: {dict(history)}"
    # the page followed the jobs: pending, then running, then completed
    assert history["0001"][:1] == ["pending"] and history["0001"][-2:] == ["running", "completed"], dict(history)
    assert set(history) == {"0000", "0001", "0002"} and all(h[-1] == "completed" for h in history.values())
    assert any(p.endswith(" W") and float(p.split()[0]) == pytest.approx(150.0) for p in power_seen), power_seen
    assert lost_seen  # the page said so while the server was away
    # nothing was lost: every job's result is on disk, the manifest says completed
    m = json.loads((study / "manifest.json").read_text())
    assert [j["status"] for j in m["jobs"]] == ["completed"] * 3
    assert all((study / j["job_id"] / "result.json").is_file() for j in m["jobs"])
    assert "is unreachable" in err and "reconnected" in err and "did not get" not in err
    assert not any(a.startswith("--live") or a == serve.url for a in m["command_args"])  # --resume won't reuse it
