"""The live view without a browser: a study's reporter (llem.study.live) against a real server on
loopback, the server going away and coming back, the SSE stream, and the live endpoints' rules.

The reporter runs here in the test's process with a fake power reader (a *test double* for the
GPUs the study's process would read); tests/serve/test_live_browser.py runs a real study."""
import io
import json
import threading

import httpx
import pytest

from llem.results.manifest import JobEntry, StudyResult
from llem.study.live import LiveReporter
from tests.conftest import wait_for
from tests.serve.conftest import ServerThread, bearer, make_token


class FakePower:
    """Test double for llem.study.live.PowerReader: GPU 0 draws 100 W, then 101 W, ..."""

    def __init__(self):
        self.calls = 0
        self.unavailable_reason = None

    def read(self, visible):
        self.calls += 1
        return [(0, 100.0 + self.calls)]


def manifest(n=3, name="live-test") -> StudyResult:
    jobs = [JobEntry(job_id=f"{i:04d}", index=i, grid_index=i, overrides=[f"batch={2 ** i}"], config_hash="c" * 64,
                     backend="pytorch", model="tiny", precision="fp32", batch=2 ** i) for i in range(n)]
    return StudyResult(study_name=name, study_design_hash="d" * 64, llem_version="0.1.0",
                       created_at="2026-12-07T10:00:00+00:00", updated_at="2026-12-07T10:00:00+00:00",
                       study_dir="/nowhere", jobs=jobs)


def reporter(url, token, **kw):
    kw.setdefault("interval_s", 0.05)
    kw.setdefault("power_interval_s", 0.05)
    kw.setdefault("flush_timeout_s", 20)
    kw.setdefault("max_backoff_s", 0.2)
    kw.setdefault("stream", io.StringIO())
    return LiveReporter(url, token, power=FakePower(), **kw)


def state(url):
    studies = httpx.get(f"{url}/api/v1/live", timeout=30).json()["studies"]
    return studies[0] if studies else None


def statuses(url):
    st = state(url)
    return {j["job_id"]: j["status"] for j in st["jobs"]} if st else {}


def test_a_study_reports_jobs_and_power_and_its_end(server, db):
    token = make_token(db, "alice")
    m = manifest()
    rep = reporter(server.url, token)
    rep.begin(m)
    assert wait_for(lambda: statuses(server.url) == {"0000": "pending", "0001": "pending", "0002": "pending"})
    m.jobs[0].status, m.jobs[0].started_at = "running", "2026-12-07T10:00:01+00:00"
    rep.job(m.jobs[0])
    assert wait_for(lambda: statuses(server.url).get("0000") == "running")
    assert wait_for(lambda: len(state(server.url)["power"].get("0000", {}).get("0", [])) >= 3)
    watts = [w for _, w in state(server.url)["power"]["0000"]["0"]]
    assert watts == sorted(watts) and watts[0] > 100  # the samples the reader gave, in order
    m.jobs[0].status, m.jobs[0].energy_per_output_token_j, m.jobs[0].energy_measured = "completed", 0.5, True
    m.jobs[1].status = "failed"
    m.jobs[1].error_type, m.jobs[1].error_message = "ValueError", "<b>bad</b> kwarg"
    rep.job(m.jobs[0])
    rep.finish(m, "finished")
    assert rep.delivered_final
    st = state(server.url)
    assert st["status"] == "finished" and st["counts"]["completed"] == 1 and st["counts"]["failed"] == 1
    j1 = next(j for j in st["jobs"] if j["job_id"] == "0001")
    assert j1["error_message"] == "<b>bad</b> kwarg"  # stored as text, shown as text
    assert next(j for j in st["jobs"] if j["job_id"] == "0000")["energy_per_output_token_j"] == 0.5


def test_the_study_outlives_the_server_and_the_page_catches_up(db_url, db):
    token = make_token(db, "alice")
    srv = ServerThread(db_url).start()
    m = manifest()
    out = io.StringIO()
    rep = reporter(srv.url, token, stream=out)
    rep.begin(m)
    assert wait_for(lambda: len(statuses(srv.url)) == 3)
    srv.stop()  # the server goes away mid-study
    m.jobs[0].status = "completed"
    rep.job(m.jobs[0])
    m.jobs[1].status = "running"
    rep.job(m.jobs[1])
    assert wait_for(lambda: "is unreachable" in out.getvalue())
    assert rep._thread.is_alive()  # the reporter keeps going, the study never waits for it
    srv = ServerThread(db_url, port=srv.port).start()  # back on the same address, same database
    try:
        assert wait_for(lambda: statuses(srv.url) == {"0000": "completed", "0001": "running", "0002": "pending"})
        assert wait_for(lambda: "reconnected" in out.getvalue())
        m.jobs[1].status = m.jobs[2].status = "completed"
        rep.finish(m, "finished")
        assert rep.delivered_final and set(statuses(srv.url).values()) == {"completed"}
        assert len(httpx.get(f"{srv.url}/api/v1/live").json()["studies"]) == 1  # the same live study, resumed
        assert out.getvalue().count("is unreachable") == 1  # said once per outage, not once per retry
    finally:
        srv.stop()


