"""One row per job, the shared vocabulary, and honest missing values."""
import json
import shutil

import pandas as pd
import pytest

from llem.errors import ConfigError
from llem.results.load import load_path, load_result
from llem.results.manifest import StudyResult
from llem.results.table import loaded_to_dataframe, results_to_dataframe


def test_study_dataframe_has_one_row_per_planned_job(study_dir):
    study = StudyResult.load(study_dir)
    df = study.to_dataframe(study_dir)
    assert len(df) == len(study.jobs)
    assert list(df["job_id"]) == [j.job_id for j in study.jobs]
    assert dict(df["status"].value_counts()) == {"completed": 9, "failed": 1, "pending": 1}
    for col in ("energy_j", "energy_adjusted_j", "baseline_power_w", "energy_per_output_token_j",
                "energy_per_output_token_j_ci95_low", "energy_per_output_token_j_ci95_high",
                "output_tokens_per_s", "tokens_per_joule", "ttft_ms_p50", "itl_ms_p50", "tpot_ms_mean",
                "e2e_latency_ms_p50", "config_hash", "study_design_hash", "error_message", "backend", "batch"):
        assert col in df.columns, col


def test_metrics_match_the_result_files(study_dir):
    df = load_df(study_dir)
    study = StudyResult.load(study_dir)
    for job in study.jobs[:8]:
        res = load_result(study_dir / job.result_path)
        row = df[df["job_id"] == job.job_id].iloc[0]
        assert row["energy_per_output_token_j"] == pytest.approx(res.energy.energy_per_output_token_j)
        st = res.stats["energy_per_output_token_j"]
        assert row["energy_per_output_token_j_ci95_low"] == pytest.approx(st.ci95_low)
        assert row["energy_per_output_token_j_ci95_high"] == pytest.approx(st.ci95_high)
        assert row["output_tokens_per_s"] == pytest.approx(res.output_tokens_per_s)
        assert row["ttft_ms_p50"] == pytest.approx(res.latency.ttft_ms.p50)
        assert row["batch"] == res.batch and row["backend"] == res.backend


def load_df(path):
    return loaded_to_dataframe(load_path(path))


def test_unmeasured_energy_is_missing_with_a_reason_never_zero(study_dir):
    df = load_df(study_dir)
    real = df[df["job_id"] == "0008"].iloc[0]
    assert bool(real["energy_measured"]) is False
    for col in ("energy_j", "energy_per_output_token_j", "tokens_per_joule", "energy_per_output_token_j_ci95_low"):
        assert pd.isna(real[col]), col
    assert "no energy meter" in real["energy_not_measured_reason"]
    # throughput was measured on the real run and must survive
    assert real["output_tokens_per_s"] > 0
    failed = df[df["status"] == "failed"].iloc[0]
    assert failed["error_type"] == "OutOfMemoryError"
    assert pd.isna(failed["energy_per_output_token_j"])
    assert "no result.json" in failed["energy_not_measured_reason"]
    assert not (df["energy_j"].fillna(-1) == 0).any()


def test_copied_study_reads_from_where_it_is_not_where_it_was(study_dir, tmp_path):
    moved = tmp_path / "copied"
    shutil.copytree(study_dir, moved)
    # the manifest still records the original absolute study_dir; point it somewhere dead
    m = json.loads((moved / "manifest.json").read_text())
    m["study_dir"] = "/nonexistent/cluster/scratch"
    (moved / "manifest.json").write_text(json.dumps(m))
    df = load_df(moved)
    assert df["energy_per_output_token_j"].notna().sum() == 8
    assert StudyResult.load(moved).to_dataframe(moved)["energy_per_output_token_j"].notna().sum() == 8


def test_single_result_and_directory_without_manifest(real_job, study_dir, tmp_path):
    one = load_path(real_job / "result.json")
    assert one.kind == "result" and len(one.entries) == 1
    assert load_path(real_job).kind == "result"
    bare = tmp_path / "bare"
    shutil.copytree(study_dir, bare)
    (bare / "manifest.json").unlink()
    loaded = load_path(bare)
    assert loaded.kind == "directory"
    assert len(loaded.entries) == 9  # the jobs that wrote result.json


def test_results_to_dataframe_matches_single_loader(real_job):
    res = load_result(real_job)
    df = results_to_dataframe([res])
    assert len(df) == 1 and df.loc[0, "config_hash"] == res.config_hash
    assert df.loc[0, "output_tokens"] == res.output_tokens


def test_swept_config_keys_become_columns(tmp_path):
    from tests.results.results_fixtures import real_result

    a = real_result()
    cfg = json.loads(json.dumps(a.config))
    cfg["pytorch"]["attn_implementation"] = "sdpa"
    b = a.model_copy(update={"config": cfg})
    df = results_to_dataframe([a, b])
    assert "pytorch.attn_implementation" in df.columns
    assert list(df["pytorch.attn_implementation"].astype(object).where(df["pytorch.attn_implementation"].notna(),
                                                                        None)) == [None, "sdpa"]


def test_bad_paths_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_path(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no manifest.json"):
        load_path(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "result.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a valid llem result.json"):
        load_result(bad)


def test_corrupt_result_in_a_study_is_reported_not_dropped(study_dir, tmp_path):
    copy = tmp_path / "s"
    shutil.copytree(study_dir, copy)
    (copy / "0001" / "result.json").write_text('{"truncated": ')
    df = load_df(copy)
    row = df[df["job_id"] == "0001"].iloc[0]
    assert "not a valid llem result.json" in row["result_problem"]
    assert pd.isna(row["energy_per_output_token_j"])
