"""Uploads on SQLite and PostgreSQL: tokens, idempotence, refusals that leave the database as it
was, the size limit, the rate limit, deleting one's own study only, and concurrent pushes."""
import json
import threading
import urllib.request

import pytest

from llem.serve import auth
from tests.serve.conftest import bearer, counts, make_token


def _doc(body: bytes) -> dict:
    return json.loads(body)


def _post(client, doc_or_bytes, token):
    body = doc_or_bytes if isinstance(doc_or_bytes, (bytes, str)) else json.dumps(doc_or_bytes)
    return client.post("/api/v1/uploads", content=body, headers={**bearer(token), "Content-Type": "application/json"})


# --- tokens ---------------------------------------------------------------------------------------

def test_no_token_bad_token_revoked_token_are_401(client, db, tokens, upload_body):
    before = counts(db)
    r = client.post("/api/v1/uploads", content=upload_body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and "token" in r.json()["detail"]
    assert _post(client, upload_body, "llem_" + "x" * 43).status_code == 401
    assert _post(client, upload_body, "not a token at all").status_code == 401
    r = client.post("/api/v1/uploads", content=upload_body, headers={"Authorization": f"Basic {tokens['alice']}"})
    assert r.status_code == 401
    assert counts(db) == before
    # a token in the URL is not read (it would end up in access logs)
    assert client.post(f"/api/v1/uploads?token={tokens['alice']}", content=upload_body).status_code == 401
    with db.write() as conn:
        (tid,) = [t["id"] for t in auth.list_tokens(conn) if t["user"] == "alice"]
        assert auth.revoke_token(conn, tid)
        assert not auth.revoke_token(conn, tid)  # once only
    r = _post(client, upload_body, tokens["alice"])
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert counts(db) == before


def test_tokens_are_stored_hashed(db, tokens):
    with db.read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(__import__("sqlalchemy").select(auth.api_tokens))]
    stored = json.dumps(rows, default=str)
    for t in tokens.values():
        assert t not in stored and auth.hash_token(t) in stored


def test_a_user_deletes_only_their_own_study(client, db, tokens, upload_body):
    sid = _post(client, upload_body, tokens["alice"]).json()["study_id"]
    before = counts(db)
    assert client.delete(f"/api/v1/studies/{sid}").status_code == 401
    r = client.delete(f"/api/v1/studies/{sid}", headers=bearer(tokens["bob"]))
    assert r.status_code == 403 and "another user" in r.json()["detail"]
    assert counts(db) == before
    assert client.delete("/api/v1/studies/999999", headers=bearer(tokens["bob"])).status_code == 404
    r = client.delete(f"/api/v1/studies/{sid}", headers=bearer(tokens["alice"]))
    assert r.status_code == 200 and r.json()["jobs_deleted"] == before["jobs"]
    after = counts(db)
    assert after["studies"] == after["jobs"] == after["uploads"] == 0 and after["users"] == before["users"]
    assert client.get("/leaderboard/index.json").json()["studies"] == []


# --- idempotence ----------------------------------------------------------------------------------

def test_the_same_study_twice_is_stored_once(client, db, tokens, upload_body):
    first = _post(client, upload_body, tokens["alice"])
    assert first.status_code == 201 and first.json()["created"] is True
    stored = counts(db)
    again = _post(client, upload_body, tokens["alice"])
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["results_unchanged"] == first.json()["results_added"]
    assert counts(db) == stored
    # another user pushing the same files: still stored once, and it says whose it is
    other = _post(client, upload_body, tokens["bob"])
    assert other.status_code == 200 and other.json()["owner"] == "alice"
    assert counts(db) == stored


def test_a_study_pushed_again_with_more_results_gains_only_those(client, db, tokens, upload_body):
    doc = _doc(upload_body)
    partial = dict(doc, results=doc["results"][:3])
    r = _post(client, partial, tokens["alice"])
    assert r.status_code == 201 and r.json()["results_added"] == 3
    r = _post(client, doc, tokens["alice"])
    assert r.status_code == 201
    assert (r.json()["results_added"], r.json()["results_unchanged"]) == (len(doc["results"]) - 3, 3)
    c = counts(db)
    assert c["jobs"] == len(doc["results"]) and c["uploads"] == 2 and c["studies"] == 1
    # a job whose result changed (a resumed study re-ran it) replaces its row
    changed = json.loads(json.dumps(doc))
    changed["results"][0]["result"]["warnings"] = ["rerun after resume"]
    r = _post(client, changed, tokens["alice"])
    assert (r.json()["results_replaced"], r.json()["results_added"]) == (1, 0)
    assert counts(db)["jobs"] == len(doc["results"])
    # only the owner may add to a study
    more = json.loads(json.dumps(changed))
    more["results"][1]["result"]["warnings"] = ["bob's edit"]
    before = counts(db)
    r = _post(client, more, tokens["bob"])
    assert r.status_code == 409 and "alice" in r.json()["detail"]
    assert counts(db) == before


