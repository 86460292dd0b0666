"""The front end's own checks: its data layer's unit tests (vitest), the shipped build equals a
fresh build of web/, and the rules that keep result strings text and data on the page's host."""
from __future__ import annotations

import re
import subprocess

from tests.web.conftest import REPO, WEB


def test_data_layer_unit_tests_pass(npm):
    r = subprocess.run([npm, "test", "--silent"], cwd=WEB, capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "NO_COLOR": "1", "CI": "1"})
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    m = re.search(r"Tests\s+(\d+) passed", r.stdout)
    assert m and int(m.group(1)) >= 30, r.stdout[-2000:]


def test_shipped_assets_equal_a_fresh_build(npm):
    r = subprocess.run(["bash", str(REPO / "scripts" / "build-web.sh"), "--check"], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]


def test_no_source_file_inserts_html():
    # every result string must reach the DOM as text: React's escaping, never raw HTML
    banned = ("dangerouslySetInnerHTML", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
              "new Function")
    sources = [p for p in (WEB / "src").rglob("*") if p.suffix in (".ts", ".tsx")]
    assert len(sources) > 10
    for p in sources:
        text = p.read_text()
        for b in banned:
            assert b not in text, f"{p.relative_to(REPO)} uses {b}"


def test_shipped_page_loads_nothing_from_another_host():
    site = REPO / "llem" / "assets" / "site"
    html = (site / "index.html").read_text()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp, "the built page carries a Content-Security-Policy"
    policy = csp.group(1).replace("&#39;", "'")
    for directive in ("default-src 'self'", "script-src 'self'", "connect-src 'self'", "object-src 'none'"):
        assert directive in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    # no script, style or fetch names another host (text inside the bundle, such as React's error
    # message links, is never fetched: the policy above would refuse it)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    for css in site.glob("assets/*.css"):
        assert "url(http" not in css.read_text() and "@import" not in css.read_text()
