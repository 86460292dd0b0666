"""Screenshots of the leaderboard site's main views (docs/figures/site-*.png).

    python scripts/site_screenshots.py OUT_DIR DIR [DIR...]

Builds a site from the study directories with `llem results site`, serves it on 127.0.0.1 and
saves, in headless Chromium: the leaderboard table, the Pareto chart, the job page of the first
ranked job that has a time series, the comparison of the three best jobs, and the table at phone
width. Needs Chromium (Debian: apt-get install chromium; or LLEM_CHROMIUM=PATH) and playwright.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    out, dirs = Path(argv[0]), argv[1:]
    chromium = os.environ.get("LLEM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        print(f"site_screenshots.py: no Chromium at {chromium!r} (apt-get install chromium, or LLEM_CHROMIUM=PATH)",
              file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from llem.cli.results_cmd import _load
    from llem.results.site import build_site, make_server, site_url

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llem-shots-") as tmp:
        site = Path(tmp) / "site"
        build_site(dirs, site, load=lambda p: _load(p, True), quiet=True)
        data = site / "data"
        docs = [json.loads((data / s["file"]).read_text())
                for s in json.loads((data / "index.json").read_text())["studies"]]
        ranked = sorted(((d["study"]["id"], e) for d in docs for e in d["entries"] if e["rank"] is not None),
                        key=lambda x: x[1]["metrics"]["energy_per_output_token_j"]["value"])
        with_ts = [(sid, e) for sid, e in ranked
                   if json.loads((data / e["detail"]).read_text())["timeseries"]["gpus"]] if ranked else []
        job = (with_ts or ranked)[0] if ranked else None
        server = make_server(site, 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = site_url(server)
        views = [("site-leaderboard.png", "", 1400), ("site-pareto.png", "#/pareto", 1100)]
        if job:
            views.append(("site-job.png", f"#/job/{job[0]}/{job[1]['job_id']}", 1100))
        if len(ranked) >= 2:
            sel = "&".join(f"sel={sid}/{e['job_id']}" for sid, e in ranked[:3])
            views.append(("site-compare.png", f"#/compare?{sel}", 1200))
        views.append(("site-phone.png", "", 390))
        try:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                for name, frag, width in views:
                    ctx = b.new_context(viewport={"width": width, "height": 900}, device_scale_factor=1)
                    page = ctx.new_page()
                    page.goto(url + frag)
                    page.wait_for_selector("html[data-llem-ready='1']")
                    page.wait_for_selector("main h2")
                    page.wait_for_load_state("networkidle")
                    # the job page: its first screens (time series, phases) rather than every setting
                    full = name not in ("site-job.png",)
                    page.screenshot(path=str(out / name), full_page=full)
                    print(out / name)
                    ctx.close()
                b.close()
        finally:
            server.shutdown()
            server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
