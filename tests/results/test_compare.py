"""Side-by-side comparison: relative differences and CI overlap, honest about missing values."""
import pandas as pd
import pytest

from llem.errors import ConfigError
from llem.results.compare import ci_overlap, compare_frames
from llem.results.load import load_path
from llem.results.table import loaded_to_dataframe


def frame(path):
    return loaded_to_dataframe(load_path(path))


def test_ci_overlap_rules():
    assert ci_overlap(1.0, 2.0, 1.5, 3.0) is True
    assert ci_overlap(1.0, 2.0, 2.0, 3.0) is True  # touching counts as overlapping
    assert ci_overlap(1.0, 2.0, 2.1, 3.0) is False
    assert ci_overlap(1.0, None, 2.1, 3.0) is None


def test_two_single_results(measured_jobs):
    a, b = (frame(p) for p in measured_jobs)
    cmp = compare_frames(a, b)
    row = cmp[cmp["metric"] == "energy_per_output_token_j"].iloc[0]
    va, vb = a.loc[0, "energy_per_output_token_j"], b.loc[0, "energy_per_output_token_j"]
    assert row["a"] == pytest.approx(va) and row["b"] == pytest.approx(vb)
    assert row["rel_diff_pct"] == pytest.approx((vb - va) / va * 100)
    # 0.5 vs 0.8 J/token with 3% spread: the CIs are far apart
    assert bool(row["ci_overlap"]) is False
    lat = cmp[cmp["metric"] == "ttft_ms_p50"].iloc[0]
    assert pd.isna(lat["ci_overlap"]) and "no CI" in lat["note"]


def test_unmeasured_side_is_explained_not_zero(measured_jobs, real_job):
    cmp = compare_frames(frame(measured_jobs[0]), frame(real_job))
    row = cmp[cmp["metric"] == "energy_per_output_token_j"].iloc[0]
    assert pd.isna(row["b"]) and pd.isna(row["rel_diff_pct"]) and pd.isna(row["diff"])
    assert "B: energy not measured" in row["note"]
    tps = cmp[cmp["metric"] == "output_tokens_per_s"].iloc[0]
    assert tps["b"] > 0 and pd.notna(tps["rel_diff_pct"])


def test_two_studies_match_jobs_by_config(study_dir, study_dir_b):
    a, b = frame(study_dir), frame(study_dir_b)
    cmp = compare_frames(a, b, ["energy_per_output_token_j"])
    matched = cmp[cmp["match"].isin(["config_hash", "config"])]
    assert len(matched) == 8
    # study B was built 20% hungrier per token: every matched pair shows about +20%
    assert matched["rel_diff_pct"].astype(float).between(5, 40).all()
    assert (matched["backend"].astype(str) + matched["batch"].astype(str)).nunique() == 8
    only_a = cmp[cmp["match"] == "only in A"]
    assert set(only_a["job_id_a"]) == {"0008", "0009", "0010"}


def test_mixed_ci_methods_are_flagged(measured_jobs, tmp_path):
    from llem.measure.stats import headline_stats
    from tests.results.results_fixtures import real_result, synthetic_result

    r = synthetic_result(real_result(), backend="pytorch", batch=4, j_per_token=0.5, tokens_per_s=900.0, seed=5)
    boot = r.model_copy(update={"stats": headline_stats(r.cycles, method="bootstrap", samples=300, seed=1)})
    (tmp_path / "boot").mkdir()
    boot.save(tmp_path / "boot" / "result.json")
    a, b = frame(measured_jobs[0]), frame(tmp_path / "boot")
    assert "bootstrap" in b.loc[0, "ci_method"] and a.loc[0, "ci_method"].startswith("Student t")
    cmp = compare_frames(a, b)
    tps = cmp[cmp["metric"] == "output_tokens_per_s"].iloc[0]
    assert "CIs made differently (A: Student t (ratio), B: bootstrap (ratio))" in tps["note"]
    same = compare_frames(*(frame(p) for p in measured_jobs))
    assert not any("CIs made differently" in (n or "") for n in same["note"].fillna(""))


def test_a_result_from_before_the_ratio_estimator_is_shown_with_it(real_job):
    # the stored real result has a bootstrap CI of the mean of per-cycle values, which need not
    # contain its point; its row is recomputed from its cycles, so every row uses one estimator
    from llem.results.load import load_result

    res = load_result(real_job)
    assert res.stats["output_tokens_per_s"].value is None and "bootstrap" in res.stats["output_tokens_per_s"].method
    row = frame(real_job).iloc[0]
    assert "ratio of totals" in row["ci_method"] and "recomputed from the cycles" in row["ci_method"]
    assert row["output_tokens_per_s"] == pytest.approx(res.output_tokens_per_s)
    assert 0 < row["output_tokens_per_s_ci95_low"] <= row["output_tokens_per_s"] <= row["output_tokens_per_s_ci95_high"]


def test_totals_over_different_windows_are_flagged(tmp_path):
    from tests.results.results_fixtures import real_result, synthetic_result

    for name, n in (("a", 3), ("b", 5)):
        (tmp_path / name).mkdir()
        synthetic_result(real_result(), backend="pytorch", batch=4, j_per_token=0.5, tokens_per_s=900.0,
                         n_cycles=n).save(tmp_path / name / "result.json")
    cmp = compare_frames(frame(tmp_path / "a"), frame(tmp_path / "b"))
    row = cmp[cmp["metric"] == "energy_j"].iloc[0]
    assert "a total over each job's windows (A: 768, B: 1280 output tokens)" in row["note"]
    per_tok = cmp[cmp["metric"] == "energy_per_output_token_j"].iloc[0]
    assert pd.isna(per_tok["note"]) or "total over" not in per_tok["note"]


def test_unknown_metric_is_rejected(study_dir, study_dir_b):
    with pytest.raises(ConfigError, match="--metric: 'joules' is not a metric column"):
        compare_frames(frame(study_dir), frame(study_dir_b), ["joules"])
