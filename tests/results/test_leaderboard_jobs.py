"""Leaderboard schema 1.2: job files (environment, methodology, downsampled time series, phase
split), reasons beside every missing metric, synthetic labels (docs/leaderboard-schema.md)."""
import json

import numpy as np
import pandas as pd
import pytest

from llem.result import ExperimentResult
from llem.results.job_detail import MAX_POINTS, PRIVATE_KEYS, downsample_timeseries, job_file_name
from llem.results.leaderboard import SCHEMA_VERSION, read_leaderboard_study, write_leaderboard
from llem.results.load import load_path
from llem.results.table import SIMULATED_NVML_NOTE, loaded_to_dataframe, synthetic_reason
from tests.results.results_fixtures import SYNTHETIC_NOTE, real_result


@pytest.fixture(scope="module")
def exported(study_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lb")
    loaded = load_path(study_dir)
    sp, ip = write_leaderboard(loaded_to_dataframe(loaded), out, name=loaded.label,
                               design_hash=loaded.study.study_design_hash, loaded=loaded)
    return out, json.loads(sp.read_text())


def test_every_entry_names_its_job_file(exported):
    out, doc = exported
    assert doc["schema_version"] == SCHEMA_VERSION == "1.2"
    assert len(doc["entries"]) == 11
    for e in doc["entries"]:
        job = json.loads((out / e["detail"]).read_text())
        assert job["schema"] == "llem.leaderboard.job" and job["job_id"] == e["job_id"]
        assert job["entry"] == e and job["study"]["id"] == doc["study"]["id"]
    written = {p.relative_to(out).as_posix() for p in (out / doc["study"]["id"]).glob("*.json")}
    assert written == {e["detail"] for e in doc["entries"]}


def test_job_file_carries_what_a_job_page_shows(exported):
    out, doc = exported
    e = next(e for e in doc["entries"] if e["job_id"] == "0000")
    job = json.loads((out / e["detail"]).read_text())
    r = job["result"]
    for key in ("config", "environment", "measurement_methodology", "stats", "latency", "phases", "cycles", "energy"):
        assert r[key], key
    assert r["phases"]["method"] and "prefill_energy_per_prompt_j" in r["phases"]
    ts = job["timeseries"]
    # the fixture's trace: 2 GPUs, 80 samples each, kept as recorded (fewer than MAX_POINTS)
    assert [g["gpu_index"] for g in ts["gpus"]] == [0, 1]
    assert all(g["points"] == g["samples"] == 80 == len(g["t_s"]) == len(g["power_w"]) for g in ts["gpus"])
    assert ts["downsampled"] is False and ts["not_available_reason"] is None
    assert len(ts["measured_windows_s"]) == len(r["cycles"])
    # a job without a trace says why instead of showing an empty chart
    other = json.loads((out / doc["entries"][-1]["detail"]).read_text())
    assert other["timeseries"]["gpus"] == [] and other["timeseries"]["not_available_reason"]


def test_job_files_leave_out_host_identity(exported):
    out, doc = exported
    text = "".join((out / e["detail"]).read_text() for e in doc["entries"])
    for key in PRIVATE_KEYS:
        assert f'"{key}"' not in text, key


def test_missing_metrics_say_why_and_failed_jobs_say_what_failed(exported):
    _, doc = exported
    by_id = {e["job_id"]: e for e in doc["entries"]}
    unmeasured = by_id["0008"]["metrics"]["energy_per_output_token_j"]
    assert unmeasured["value"] is None and unmeasured["not_measured_reason"] == by_id["0008"]["energy_not_measured_reason"]
    failed = by_id["0009"]["metrics"]["output_tokens_per_s"]
    assert failed["value"] is None and failed["not_measured_reason"] == \
        "job failed (OutOfMemoryError: CUDA out of memory (synthetic))"
    assert by_id["0010"]["metrics"]["ttft_ms_p99"]["not_measured_reason"] == "job pending"
    # measured values carry no reason; the phase metrics carry one standard error
    m = by_id["0000"]["metrics"]
    assert "not_measured_reason" not in m["energy_per_output_token_j"]
    assert m["prefill_energy_per_prompt_j"]["value"] is not None and "se" in m["prefill_energy_per_prompt_j"]
    assert {"ttft_ms_p99", "itl_ms_p99"} <= set(m)


def test_synthetic_entries_say_why(exported):
    _, doc = exported
    measured = [e for e in doc["entries"] if e["rank"] is not None]
    assert all(e["synthetic"] and e["synthetic_reason"] == SYNTHETIC_NOTE for e in measured)
    real = next(e for e in doc["entries"] if e["job_id"] == "0008")
    assert real["synthetic"] is False and real["synthetic_reason"] is None


def test_simulated_nvml_results_are_synthetic():
    base = real_result()
    assert synthetic_reason(base) is None
    sim = base.model_copy(update={"environment": {**base.environment, "simulated_nvml": True}})
    assert synthetic_reason(sim) == SIMULATED_NVML_NOTE
    # results written before the key existed say so among the snapshot's errors
    old = base.model_copy(update={"environment": {**base.environment, "errors": [
        "GPU facts come from llem's simulated NVML (LLEM_SIMULATED_NVML), a test double"]}})
    assert synthetic_reason(old) == SIMULATED_NVML_NOTE


def test_a_warning_holding_a_semicolon_stays_one_warning(tmp_path):
    ws = ["energy sums all 2 GPUs visible to the job but the model occupies 1 (cuda [0]); set CUDA_VISIBLE_DEVICES",
          "short window"]
    job = tmp_path / "job"
    real_result().model_copy(update={"warnings": ws}).save(job / "result.json")
    loaded = load_path(job)
    sp, _ = write_leaderboard(loaded_to_dataframe(loaded), tmp_path / "lb", name="w", loaded=loaded)
    assert json.loads(sp.read_text())["entries"][0]["warnings"] == ws


def test_reexport_replaces_job_files_and_reads_back(study_dir, tmp_path):
    loaded = load_path(study_dir)
    df = loaded_to_dataframe(loaded)
    out = tmp_path / "lb"
    sp, _ = write_leaderboard(df, out, name="s", design_hash="ab" * 8, loaded=loaded)
    stale = out / "s-abababab" / "9999.json"
    stale.write_text("{}")
    write_leaderboard(df, out, name="s", design_hash="ab" * 8, loaded=loaded)
    assert not stale.exists() and len(list((out / "s-abababab").glob("*.json"))) == len(df)
    back = read_leaderboard_study(sp)
    assert back["synthetic_reason"].notna().sum() == 8 and "itl_ms_p99" in back.columns


def test_downsampled_series_keep_shape_extremes_and_gaps():
    n = 5000
    t = np.linspace(0, 100, n)
    power = 100 + 50 * (t > 50) + np.sin(t * 7)
    power[1000:1500] = np.nan  # the sampler missed a stretch: the gap must survive
    ts = pd.concat([pd.DataFrame({"t_s": t, "gpu_index": g, "uuid": f"GPU-{g}", "power_w": power + g,
                                  "temperature_c": 40.0, "cycle": np.where(t > 50, 0, -1)}) for g in (0, 1)])
    out = downsample_timeseries(ts, max_points=500)
    assert out["downsampled"] is True and "equal-time buckets" in out["method"]
    for g in out["gpus"]:
        assert g["samples"] == n and g["points"] == len(g["t_s"]) <= 500
        p, lo, hi = (np.array(g[k], dtype=float) for k in ("power_w", "power_w_min", "power_w_max"))
        ok = ~np.isnan(p)
        assert np.all(lo[ok] <= p[ok] + 1e-9) and np.all(p[ok] <= hi[ok] + 1e-9)
        assert 45 <= np.isnan(p).sum() <= 55  # 10% of the span missing: ~50 of 500 buckets
        assert g["t_s"] == sorted(g["t_s"])
        assert max(g["cycle"]) == 0 and min(g["cycle"]) == -1
    assert out["gpus"][1]["power_w_max"][-1] == pytest.approx(out["gpus"][0]["power_w_max"][-1] + 1, abs=0.02)
    assert json.dumps(out, allow_nan=False)  # strict JSON: a missing value is null
    few = downsample_timeseries(ts.head(10), max_points=MAX_POINTS)
    assert few["downsampled"] is False and few["gpus"][0]["points"] == 10


def test_job_file_names_are_safe():
    assert job_file_name("0003_c1") == "0003_c1"
    for hostile in ("../../etc/passwd", "..", "a/b", "<img src=x>", ".hidden"):
        name = job_file_name(hostile)
        assert "/" not in name and not name.startswith(".") and name, (hostile, name)
    assert job_file_name("") == "job"


def test_unreadable_timeseries_is_reported_not_fatal(tmp_path):
    job = tmp_path / "job"
    res: ExperimentResult = real_result().model_copy(update={"timeseries_path": "timeseries.parquet"})
    res.save(job / "result.json")
    (job / "timeseries.parquet").write_text("not parquet")
    loaded = load_path(job)
    sp, _ = write_leaderboard(loaded_to_dataframe(loaded), tmp_path / "lb", name="t", loaded=loaded)
    e = json.loads(sp.read_text())["entries"][0]
    ts = json.loads((tmp_path / "lb" / e["detail"]).read_text())["timeseries"]
    assert ts["gpus"] == [] and ts["not_available_reason"].startswith("cannot read timeseries.parquet")
