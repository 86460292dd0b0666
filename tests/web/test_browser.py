"""The static leaderboard in real Chromium (Debian's package, driven by Playwright), served by
`llem results site --serve` on 127.0.0.1, with data from a real llem study run here: the built-in
tiny model, energy from the simulated NVML (a test double for a GPU's counters: no GPU here, and
the site labels the numbers synthetic), one job named like an HTML injection, and one job whose
energy was not measured (energy=none). Screenshots of every view are saved as test artifacts."""
from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from llem.devices import simulated
from llem.results.fmt import fmt_with_ci
from tests.conftest import FAST, LLEM, run_llem, wait_for
from tests.devices.sim import gpu

pytestmark = pytest.mark.slow

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def site(tmp_path_factory, browser):
    """Runs the study, builds the site and serves it; yields (url, site dir)."""
    d = tmp_path_factory.mktemp("web")
    spec = simulated.write_spec(d / "nvml.json", [gpu(0, power_w=150.0, counter_period_ms=20)])
    env = {"LLEM_SIMULATED_NVML": str(spec)}
    common = [*FAST, "batch=2", "energy.baseline.duration_s=0.1", f"energy.baseline.cache_dir={d / 'cache'}",
              "measurement.quantisation_target=0.05"]
    r = run_llem(["run", "-m", f"model.name=tiny-llama,'{XSS}'", "energy=nvml", *common,
                  f"hydra.sweep.dir={d / 'study'}"], cwd=d, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_llem(["run", "energy=none", *common, f"hydra.run.dir={d / 'unmeasured'}"], cwd=d, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = d / "site"
    p = subprocess.Popen([LLEM, "results", "site", str(d / "study"), str(d / "unmeasured"), "--out", str(out),
                          "--serve", "--port", "0", "-q"], cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    lines: list[str] = []
    assert wait_for(lambda: lines.append(p.stdout.readline()) or "http://" in lines[-1] or p.poll() is not None)
    m = re.search(r"(http://127\.0\.0\.1:\d+/)", lines[-1])
    assert m, (lines, p.stderr.read() if p.poll() is not None else "")
    yield m.group(1), out
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)


@pytest.fixture(scope="module")
def export(site):
    """The exported studies, as the site's data folder holds them: {study id: document}."""
    data = site[1] / "data"
    index = json.loads((data / "index.json").read_text())
    return {s["id"]: json.loads((data / s["file"]).read_text()) for s in index["studies"]}


class Page:
    """A fresh browser context and page that records every request and every dialog."""

    def __init__(self, browser, url, **ctx):
        self.ctx = browser.new_context(accept_downloads=True, **ctx)
        self.page = self.ctx.new_page()
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.base = url

    def open(self, fragment: str = ""):
        self.page.goto(self.base + fragment)
        self.page.wait_for_selector("html[data-llem-ready='1']")
        return self.page

    def rows(self) -> list[str]:
        return self.page.locator("[data-testid=row]").evaluate_all("rs => rs.map(r => r.dataset.key)")

    def cell(self, key: str, col: str) -> str:
        return self.page.locator(f"[data-testid=row][data-key='{key}'] td[data-col='{col}']").inner_text()

    def close(self):
        self.ctx.close()


@pytest.fixture
def web(browser, site):
    pg = Page(browser, site[0], viewport={"width": 1400, "height": 1000})
    yield pg
    # nothing the page did may reach another host or fail in a script
    origin = site[0].rstrip("/")
    foreign = [u for u in pg.requests if not (u.startswith(origin + "/") or u.startswith(("data:", "blob:")))]
    pg.close()
    assert foreign == [], foreign
    assert pg.errors == [], pg.errors
    assert pg.dialogs == [], pg.dialogs


def _ranking_order(export) -> list[str]:
    """The order the site shows by default: measured J/token lowest first over all studies, then the rest."""
    entries = [(sid, e) for sid, doc in export.items() for e in doc["entries"]]
    ranked = sorted([x for x in entries if x[1]["rank"] is not None],
                    key=lambda x: (x[1]["metrics"]["energy_per_output_token_j"]["value"], x[0], x[1]["job_id"]))
    rest = sorted([x for x in entries if x[1]["rank"] is None], key=lambda x: (x[0], x[1]["job_id"]))
    return [f"{sid}/{e['job_id']}" for sid, e in ranked + rest]


def test_rows_match_the_export(web, export, artifacts):
    web.open()
    assert len(export) == 2 and sum(len(d["entries"]) for d in export.values()) == 3
    assert web.rows() == _ranking_order(export)
    for sid, doc in export.items():
        for e in doc["entries"]:
            key = f"{sid}/{e['job_id']}"
            assert web.cell(key, "model").startswith(e["config"]["model"])
            assert web.cell(key, "batch") == str(e["config"]["batch"])
            m = e["metrics"]["energy_per_output_token_j"]
            text = web.cell(key, "energy_per_output_token_j")
            if m["value"] is None:
                assert text == f"not measured: {e['energy_not_measured_reason']}"
            else:
                # the same digits and interval as `llem results show` prints
                assert text.startswith(fmt_with_ci(m["value"], m["ci95_low"], m["ci95_high"]))
            tps = e["metrics"]["output_tokens_per_s"]
            assert web.cell(key, "output_tokens_per_s").startswith(
                fmt_with_ci(tps["value"], tps["ci95_low"], tps["ci95_high"]))
    assert "3 entries" in web.page.locator("[data-testid=count]").inner_text()
    web.page.screenshot(path=str(artifacts / "site-leaderboard.png"), full_page=True)


def test_a_filter_changes_rows_and_url_and_the_url_restores_the_view(web, browser, site, export):
    page = web.open()
    before = web.rows()
    page.locator("details.filter summary", has_text="Model").click()
    page.get_by_role("checkbox", name=re.compile("^tiny-llama")).check()
    page.wait_for_function("location.hash.includes('model=tiny-llama')")
    after = web.rows()
    assert 0 < len(after) < len(before)
    assert all(web.cell(k, "model").startswith("tiny-llama") for k in after)
    # sort by throughput, highest first, then open the URL in a fresh context: the same view
    page.locator("th a.sort", has_text="tok/s").click()
    page.wait_for_function("location.hash.includes('sort=output_tokens_per_s')")
    url = page.url
    assert "dir=desc" in url and "model=tiny-llama" in unquote(url)
    shown = web.rows()
    other = Page(browser, site[0])
    try:
        other.page.goto(url)
        other.page.wait_for_selector("html[data-llem-ready='1']")
        assert other.rows() == shown
        assert other.page.get_by_role("checkbox", name=re.compile("^tiny-llama")).is_checked()
        assert other.page.locator("th[aria-sort=descending]").inner_text().startswith("tok/s")
    finally:
        other.close()
    # the search box filters too, and its text goes into the URL
    page.locator("#search").fill("no-such-model")
    page.wait_for_function("location.hash.includes('q=no-such-model')")
    assert web.rows() == [] and "No entries match" in page.locator("[data-testid=count]").inner_text()


def test_pareto_has_one_point_per_ranked_entry_with_error_bars(web, export, artifacts):
    page = web.open("#/pareto")
    page.wait_for_selector("[data-testid=pareto-chart]")
    ranked = {f"{sid}/{e['job_id']}" for sid, doc in export.items() for e in doc["entries"] if e["rank"] is not None}
    points = page.locator("[data-testid=point]").evaluate_all("ps => ps.map(p => p.dataset.key)")
    assert sorted(points) == sorted(ranked) and len(points) == 2
    for key in ranked:
        bar = page.locator(f"g.errbar[data-key='{key}']")
        assert bar.locator("path.err-x").count() == 1 and bar.locator("path.err-y").count() == 1
    assert page.locator("circle.on-frontier").count() >= 1
    assert "1 not plotted" in page.locator("[data-testid=pareto-count]").inner_text()
    page.screenshot(path=str(artifacts / "site-pareto.png"), full_page=True)


def test_job_page_shows_its_time_series_phases_and_environment(web, export, site, artifacts):
    sid, doc = next((s, d) for s, d in export.items() if d["study"]["study_design_hash"])
    e = next(e for e in doc["entries"] if e["rank"] == 1)
    job = json.loads((site[1] / "data" / e["detail"]).read_text())
    page = web.open(f"#/job/{sid}/{e['job_id']}")
    series = page.locator("[data-testid=timeseries-power_w] path.series")
    series.first.wait_for(state="attached")  # a flat trace is a line of zero height: "hidden" to Playwright
    points = job["timeseries"]["gpus"][0]["points"]
    assert points >= 2 and series.first.get_attribute("data-points") == str(points)
    assert series.first.get_attribute("d").count("L") == points - 1  # one segment per sample after the first
    assert page.locator("[data-testid=timeseries-temperature_c] path.series").count() == 1
    assert page.locator("[data-testid=timeseries-power_w] rect.window").count() == len(job["timeseries"]["measured_windows_s"])
    assert "prefill" in page.locator("[data-testid=phases]").inner_text()
    body = page.locator("[data-testid=job-page]").inner_text()
    assert "Simulated H100 80GB HBM3" in body and "Measurement methodology" in body and "Synthetic data" in body
    assert len(e["warnings"]) == page.locator("[data-testid=warnings] li").count()
    page.screenshot(path=str(artifacts / "site-job.png"), full_page=True)


def test_a_model_name_made_of_html_renders_as_text_and_runs_nothing(web, export):
    page = web.open()
    key = next(f"{sid}/{e['job_id']}" for sid, d in export.items() for e in d["entries"] if e["config"]["model"] == XSS)
    link = page.locator(f"[data-testid=row][data-key='{key}'] [data-testid=job-link]")
    assert link.inner_text() == XSS
    assert page.locator("img").count() == 0  # the page has no images: none was made from the name
    link.click()
    page.wait_for_selector("[data-testid=job-page]")
    assert XSS in page.locator("h2").first.inner_text() and page.locator("img").count() == 0
    assert XSS in page.title()
    page.goto(web.base + "#/pareto")
    page.wait_for_selector("[data-testid=pareto-chart]")
    assert page.locator("svg img, img").count() == 0
    # the fixture `web` then asserts that no dialog opened, no script failed, nothing left this host


def test_not_measured_entries_say_why(web, export):
    page = web.open()
    (sid, e), = [(s, e) for s, d in export.items() for e in d["entries"] if not e["energy_measured"]]
    reason = e["energy_not_measured_reason"]
    assert reason and e["metrics"]["energy_per_output_token_j"]["value"] is None
    cell = page.locator(f"[data-testid=row][data-key='{sid}/{e['job_id']}'] [data-testid=not-measured]")
    assert cell.inner_text() == f"not measured: {reason}"
    assert "0.000" not in web.cell(f"{sid}/{e['job_id']}", "energy_per_output_token_j")
    page.goto(web.base + f"#/job/{sid}/{e['job_id']}")
    assert page.locator("[data-testid=not-measured-reason]").inner_text() == f"Energy not measured: {reason}"


def test_compare_downloads_keyboard_and_phone_width(web, browser, site, export, artifacts):
    page = web.open()
    keys = web.rows()[:2]
    for k in keys:
        page.locator(f"[data-testid=row][data-key='{k}'] input[type=checkbox]").check()
    page.get_by_role("link", name="Compare selected (2)").click()
    page.wait_for_selector("[data-testid=compare]")
    assert page.locator("[data-testid=compare] thead th").count() == 3
    assert [unquote(v) for v in re.findall(r"sel=([^&]+)", page.url)] == keys
    page.screenshot(path=str(artifacts / "site-compare.png"), full_page=True)
    # the CSV of the view: one line per row shown, the hostile name as plain text
    page.goto(web.base)
    page.wait_for_selector("html[data-llem-ready='1']")
    with page.expect_download() as dl:
        page.get_by_role("button", name=re.compile("^Download CSV")).click()
    raw = Path(dl.value.path()).read_bytes().decode()
    assert raw.endswith("\r\n")  # RFC 4180 line ends
    with open(dl.value.path(), newline="") as fh:
        records = list(csv.reader(fh))
    assert len(records) == 1 + sum(len(d["entries"]) for d in export.values())
    assert sum(XSS in rec for rec in records[1:]) == 1
    # keyboard only: Tab to the throughput header and press Enter
    page.locator("body").focus()
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.textContent.startsWith('tok/s')"):
            break
    page.keyboard.press("Enter")
    page.wait_for_function("location.hash.includes('sort=output_tokens_per_s')")
    # phone width: the page itself never scrolls sideways (the table scrolls inside its frame)
    phone = Page(browser, site[0], viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        p = phone.open()
        assert p.evaluate("document.documentElement.scrollWidth") <= 391
        p.screenshot(path=str(artifacts / "site-phone.png"), full_page=True)
    finally:
        phone.close()


def test_quality_columns_and_the_quality_pareto(browser, site, export, tmp_path):
    """Quality renders where a study has it: score ± stderr and correct answers per joule as columns,
    the random-weights label, and quality as the Pareto chart's y axis. The study run here evaluated
    no quality (lm-eval's run is covered by tests/results/test_quality_results.py), so its export
    is given quality results of the shape llem writes: SYNTHETIC TEST DATA, on entries the page
    already labels synthetic."""
    import shutil
    import threading

    from llem.results.quality import leaderboard_columns
    from llem.results.site import make_server, site_url

    out = tmp_path / "qsite"
    shutil.copytree(site[1], out)
    sid, doc = next((s, d) for s, d in export.items() if d["study"]["study_design_hash"])
    key, pj = "quality_llem_easy_mc_acc", "quality_llem_easy_mc_per_joule"
    doc["columns"] += leaderboard_columns([(key, "llem_easy_mc"), (pj, "llem_easy_mc")])
    for i, e in enumerate(doc["entries"]):
        acc, se = 0.25 + 0.1 * i, 0.05
        e["metrics"][key] = {"value": acc, "stderr": se, "ci95_low": acc - 1.96 * se, "ci95_high": acc + 1.96 * se, "n": 8}
        e["metrics"][pj] = {"value": 0.01 * (i + 1), "ci95_low": 0.008 * (i + 1), "ci95_high": 0.012 * (i + 1), "n": 8}
        e["quality"] = {"status": "completed", "meaningless": True, "task": "llem_easy_mc", "reason": None}
    # and one entry's energy labelled estimated, as a CodeCarbon reading is
    doc["entries"][0]["energy_estimated"] = True
    index = json.loads((out / "data" / "index.json").read_text())
    (out / "data" / next(s["file"] for s in index["studies"] if s["id"] == sid)).write_text(json.dumps(doc))
    server = make_server(out, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pg = Page(browser, site_url(server))
    try:
        page = pg.open()
        headers = page.locator("thead th").all_inner_texts()
        assert "llem_easy_mc acc" in headers and "llem_easy_mc correct/J" in headers
        first = f"{sid}/{doc['entries'][0]['job_id']}"
        assert pg.cell(first, key) == "0.2500 ± 0.0500"
        assert pg.cell(first, pj).startswith("0.01000 [0.00800, 0.01200]")
        assert page.locator(".badge-meaningless").count() == len(doc["entries"])
        assert page.locator(f"[data-testid=row][data-key='{first}'] .badge-estimated").count() == 3  # model, J/token, adjusted J/token
        assert "1 entry has estimated energy" in page.locator(".banner-estimated").inner_text()
        page.goto(pg.base + "#/pareto")
        page.locator("select").select_option(key)
        page.wait_for_function(f"location.hash.includes('y={key}')")
        ranked = [e for e in doc["entries"] if e["rank"] is not None]
        assert page.locator("[data-testid=point]").count() == len(ranked)
        assert page.locator("path.err-y").count() == len(ranked)
        assert page.locator("circle.estimated").count() == (1 if doc["entries"][0]["rank"] is not None else 0)
        assert "llem easy mc acc" in page.locator("h2").first.inner_text()
        assert pg.dialogs == [] and pg.errors == []
    finally:
        pg.close()
        server.shutdown()
        server.server_close()
