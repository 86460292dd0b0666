"""``llem serve`` (tokens, migrations, the server itself) and ``llem results push``, as typed."""
import json
import os
import signal
import subprocess
import urllib.request

import pytest

from llem.cli.main import main
from tests.conftest import LLEM, run_llem, wait_for
from tests.serve.conftest import ServerThread, free_port


def test_tokens_are_created_listed_and_revoked(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["serve", "token", "create", "alice", "--label", "laptop", "--database-url", url]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("llem_") and len(token) == 48 and "\n" not in token  # stdout: the token alone
    assert "shown only now" in err and token not in err
    assert main(["serve", "token", "list", "--database-url", url]) == 0
    listed = capsys.readouterr().out
    assert "alice" in listed and token[:12] in listed and token not in listed and "laptop" in listed
    assert main(["serve", "token", "revoke", "1", "--database-url", url]) == 0
    assert main(["serve", "token", "revoke", "1", "--database-url", url]) == 2  # nothing left to revoke
    assert "no active token with id 1" in capsys.readouterr().err
    assert main(["serve", "token", "create", "bad name!", "--database-url", url]) == 2
    assert "not a valid user name" in capsys.readouterr().err


def test_the_default_database_is_sqlite_under_the_users_data_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LLEM_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert main(["serve", "db", "upgrade"]) == 0
    assert (tmp_path / "data" / "llem" / "llem.db").is_file()
    assert "schema revision 0001" in capsys.readouterr().out


def test_the_database_url_comes_from_the_environment(pg_server, monkeypatch, capsys):
    url = pg_server.create_database("from_env")
    monkeypatch.setenv("LLEM_DATABASE_URL", url.replace("postgresql+psycopg://", "postgres://"))
    assert main(["serve", "token", "create", "erin"]) == 0
    capsys.readouterr()
    assert main(["serve", "db", "current"]) == 0
    assert "127.0.0.1" in capsys.readouterr().out
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        assert conn.execute("select name from users").fetchall() == [("erin",)]


def test_db_downgrade_and_upgrade(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["serve", "db", "upgrade", "--database-url", url]) == 0
    assert main(["serve", "db", "downgrade", "--database-url", url]) == 0
    assert "(empty)" in capsys.readouterr().out
    assert main(["serve", "db", "current", "--database-url", url]) == 0
    assert "(empty)" in capsys.readouterr().out


@pytest.mark.parametrize("args, words", [
    (["--database-url", "mysql://u@h/db"], "not a supported database"),
    (["--port", "70000"], "--port"),
    (["--max-upload-mb", "0"], "--max-upload-mb"),
    (["--cors-origin", "*"], "not an origin"),
    (["--bogus"], "unrecognized arguments"),
    (["--database-url", "postgresql://llem@127.0.0.1:9/none"], "cannot reach"),
])
def test_bad_serve_options_are_one_line_and_exit_2(args, words, tmp_path, capsys):
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_llem_serve_serves_the_page_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    env.pop("LLEM_DATABASE_URL", None)
    proc = subprocess.Popen([LLEM, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        def up():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    return r.status == 200 and b"llem results" in r.read()
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                return False

        assert wait_for(up, limit_s=120, step_s=0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/info", timeout=5) as r:
            assert json.loads(r.read())["database"] == "sqlite"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    # uvicorn shuts down cleanly, then re-raises the signal so a supervisor sees how it ended
    assert proc.returncode in (0, -signal.SIGTERM) and "Finished server process" in err
    assert f"http://127.0.0.1:{port}/" in err and "CORS closed" in err
    assert (tmp_path / "llem" / "llem.db").is_file()


# --- llem results push -------------------------------------------------------------------------------

@pytest.fixture
def push_server(tmp_path):
    url = f"sqlite:///{tmp_path / 'push.db'}"
    from llem.serve import auth, migrate
    from llem.serve.db import Database

    migrate.upgrade(url)
    db = Database(url)
    with db.write() as conn:
        token = auth.create_token(conn, "alice")[1]
    db.dispose()
    srv = ServerThread(url, max_upload_bytes=200_000).start()
    yield srv, token
    srv.stop()


def test_push_a_study_then_again(push_server, study_dir, tmp_path):
    srv, token = push_server
    r = run_llem(["results", "push", str(study_dir), "--to", srv.url + "/"], cwd=tmp_path,
                 env={"LLEM_API_TOKEN": token})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("stored: 9 result(s) added") and "unverified" in lines[0]
    assert lines[1] == f"{srv.url}/api/v1/studies/1" and lines[2].startswith(f"{srv.url}/leaderboard/")
    assert "2 job(s) have no readable result.json yet" in r.stderr and token not in r.stdout + r.stderr
    with urllib.request.urlopen(lines[2], timeout=30) as resp:
        assert json.loads(resp.read())["study"]["name"] == "synthetic-study"
    again = run_llem(["results", "push", str(study_dir), "--to", srv.url, "-q"], cwd=tmp_path,
                     env={"LLEM_API_TOKEN": token})
    assert again.returncode == 0 and again.stdout.startswith("already stored") and again.stderr == ""


def test_push_refusals_are_one_line(push_server, study_dir, tmp_path, monkeypatch, capsys):
    srv, token = push_server
    monkeypatch.delenv("LLEM_API_TOKEN", raising=False)
    assert main(["results", "push", str(study_dir), "--to", srv.url]) == 2
    assert "LLEM_API_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("LLEM_API_TOKEN", token)
    assert main(["results", "push", str(study_dir), "--to", "ftp://example.org"]) == 2
    assert "not a server URL" in capsys.readouterr().err
    assert main(["results", "push", str(tmp_path / "nothing"), "--to", srv.url]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["results", "push", str(study_dir), "--to", f"http://127.0.0.1:{free_port()}"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the server" in err and err.count("\n") == 1
    monkeypatch.setenv("LLEM_API_TOKEN", "llem_" + "z" * 43)
    assert main(["results", "push", str(study_dir), "--to", srv.url, "-q"]) == 1
    assert "HTTP 401: invalid or revoked API token" in capsys.readouterr().err


def test_push_says_when_a_study_is_too_large(push_server, study_dir, tmp_path, monkeypatch, capsys):
    srv, token = push_server
    monkeypatch.setenv("LLEM_API_TOKEN", token)
    from tests.results.results_fixtures import write_timeseries

    big = tmp_path / "big"
    import shutil

    shutil.copytree(study_dir, big)
    write_timeseries(big / "0000" / "timeseries.parquet", duration_s=400.0, n_devices=4)
    assert main(["results", "push", str(big), "--to", srv.url, "-q"]) == 1
    err = capsys.readouterr().err
    assert "accepts at most 0.2 MiB" in err and "--no-timeseries" in err
    assert main(["results", "push", str(big), "--to", srv.url, "--no-timeseries", "-q"]) == 0
    assert capsys.readouterr().out.startswith("stored: 9")


@pytest.mark.parametrize("args, env, words", [
    (["run", "-m", "batch=1,2", "--live", "http://127.0.0.1:8000"], {}, "LLEM_API_TOKEN"),
    (["run", "-m", "batch=1,2", "--live", "ftp://example.org"], {"LLEM_API_TOKEN": "t"}, "not a server URL"),
    (["run", "-m", "batch=1,2", "--live"], {"LLEM_API_TOKEN": "t"}, "--live needs the llem serve URL"),
    (["run", "-m", "batch=1,2", "--dry-run", "--live", "http://127.0.0.1:8000"], {"LLEM_API_TOKEN": "t"},
     "--dry-run runs nothing"),
    (["run", "batch=1", "--live", "http://127.0.0.1:8000"], {"LLEM_API_TOKEN": "t"}, "use it with -m"),
])
def test_bad_live_options_stop_before_anything_runs(args, env, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLEM_API_TOKEN", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written
