"""Fixtures for llem serve: the same tests on SQLite and on a real PostgreSQL server.

PostgreSQL comes from Debian's ``postgresql`` package (scripts/test.sh installs it as root); the
session starts a throwaway cluster on loopback (benchmarks/serve/pg_temp.py) and each test gets a
fresh database copied from a migrated template. Without the server binaries the PostgreSQL half
is skipped with the reason, except under CI (``CI`` set), where that is a failure.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

try:
    import fastapi  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise  # CI installs the serve extra (scripts/setup.sh --dev): its absence is a failure there
    pytest.skip("the serve extra is not installed (pip install -e '.[serve]')", allow_module_level=True)

from llem.serve import auth, migrate  # noqa: E402
from llem.serve.db import Database, table_counts  # noqa: E402
from tests.conftest import LLEM, load_benchmark, wait_for  # noqa: E402

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    pg_temp = load_benchmark("pg_temp")
    if pg_temp.find_bin_dir() is None:
        msg = "no PostgreSQL server binaries (apt-get install postgresql; scripts/test.sh does it as root)"
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a real PostgreSQL server: {msg}")
        pytest.skip(msg)
    pg = pg_temp.TempPostgres().start()
    template = pg.create_database("llem_template")
    migrate.upgrade(template)
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlite-template") / "llem.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, sqlite_template):
    """A migrated, empty database: a SQLite file, or a PostgreSQL database on the session's server."""
    if request.param == "sqlite":
        path = tmp_path / "llem.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    pg = request.getfixturevalue("pg_server")
    name = f"t{os.getpid()}_{next(_names)}"
    yield pg.create_database(name, template="llem_template")
    pg.drop_database(name)


@pytest.fixture
def db(db_url):
    d = Database(db_url)
    yield d
    d.dispose()


def make_token(db: Database, user: str) -> str:
    with db.write() as conn:
        return auth.create_token(conn, user)[1]


@pytest.fixture
def tokens(db):
    return {"alice": make_token(db, "alice"), "bob": make_token(db, "bob")}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def counts(db: Database) -> dict:
    with db.read() as conn:
        return table_counts(conn)


@pytest.fixture
def make_client(db_url, db):
    """``make_client(**settings)``: a TestClient over a fresh app on this test's database."""
    from fastapi.testclient import TestClient

    from llem.serve.app import create_app
    from llem.serve.settings import ServeSettings

    opened = []

    def make(clock=None, **kw):
        app = create_app(ServeSettings(database_url=db_url, migrate_on_start=False, **kw), db=db, clock=clock)
        c = TestClient(app)
        c.__enter__()
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory):
    from tests.results.results_fixtures import make_study

    return make_study(tmp_path_factory.mktemp("serve-study"))


@pytest.fixture(scope="session")
def upload_body(study_dir):
    from llem.results.remote import build_upload

    return build_upload(study_dir)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """``llem serve``'s app under a real uvicorn on loopback, in a thread (stop() and start() again
    on the same port stand for a server that goes away and comes back)."""

    def __init__(self, db_url: str, port: int | None = None, **settings) -> None:
        self.db_url, self.port, self.settings = db_url, port or free_port(), settings
        self.server = self.thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ServerThread":
        import uvicorn

        from llem.serve.app import create_app
        from llem.serve.settings import ServeSettings

        app = create_app(ServeSettings(database_url=self.db_url, migrate_on_start=False, **self.settings))
        self.app = app
        cfg = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="info", timeout_graceful_shutdown=1,
                             lifespan="on")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        assert wait_for(lambda: self.server.started, limit_s=60), "uvicorn did not start"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.app.state.db.dispose()


@pytest.fixture
def server(db_url):
    s = ServerThread(db_url).start()
    yield s
    s.stop()


# --- a real browser against a real `llem serve` (test_live_browser.py, test_site_browser.py) ---------

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Chromium for the browser tests (apt-get install chromium)")
        pytest.skip("no chromium on PATH (apt-get install chromium; scripts/test.sh does it as root)")
    try:
        from playwright import sync_api
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (the dev extra)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


class ServeProcess:
    """``llem serve`` as a user starts it, on a SQLite file of its own."""

    def __init__(self, tmp_path):
        self.db_url = f"sqlite:///{tmp_path / 'serve.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "serve.log"

    def token(self, user):
        import contextlib
        import io

        from llem.cli.main import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            assert main(["serve", "token", "create", user, "--database-url", self.db_url]) == 0
        return out.getvalue().strip()

    def start(self):
        import urllib.request

        self.proc = subprocess.Popen([LLEM, "serve", "--port", str(self.port), "--database-url", self.db_url],
                                     stdout=self.log.open("a"), stderr=subprocess.STDOUT)

        def up():
            assert self.proc.poll() is None, self.log.read_text()
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/info", timeout=5):
                    return True
            except OSError:
                return False

        assert wait_for(up, limit_s=120, step_s=0.1)
        return self

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


@pytest.fixture
def serve(tmp_path):
    s = ServeProcess(tmp_path)
    yield s
    if getattr(s, "proc", None) is not None and s.proc.poll() is None:
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(30)