def test_a_server_that_never_answers_costs_the_study_one_line(db):
    out = io.StringIO()
    rep = reporter("http://127.0.0.1:9", "llem_" + "x" * 43, stream=out, flush_timeout_s=0.3)
    m = manifest(1)
    rep.begin(m)
    m.jobs[0].status = "completed"
    rep.finish(m, "finished")
    assert not rep.delivered_final and not rep._thread.is_alive()
    text = out.getvalue()
    assert "is unreachable" in text and "did not get the study's final state" in text and "llem results push" in text


def test_a_refused_token_stops_the_reports_not_the_study(server, db):
    out = io.StringIO()
    rep = reporter(server.url, "llem_" + "y" * 43, stream=out)
    rep.begin(manifest(1))
    assert wait_for(lambda: "refused" in out.getvalue())
    assert wait_for(lambda: not rep._thread.is_alive())
    rep.finish(manifest(1), "finished")
    assert "did not get" not in out.getvalue() and out.getvalue().count("\n") == 1


def _sse_events(resp, want, found):
    kind = None
    for line in resp.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind:
            found.append((kind, json.loads(line[6:])))
            if len(found) >= want:
                return


def test_the_stream_sends_a_snapshot_then_each_change(server, db):
    token = make_token(db, "alice")
    found = []
    with httpx.Client(timeout=60) as c, c.stream("GET", f"{server.url}/api/v1/live/stream") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        reader = threading.Thread(target=_sse_events, args=(resp, 3, found), daemon=True)
        reader.start()
        assert wait_for(lambda: found)
        assert found[0] == ("snapshot", {"studies": []})
        r = c.post(f"{server.url}/api/v1/live", headers=bearer(token),
                   content=json.dumps({"name": "s", "jobs": [{"job_id": "0000", "status": "pending"}]}))
        live_id = r.json()["id"]
        c.post(f"{server.url}/api/v1/live/{live_id}/events", headers=bearer(token),
               content=json.dumps({"jobs": [{"job_id": "0000", "status": "running"}],
                                   "power": [{"job_id": "0000", "gpu_index": 0, "samples": [[1.0e9, 250.5]]}]}))
        reader.join(60)
    kinds = [k for k, _ in found]
    assert kinds[:2] == ["snapshot", "study"] and found[1][1]["study"]["jobs"][0]["status"] == "pending"
    later = found[2][1]
    assert (later.get("study") or {}).get("jobs", [{}])[0].get("status") == "running" or later.get("samples")


def test_live_endpoints_need_a_token_and_the_owner(client, db, tokens):
    body = json.dumps({"name": "x", "jobs": [{"job_id": "0000", "status": "pending"}]})
    assert client.post("/api/v1/live", content=body).status_code == 401
    live_id = client.post("/api/v1/live", content=body, headers=bearer(tokens["alice"])).json()["id"]
    ev = json.dumps({"jobs": [{"job_id": "0000", "status": "running"}]})
    assert client.post(f"/api/v1/live/{live_id}/events", content=ev).status_code == 401
    assert client.post(f"/api/v1/live/{live_id}/events", content=ev, headers=bearer(tokens["bob"])).status_code == 403
    assert client.post("/api/v1/live/999999/events", content=ev, headers=bearer(tokens["bob"])).status_code == 404
    for bad, status in ((b'{"jobs": [{"job_id": "0000", "status": "exploded"}]}', 422),
                        (b'{"power": [{"job_id": "0000", "gpu_index": 0, "samples": [[1, NaN]]}]}', 400),
                        (b'{"jobs": [{"job_id": "0000", "status": "running", "error_message": "\\u0000"}]}', 400),
                        (b'{"jobs": [{"job_id": "../x", "status": "running"}]}', 422)):
        r = client.post(f"/api/v1/live/{live_id}/events", content=bad, headers=bearer(tokens["alice"]))
        assert r.status_code == status, (bad, r.text)
    assert client.get(f"/api/v1/live/{live_id}").json()["jobs"][0]["status"] == "pending"
    assert client.get("/api/v1/live/999999").status_code == 404


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the reporter's side; both databases are covered above
def test_a_search_reports_each_trial_as_the_sampler_proposes_it(server, db, tmp_path):
    # a real two-trial Optuna search of the tiny model (llem run -m hydra/sweeper=optuna ... --live URL)
    pytest.importorskip("optuna")
    from tests.conftest import FAST, run_llem

    token = make_token(db, "alice")
    study = tmp_path / "search"
    r = run_llem(["run", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.seed=0",
                  "batch=choice(1,2)", *FAST, "energy=none", "measurement.phase_split=false",
                  f"hydra.sweep.dir={study}", "--objective", "output_tokens_per_s", "--live", server.url], cwd=tmp_path, env={"LLEM_API_TOKEN": token})
    assert r.returncode == 0, r.stderr[-3000:]
    st = state(server.url)
    assert st["status"] == "finished" and st["name"] == "search"
    on_disk = json.loads((study / "manifest.json").read_text())["jobs"]
    assert {j["job_id"]: j["status"] for j in st["jobs"]} == {j["job_id"]: j["status"] for j in on_disk}
    assert [j["status"] for j in on_disk] == ["completed", "completed"]
