"""The server's security rules, each checked from outside: CORS closed unless opened, headers on
every answer, control characters refused, no request reaches the file system, bound parameters
only, tokens never in a log."""
import builtins
import io
import json
import logging
import os
import pathlib
import re
import urllib.request

import pytest

from tests.serve.conftest import ServerThread, bearer, counts, make_token

EVIL = "https://evil.example"


def test_cors_is_closed_by_default(client):
    r = client.get("/api/v1/jobs", headers={"Origin": EVIL})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    pre = client.options("/api/v1/uploads", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert pre.status_code in (400, 405) and "access-control-allow-origin" not in pre.headers


def test_cors_opens_to_named_origins_for_reading_only(make_client):
    client = make_client(cors_origins=["https://leaderboard.example.org"])
    ok = client.get("/leaderboard/index.json", headers={"Origin": "https://leaderboard.example.org"})
    assert ok.headers["access-control-allow-origin"] == "https://leaderboard.example.org"
    assert "access-control-allow-origin" not in client.get("/leaderboard/index.json", headers={"Origin": EVIL}).headers
    pre = client.options("/api/v1/studies/1", headers={"Origin": "https://leaderboard.example.org",
                                                       "Access-Control-Request-Method": "DELETE"})
    assert pre.status_code == 400  # a browser elsewhere can read, never write


def test_every_answer_carries_the_security_headers(client):
    for path in ("/", "/static/app.js", "/api/v1/info", "/api/v1/jobs/999999", "/nowhere"):
        h = client.get(path).headers
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
        assert "script-src 'self'" in h["content-security-policy"] and "default-src 'none'" in h["content-security-policy"]
    page = client.get("/").text
    # the page loads only its own assets, from this server: nothing from other hosts, no inline script
    assert "http://" not in page.replace('href="/openapi.json"', "") and "https://" not in page
    assert "<script>" not in page and 'src="/static/app.js"' in page
    js = client.get("/static/app.js").text
    assert "innerHTML" not in js and "eval(" not in js and "http" not in js.replace("http://www.w3.org/2000/svg", "")


def test_the_interactive_docs_pages_are_off_and_the_spec_is_published(client):
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    spec = client.get("/openapi.json").json()
    assert "/api/v1/uploads" in spec["paths"] and "UploadBody" in spec["components"]["schemas"]
    assert "ExperimentResult" in spec["components"]["schemas"]  # the upload schema is llem's result schema


def test_control_characters_in_a_query_are_refused(client):
    for q in ("model=llama%00", "backend=%1b%5b2J", "gpu=" + "x" * 2000):
        r = client.get(f"/api/v1/jobs?{q}")
        assert r.status_code in (400, 422) and "\n" not in r.json()["detail"]
    assert client.get("/leaderboard/a%00b.json").status_code in (400, 422)


def test_injection_attempts_are_just_values(client, db, tokens, upload_body):
    assert client.post("/api/v1/uploads", content=upload_body, headers=bearer(tokens["alice"])).status_code == 201
    before = counts(db)
    for params in ({"backend": "' OR '1'='1"}, {"model": "x'; DROP TABLE jobs; --"}, {"gpu": "%"}, {"gpu": "_"},
                   {"precision": "\\"}):
        assert client.get("/api/v1/jobs", params=params).json()["total"] == 0
    assert client.get("/api/v1/jobs", params={"sort": "id; DROP TABLE jobs"}).status_code == 422
    assert client.get("/api/v1/studies", params={"owner": "' OR 1=1 --"}).json()["total"] == 0
    assert counts(db) == before


@pytest.mark.parametrize("path", ["/leaderboard/..%2F..%2F..%2Fetc%2Fpasswd", "/leaderboard/../../pyproject.toml",
                                  "/static/../app.py", "/static/..%2Fapp.py", "/static/%2e%2e/db.py",
                                  "/leaderboard/..%2Fllem.db", "/static/index.html/../../cli.py"])
def test_no_path_from_a_request_reaches_the_file_system(client, path):
    r = client.get(path)
    assert r.status_code in (404, 422) and "passwd" not in r.text and "import" not in r.text


def test_requests_read_no_file_at_all(client, tokens, upload_body, monkeypatch):
    """After start-up every answer comes from memory or the database: opening any file fails."""
    opened = []

    def refuse(*a, **k):
        opened.append(a[:1])
        raise PermissionError("no file access while serving")

    for target, name in ((builtins, "open"), (io, "open"), (os, "open"), (pathlib.Path, "open")):
        monkeypatch.setattr(target, name, refuse)
    r = client.post("/api/v1/uploads", content=upload_body, headers=bearer(tokens["alice"]))
    monkeypatch.undo()
    assert r.status_code == 201, r.text
    sid, slug = r.json()["study_id"], r.json()["leaderboard_url"]
    for target, name in ((builtins, "open"), (io, "open"), (os, "open"), (pathlib.Path, "open")):
        monkeypatch.setattr(target, name, refuse)
    paths = ["/", "/static/app.js", "/static/app.css", "/api/v1/info", "/api/v1/jobs", "/api/v1/jobs/1",
             f"/api/v1/studies/{sid}", "/api/v1/studies", "/leaderboard/index.json", slug, "/api/v1/live",
             "/api/v1/compare?job=1&job=2", slug[:-len(".json")] + "/0000.json", "/site/", "/site/index.html",
             *(f"/site/assets/{a}" for a in re.findall(r'"\./assets/([^"]+)"', client.get("/site/").text))]
    statuses = {p: client.get(p).status_code for p in paths}
    monkeypatch.undo()
    assert statuses == {p: 200 for p in paths} and opened == []


def test_tokens_never_appear_in_the_logs(db_url, db, capfd, caplog, upload_body):
    caplog.set_level(logging.DEBUG)
    token = make_token(db, "dora")
    srv = ServerThread(db_url, upload_rate_per_min=1).start()
    try:
        def post(tok, body=upload_body):
            req = urllib.request.Request(f"{srv.url}/api/v1/uploads", data=body, method="POST",
                                         headers={**bearer(tok), "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    return r.status
            except urllib.error.HTTPError as err:
                return err.code

        assert post(token) == 201
        assert post(token) == 429  # refused requests are logged too
        assert post(token[:-1] + ("B" if token[-1] != "B" else "C")) == 401
        assert post(token + "garbage") == 401
        with urllib.request.urlopen(urllib.request.Request(f"{srv.url}/api/v1/studies/1", method="DELETE",
                                                           headers=bearer(token)), timeout=60) as r:
            assert r.status == 200
    finally:
        srv.stop()
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "POST /api/v1/uploads" in logged  # the access log was captured
    assert token not in logged and token[5:25] not in logged and token[:-1] not in logged
    assert "dora" in logged  # who uploaded is logged, by name