def test_concurrent_pushes_of_one_study_store_it_once(server, db, upload_body):
    token = make_token(db, "carol")
    n = 4
    barrier = threading.Barrier(n)
    answers = []

    def push():
        req = urllib.request.Request(f"{server.url}/api/v1/uploads", data=upload_body, method="POST",
                                     headers={**bearer(token), "Content-Type": "application/json"})
        barrier.wait()
        with urllib.request.urlopen(req, timeout=120) as r:
            answers.append((r.status, json.loads(r.read())))

    threads = [threading.Thread(target=push) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert sorted(s for s, _ in answers) == [200] * (n - 1) + [201]
    assert len({a["study_id"] for _, a in answers}) == 1
    c = counts(db)
    assert c["studies"] == 1 and c["uploads"] == 1 and c["jobs"] == len(_doc(upload_body)["results"])


# --- refusals -------------------------------------------------------------------------------------

def _hostile_cases(doc):
    def with_model(text):
        d = json.loads(json.dumps(doc))
        d["results"][0]["result"]["model"] = text
        return d

    def with_study_name(text):
        d = json.loads(json.dumps(doc))
        d["study"]["study_name"] = text
        return d

    traversal = json.loads(json.dumps(doc))
    traversal["results"][0]["job_id"] = "../../etc/passwd"
    bad_job = json.loads(json.dumps(doc))
    bad_job["study"]["jobs"][0]["job_id"] = "0000/../../x"
    key = json.loads(json.dumps(doc))
    key["results"][0]["result"]["config"]["bad\u0000key"] = 1
    deep = json.loads(json.dumps(doc))
    node = deep["results"][0]["result"]["extra"]
    for _ in range(80):
        node["x"] = {}
        node = node["x"]
    return {
        "NUL in a model name": (with_model("llama\u0000"), 400, "U+0000"),
        "terminal escape in a study name": (with_study_name("study\u001b[2J"), 400, "U+001B"),
        "lone surrogate": (with_model("\ud800"), 400, "U+D800"),
        "bidirectional override": (with_model("evil\u202eexe.txt"), 400, "U+202E"),
        "a 200,000-character string": (with_model("A" * 200_000), 400, "at most"),
        "path traversal as a job id": (traversal, 422, "results[0].job_id: String should match pattern"),
        "path traversal in the manifest": (bad_job, 422, "job id"),
        "control character in a key": (key, 400, "U+0000"),
        "nesting 80 levels deep": (deep, 400, "nested deeper"),
    }


def _refusals(doc):
    wrong_major = json.loads(json.dumps(doc))
    wrong_major["results"][0]["result"]["schema_version"] = "2.0"
    newer_minor = json.loads(json.dumps(doc))
    newer_minor["results"][0]["result"]["schema_version"] = "1.99"
    bad_manifest = json.loads(json.dumps(doc))
    bad_manifest["study"]["schema_version"] = "7.0"
    not_a_result = json.loads(json.dumps(doc))
    del not_a_result["results"][2]["result"]["energy"]
    unknown_key = json.loads(json.dumps(doc))
    unknown_key["results"][0]["result"]["joules_i_made_up"] = 1
    wrong_type = json.loads(json.dumps(doc))
    wrong_type["results"][1]["result"]["batch"] = "eight"
    huge_batch = json.loads(json.dumps(doc))
    huge_batch["results"][1]["result"]["batch"] = 2**40
    orphan = json.loads(json.dumps(doc))
    orphan["results"][0]["job_id"] = "9999"
    twice = json.loads(json.dumps(doc))
    twice["results"][1]["job_id"] = twice["results"][0]["job_id"]
    text = json.dumps(doc)
    return {
        "malformed JSON": (text[:-10].encode(), 400, "malformed JSON"),
        "not UTF-8": (b'{"format": "llem.upload", "name": "\xff"}', 400, "UTF-8"),
        "a JSON array": (b"[1, 2]", 422, "JSON object"),
        "empty body": (b"", 400, "malformed JSON"),
        "NaN in result.json": (text.replace('"energy_j": ', '"energy_j": NaN, "x": ', 1).encode()
                               if '"energy_j": ' in text else
                               text.replace('"energy_j":', '"energy_j":NaN,"_x":', 1).encode(), 400, "NaN"),
        "Infinity": (text.replace('"batch":', '"batch":Infinity,"_y":', 1).encode(), 400, "Infinity"),
        "1e999": (text.replace('"duration_s":', '"duration_s":1e999,"_z":', 1).encode(), 400, "too large"),
        "wrong result schema version": (wrong_major, 422, "schema_version"),
        "a newer minor version": (newer_minor, 422, "upgrade the server"),
        "wrong manifest schema version": (bad_manifest, 422, "manifest schema"),
        "a result without energy": (not_a_result, 422, "results[2].result.energy"),
        "an unknown key": (unknown_key, 422, "joules_i_made_up"),
        "a wrong type": (wrong_type, 422, "results[1].result.batch"),
        "an out-of-range batch": (huge_batch, 422, "out of range"),
        "a result of no planned job": (orphan, 422, "not a job"),
        "a job twice": (twice, 422, "twice"),
        "not an upload": ({"hello": "world"}, 422, "format"),
        "two results without a manifest": (dict(doc, study=None), 422, "exactly one"),
        **_hostile_cases(doc),
    }


_SKELETON = {"study": {"jobs": [{"job_id": "0"}]}, "results": [{"job_id": "0", "result": {"energy": {}, "config": {},
                                                                                   "extra": {}}}] * 3}
CASES = list(_refusals(_SKELETON))


@pytest.mark.parametrize("case", CASES)
def test_a_bad_upload_is_refused_whole_with_one_message(client, db, tokens, upload_body, case):
    body, status, words = _refusals(_doc(upload_body))[case]
    before = counts(db)
    r = _post(client, body, tokens["alice"])
    assert r.status_code == status, (case, r.status_code, r.text[:300])
    detail = r.json()["detail"]
    assert isinstance(detail, str) and words in detail and "\n" not in detail and len(detail) < 600, detail
    assert counts(db) == before


def test_plain_text_that_looks_dangerous_is_stored_as_text(client, db, tokens, upload_body):
    """HTML and SQL are text like any other: bound as parameters, returned as they came."""
    doc = _doc(upload_body)
    html = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    sql = "x'); DROP TABLE jobs; --"
    doc["study"]["study_name"] = html
    doc["results"][0]["result"]["model"] = sql
    doc["results"][1]["result"]["model"] = "模型 «ünïcödé» 🚀"
    r = _post(client, doc, tokens["alice"])
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/jobs", params={"model": sql}).json()["items"][0]["model"] == sql
    assert client.get("/api/v1/jobs", params={"model": "模型 «ünïcödé» 🚀"}).json()["total"] == 1
    assert client.get(f"/api/v1/studies/{r.json()['study_id']}").json()["name"] == html
    assert counts(db)["jobs"] == len(doc["results"])  # the table is still there


def test_a_body_over_the_limit_is_413_and_never_read_whole(make_client, db, tokens):
    client = make_client()
    before = counts(db)
    big = b'{"format": "llem.upload", "results": [' + b" " * (50 * 2**20) + b"]}"
    r = _post(client, big, tokens["alice"])
    assert r.status_code == 413 and "limit" in r.json()["detail"] and "MiB" in r.json()["detail"]
    small = make_client(max_upload_bytes=1000)
    r = _post(small, b'{"format": "llem.upload"' + b" " * 2000 + b"}", tokens["alice"])
    assert r.status_code == 413
    # without Content-Length (a chunked body) the limit holds as well
    r = small.post("/api/v1/uploads", content=iter([b"{" + b" " * 600, b" " * 600 + b"}"]),
                   headers=bearer(tokens["alice"]))
    assert r.status_code == 413
    assert counts(db) == before


def test_uploads_are_rate_limited_per_user(make_client, tokens, upload_body):
    now = [1000.0]
    client = make_client(clock=lambda: now[0], upload_rate_per_min=2)
    assert _post(client, upload_body, tokens["alice"]).status_code == 201
    assert _post(client, upload_body, tokens["alice"]).status_code == 200
    r = _post(client, upload_body, tokens["alice"])
    assert r.status_code == 429 and int(r.headers["retry-after"]) == 30 and "at most 2 a minute" in r.json()["detail"]
    assert _post(client, upload_body, tokens["bob"]).status_code == 200  # per user
    now[0] += 30.0
    assert _post(client, upload_body, tokens["alice"]).status_code == 200


def test_a_result_dated_at_the_edge_of_time_is_stored(client, tokens, upload_body):
    doc = _doc(upload_body)
    doc["results"][0]["result"]["started_at"] = "0001-01-01T00:00:00+05:00"
    r = _post(client, doc, tokens["alice"])
    assert r.status_code == 201, r.text
    job = client.get("/api/v1/jobs", params={"study": r.json()["study_id"], "sort": "id", "limit": 1}).json()
    assert job["items"][0]["started_at"] is None  # kept in result.json, not read as a time
