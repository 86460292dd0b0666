"""``llem serve``, then ``llem results push STUDY --to URL``: the study shows in the leaderboard site
that ``llem serve`` serves at /site/ (issue 32's "done when"), in a real browser (Playwright driving
Debian's Chromium; the ``browser`` and ``serve`` fixtures are in conftest.py).

The study is real: the built-in tiny model, two jobs, the fastest protocol, energy from llem's
simulated NVML (a test double for a GPU's counters: there is no GPU here, and the site labels the
numbers synthetic). The page's rows are the export's entries, and a job page draws the time series
the server built from the uploaded ``timeseries.parquet``; the page reads nothing but its own
server, and its Content-Security-Policy refuses nothing it needs."""
import json
import urllib.request

from llem.cli.main import main
from llem.devices.simulated import write_spec
from tests.conftest import run_llem
from tests.devices.sim import gpu
from tests.study.conftest import TINY


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def test_a_pushed_study_shows_in_the_served_site_with_its_job_pages(browser, serve, tmp_path, monkeypatch, capsys):
    token = serve.token("alice")
    serve.start()
    spec = write_spec(tmp_path / "nvml.json", [gpu(0, power_w=150.0, counter_period_ms=20)])
    study = tmp_path / "study"
    env = {"LLEM_SIMULATED_NVML": str(spec)}
    r = run_llem(["run", "-m", "batch=1,2", *TINY, "energy=nvml", "measurement.quantisation_target=0.1",
                  f"hydra.sweep.dir={study}"], cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    monkeypatch.setenv("LLEM_API_TOKEN", token)
    assert main(["results", "push", str(study), "--to", serve.url, "-q"]) == 0
    assert capsys.readouterr().out.startswith("stored: ")
    assert main(["results", "export", str(study), "--format", "leaderboard", "--out", str(tmp_path / "lb"), "-q"]) == 0
    (line,) = json.loads((tmp_path / "lb" / "index.json").read_text())["studies"]
    export = json.loads((tmp_path / "lb" / line["file"]).read_text())
    sid = export["study"]["id"]
    assert len(export["entries"]) == 2

    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    requests, errors, refused = [], [], []
    page.on("request", lambda q: requests.append(q.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        # from the page at /, as a user finds it: its link opens the site
        page.goto(serve.url + "/")
        page.locator("#site-link").click()
        page.wait_for_selector("html[data-llem-ready='1']", timeout=60_000)
        assert page.url.startswith(serve.url + "/site/")
        keys = page.locator("[data-testid=row]").evaluate_all("rs => rs.map(r => r.dataset.key)")
        assert sorted(keys) == sorted(f"{sid}/{e['job_id']}" for e in export["entries"])

        best = next(e for e in export["entries"] if e["rank"] == 1)
        job = _get(f"{serve.url}/leaderboard/{best['detail']}")
        points = job["timeseries"]["gpus"][0]["points"]
        page.goto(f"{serve.url}/site/#/job/{sid}/{best['job_id']}")
        page.wait_for_selector("html[data-llem-ready='1']", timeout=60_000)
        series = page.locator("[data-testid=timeseries-power_w] path.series")
        series.first.wait_for(state="attached", timeout=60_000)  # a flat trace has zero height: "hidden"
        assert points >= 2 and series.first.get_attribute("data-points") == str(points)
        assert page.locator("[data-testid=timeseries-power_w] rect.window").count() == \
            len(job["timeseries"]["measured_windows_s"]) >= 1
        assert "Simulated" in page.locator("[data-testid=job-page]").inner_text()
    finally:
        ctx.close()
    # the site read this server's leaderboard files (the data-source setting), and nothing elsewhere
    assert f"{serve.url}/leaderboard/index.json" in requests
    assert f"{serve.url}/leaderboard/{line['file']}" in requests
    assert f"{serve.url}/leaderboard/{best['detail']}" in requests
    assert not [u for u in requests if not u.startswith((serve.url + "/", "data:", "blob:"))], requests
    assert errors == [] and refused == []
    assert "data/index.json" not in " ".join(requests)  # not the static site's default location
