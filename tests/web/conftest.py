"""What the front-end tests need: Node.js and web/node_modules (for vitest and a fresh build), and
Debian's Chromium driven by Playwright (browsers are not downloaded: the Debian package is used).

Without them these tests are skipped with what to install, except under CI (the CI variable set),
where a missing tool fails them: scripts/test.sh installs Chromium and runs scripts/build-web.sh."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
# no sandbox (containers), no GPU, and no background connections: the network is closed, and
# Chromium's own connection attempts only slow it down
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def require(ok: bool, why: str) -> None:
    """Skip (fail under CI) unless ``ok``."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI runs every test: scripts/test.sh sets this up)")
    pytest.skip(why)


def chromium_path() -> str:
    return os.environ.get("LLEM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def npm() -> str:
    exe = shutil.which("npm")
    require(exe is not None and shutil.which("node") is not None, "needs Node.js >= 20.19 and npm")
    require((WEB / "node_modules" / ".bin" / "vite").exists(),
            "web/node_modules is missing: run scripts/build-web.sh (npm ci)")
    return exe


@pytest.fixture(scope="session")
def browser():
    require(Path(chromium_path()).is_file(), "needs Chromium (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "needs the playwright Python package (pip install -e '.[dev]')")
    with sync_playwright() as p:
        # launch() gives Chromium a fresh temporary profile
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory, request) -> Path:
    """Where screenshots go: $LLEM_TEST_ARTIFACTS/web, else a folder in pytest's temporary tree;
    its path is printed at the end of the run."""
    base = os.environ.get("LLEM_TEST_ARTIFACTS")
    d = Path(base) / "web" if base else tmp_path_factory.getbasetemp() / "artifacts" / "web"
    d.mkdir(parents=True, exist_ok=True)
    yield d
    shots = sorted(p.name for p in d.glob("*.png"))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and shots:
        reporter.write_line(f"web screenshots ({len(shots)}): {d}")
