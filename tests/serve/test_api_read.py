"""The read API on SQLite and PostgreSQL: lists with filters, sorting and pages; one study; one job
with its time series; comparisons; and the leaderboard files, equal to what the export writes."""
import json

import pandas as pd
import pytest

from llem.result import ExperimentResult
from llem.results.manifest import StudyResult
from tests.serve.conftest import bearer


@pytest.fixture
def stored(client, tokens, upload_body):
    r = client.post("/api/v1/uploads", content=upload_body, headers=bearer(tokens["alice"]))
    assert r.status_code == 201, r.text
    return r.json()


def _results(study_dir):
    m = StudyResult.load(study_dir)
    return {j.job_id: ExperimentResult.load(study_dir / j.result_path) for j in m.jobs if j.result_path}


def _without_generated_at(doc):
    return {k: v for k, v in doc.items() if k != "generated_at"}


def test_leaderboard_file_is_the_export_document(client, stored, study_dir, tmp_path):
    from llem.cli.main import main

    assert main(["results", "export", str(study_dir), "--format", "leaderboard", "--out", str(tmp_path / "lb"),
                 "--quiet"]) == 0
    exported_index = json.loads((tmp_path / "lb" / "index.json").read_text())
    (line,) = exported_index["studies"]
    exported = json.loads((tmp_path / "lb" / line["file"]).read_text())
    index = client.get("/leaderboard/index.json").json()
    assert index["schema"] == exported_index["schema"] and index["schema_version"] == exported_index["schema_version"]
    (served_line,) = index["studies"]
    assert served_line["file"] == line["file"] == stored["leaderboard_url"].rsplit("/", 1)[1]
    assert {k: v for k, v in served_line.items() if k != "generated_at"} == \
        {k: v for k, v in line.items() if k != "generated_at"}
    served = client.get(f"/leaderboard/{served_line['file']}")
    assert served.headers["content-type"] == "application/json"
    doc = served.json()
    assert _without_generated_at(doc) == _without_generated_at(exported)
    # it lists every planned job, the ones without a result too, unranked and with the reason
    assert len(doc["entries"]) == len(StudyResult.load(study_dir).jobs)
    assert [e["rank"] for e in doc["entries"]][-1] is None
    # every entry names its job file, and the server serves each one as the export wrote it
    from llem.serve.queries import NO_UPLOADED_TIMESERIES

    assert all(e["detail"] for e in doc["entries"])
    with_series = 0
    for e in doc["entries"]:
        r = client.get(f"/leaderboard/{e['detail']}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json", (e["detail"], r.text)
        job, want = r.json(), json.loads((tmp_path / "lb" / e["detail"]).read_text())
        assert job["entry"] == e and job["generated_at"] == doc["generated_at"]
        if want["result"] is not None and not want["timeseries"]["gpus"]:
            # the export says no parquet was beside the result; the server can only say none was uploaded
            assert job["timeseries"]["not_available_reason"] == NO_UPLOADED_TIMESERIES
            job["timeseries"]["not_available_reason"] = want["timeseries"]["not_available_reason"]
        with_series += bool(want["timeseries"]["gpus"])
        assert _without_generated_at(job) == _without_generated_at(want), e["detail"]
    assert with_series >= 1  # the fixture's job 0000 has a time series: compared sample by sample
    for missing in (f"{served_line['id']}/nope.json", "other-study/0000.json", "..%2F..%2Fetc/passwd.json"):
        assert client.get(f"/leaderboard/{missing}").status_code == 404


def test_a_single_result_is_its_own_leaderboard_document(client, tokens, tmp_path):
    from llem.cli.main import main
    from llem.results.remote import build_upload
    from tests.results.results_fixtures import write_measured_job

    job = write_measured_job(tmp_path, "one-job", j_per_token=0.4)
    body, _ = build_upload(job)
    r = client.post("/api/v1/uploads", content=body, headers=bearer(tokens["bob"]))
    assert r.status_code == 201, r.text
    assert main(["results", "export", str(job), "--format", "leaderboard", "--out", str(tmp_path / "lb"), "-q"]) == 0
    line = json.loads((tmp_path / "lb" / "index.json").read_text())["studies"][0]
    exported = json.loads((tmp_path / "lb" / line["file"]).read_text())
    served = client.get(r.json()["leaderboard_url"]).json()
    assert _without_generated_at(served) == _without_generated_at(exported)


def test_list_filter_sort_and_page(client, stored, study_dir):
    results = _results(study_dir)
    page = client.get("/api/v1/jobs", params={"limit": 500}).json()
    assert page["total"] == len(results) == len(page["items"])
    by_backend = {}
    for r in results.values():
        by_backend[r.backend] = by_backend.get(r.backend, 0) + 1
    for backend, n in by_backend.items():
        got = client.get("/api/v1/jobs", params={"backend": backend}).json()
        assert got["total"] == n and {j["backend"] for j in got["items"]} == {backend}
    batch = next(iter(results.values())).batch
    got = client.get("/api/v1/jobs", params={"batch": batch}).json()
    assert got["total"] == sum(r.batch == batch for r in results.values())
    measured = client.get("/api/v1/jobs", params={"measured": "true"}).json()
    assert measured["total"] == sum(r.energy.measured for r in results.values())
    gpu = client.get("/api/v1/jobs", params={"gpu": "Synthetic GPU", "backend": "vllm", "precision": "fp32"}).json()
    assert gpu["total"] == sum(r.backend == "vllm" and r.precision == "fp32" and r.environment.get("gpus") ==
                               [{"index": 0, "name": "Synthetic GPU"}] for r in results.values())
    assert client.get("/api/v1/jobs", params={"study": stored["study_id"]}).json()["total"] == len(results)
    assert client.get("/api/v1/jobs", params={"study": stored["study_id"] + 1}).json()["total"] == 0
    first = min(pd.Timestamp(r.started_at) for r in results.values())
    assert client.get("/api/v1/jobs", params={"since": first.isoformat()}).json()["total"] == len(results)
    assert client.get("/api/v1/jobs", params={"until": first.isoformat()}).json()["total"] == 0
    later = (first + pd.Timedelta(days=1)).isoformat()
    assert client.get("/api/v1/jobs", params={"since": later}).json()["total"] == 0

    for order in ("asc", "desc"):
        items = client.get("/api/v1/jobs", params={"sort": "energy_per_output_token_j", "order": order,
                                                   "limit": 500}).json()["items"]
        values = [j["energy_per_output_token_j"] for j in items]
        known = [v for v in values if v is not None]
        assert known == sorted(known, reverse=order == "desc")
        # a job whose energy was not measured is never ranked as 0: it comes last either way
        assert values[len(known):] == [None] * (len(values) - len(known)) and len(known) < len(values)
    full = client.get("/api/v1/jobs", params={"sort": "output_tokens_per_s", "limit": 500}).json()["items"]
    part = client.get("/api/v1/jobs", params={"sort": "output_tokens_per_s", "limit": 3, "offset": 3}).json()
    assert [j["id"] for j in part["items"]] == [j["id"] for j in full[3:6]] and part["total"] == len(full)


def test_bad_query_values_are_4xx(client, stored):
    for params in ({"sort": "result_json"}, {"limit": 0}, {"limit": 501}, {"batch": "eight"}, {"order": "sideways"},
                   {"since": "yesterday"}, {"batch": 2**40}, {"offset": -1}):
        r = client.get("/api/v1/jobs", params=params)
        assert r.status_code == 422, (params, r.status_code)


def test_one_study_and_one_job(client, stored, study_dir):
    st = client.get(f"/api/v1/studies/{stored['study_id']}").json()
    assert st["manifest"] == json.loads((study_dir / "manifest.json").read_text())
    assert st["owner"] == "alice" and st["verified"] is False and st["kind"] == "study"
    assert st["n_jobs"] == len(st["manifest"]["jobs"]) and st["n_results"] == len(st["jobs"])
    (up,) = st["uploads"]
    assert up["user"] == "alice" and up["verified"] is False and up["client_llem_version"]
    assert up["results_added"] == len(st["jobs"]) and up["results_unchanged"] == 0
    # provenance: where the uploaded results say they ran, from their environment snapshots
    envs = [r.environment for r in _results(study_dir).values()]
    assert up["environment"]["gpus"] == sorted({g["name"] for e in envs for g in e.get("gpus", [])})
    assert up["environment"]["python"] == sorted({e["python"] for e in envs if e.get("python")})
    assert up["environment"]["llem_versions"] == ["0.1.0"]
    results = _results(study_dir)
    with_ts = next(j for j in st["jobs"] if j["job_id"] == "0000")
    detail = client.get(f"/api/v1/jobs/{with_ts['id']}").json()
    assert ExperimentResult.model_validate(detail["result"]) == results["0000"]
    df = pd.read_parquet(study_dir / "0000" / "timeseries.parquet")
    assert set(detail["timeseries"]["columns"]) == set(df.columns)
    assert detail["timeseries"]["columns"]["power_w"] == pytest.approx(df["power_w"].tolist())
    other = next(j for j in st["jobs"] if j["job_id"] == "0001")
    assert client.get(f"/api/v1/jobs/{other['id']}").json()["timeseries"] is None
    assert client.get("/api/v1/jobs/999999").status_code == 404
    assert client.get("/api/v1/studies/999999").status_code == 404
    listed = client.get("/api/v1/studies").json()
    assert listed["total"] == 1 and listed["items"][0]["leaderboard_url"] == stored["leaderboard_url"]
    assert client.get("/api/v1/studies", params={"owner": "bob"}).json()["total"] == 0


def test_compare_two_to_four_jobs(client, stored):
    items = client.get("/api/v1/jobs", params={"measured": "true", "sort": "id"}).json()["items"]
    ids = [j["id"] for j in items[:4]]
    for n in (2, 3, 4):
        cmp = client.get("/api/v1/compare", params={"job": ids[:n]}).json()
        assert [j["id"] for j in cmp["jobs"]] == ids[:n]
        m = next(m for m in cmp["metrics"] if m["metric"] == "energy_per_output_token_j")
        assert [v["value"] for v in m["values"]] == pytest.approx([j["energy_per_output_token_j"] for j in items[:n]])
        a, b = m["values"][0], m["values"][1]
        assert m["against_first"][0]["rel_diff_pct"] == pytest.approx(100 * (b["value"] - a["value"]) / a["value"])
        overlap = max(a["ci95_low"], b["ci95_low"]) <= min(a["ci95_high"], b["ci95_high"])
        assert m["against_first"][0]["ci_overlap"] is overlap
    unmeasured = client.get("/api/v1/jobs", params={"measured": "false"}).json()["items"][0]["id"]
    cmp = client.get("/api/v1/compare", params={"job": [ids[0], unmeasured]}).json()
    m = next(m for m in cmp["metrics"] if m["metric"] == "energy_per_output_token_j")
    assert m["values"][1]["value"] is None and m["values"][1]["missing_reason"]
    assert m["against_first"][0]["diff"] is None
    assert client.get("/api/v1/compare", params={"job": ids[:1]}).status_code == 422
    assert client.get("/api/v1/compare", params={"job": ids[:4] + [unmeasured]}).status_code == 422
    assert client.get("/api/v1/compare", params={"job": [ids[0], ids[0]]}).status_code == 422
    assert client.get("/api/v1/compare", params={"job": [ids[0], 999999]}).status_code == 404


def test_dates_at_the_edge_of_time_are_4xx_not_5xx(client, stored):
    for when in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        r = client.get("/api/v1/jobs", params={"since": when})
        assert r.status_code == 422 and "UTC" in r.json()["detail"]
