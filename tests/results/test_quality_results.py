"""Quality in the results tools, on a real study: two precisions of the tiny model (random weights,
allowed and labelled), quality evaluated, energy from the simulated NVML (a test double for a GPU's
counters: no GPU here). lm-eval, the harness, the study engine and the CLI are real."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from llem.devices import simulated
from llem.results.load import load_path
from llem.results.table import loaded_to_dataframe
from tests.conftest import FAST, run_llem
from tests.devices.sim import gpu

pytestmark = pytest.mark.slow
T = "quality_llem_easy_mc"


@pytest.fixture(scope="module")
def qstudy(tmp_path_factory):
    d = tmp_path_factory.mktemp("qstudy")
    spec = simulated.write_spec(d / "nvml.json", [gpu(0, power_w=150.0, counter_period_ms=20)])
    p = run_llem(["run", "-m", "precision=fp32,bf16", *FAST, "batch=4", "energy=nvml", "energy.baseline.duration_s=0.1",
                  f"energy.baseline.cache_dir={d / 'cache'}", "measurement.quantisation_target=0.05",
                  "quality=lm_eval", "quality.allow_random_weights=true", "quality.limit=8",
                  "quality.tasks=[llem_easy_mc,llem_easy_gen]", f"hydra.sweep.dir={d / 'study'}"], cwd=d,
                 env={"LLEM_SIMULATED_NVML": str(spec)}, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    return d / "study"


def test_to_dataframe_gains_quality_columns_with_stderr_and_quality_per_joule(qstudy):
    df = loaded_to_dataframe(load_path(qstudy))
    assert len(df) == 2 and set(df["precision"]) == {"fp32", "bf16"}
    for c in (f"{T}_acc", f"{T}_acc_stderr", f"{T}_acc_ci95_low", f"{T}_acc_norm", f"{T}_per_joule",
              f"{T}_per_joule_ci95_low", f"{T}_per_joule_ci95_high", f"{T}_energy_j", "quality_llem_easy_gen_exact_match_first_word",
              "quality_llem_easy_gen_energy_per_generated_token_j", "quality_per_joule", "quality_value"):
        assert c in df.columns, c
        assert str(df[c].dtype) == "Float64", (c, df[c].dtype)
    assert str(df[f"{T}_n"].dtype) == "Int64" and (df[f"{T}_n"] == 8).all()
    assert str(df["quality_meaningless"].dtype) == "boolean" and df["quality_meaningless"].all()
    assert (df["quality_task"] == "llem_easy_mc").all() and (df["quality_metric"] == "acc").all()
    r = df.iloc[0]
    assert r[f"{T}_per_joule"] == pytest.approx(r[f"{T}_acc"] * 8 / r[f"{T}_energy_j"])
    assert r[f"{T}_acc_ci95_low"] == pytest.approx(max(0.0, r[f"{T}_acc"] - 1.96 * r[f"{T}_acc_stderr"]), abs=1e-3)
    # the manifest's own to_dataframe() reads the same columns
    from llem.results.manifest import StudyResult

    mdf = StudyResult.load(qstudy / "manifest.json").to_dataframe(qstudy)
    assert f"{T}_per_joule" in mdf.columns


def test_csv_export_round_trips_the_quality_columns(qstudy, tmp_path):
    from llem.results.export import export_table, read_table

    df = loaded_to_dataframe(load_path(qstudy))
    out = export_table(df, "csv", tmp_path / "t.csv", {})
    back = read_table(out)
    pd.testing.assert_frame_equal(back[[c for c in df.columns if c.startswith("quality_")]],
                                  df[[c for c in df.columns if c.startswith("quality_")]])


def test_results_show_has_quality_columns(qstudy, tmp_path):
    p = run_llem(["results", "show", str(qstudy), "--wide"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    # short headers, each mapped to its column name in the "columns:" note
    assert "llem_easy_mc acc ± stderr" in p.stdout and "llem_easy_mc correct/J [95% CI]" in p.stdout
    assert f"llem_easy_mc acc ± stderr = {T}_acc" in " ".join(p.stdout.split())
    assert f"llem_easy_mc correct/J = {T}_per_joule" in " ".join(p.stdout.split())
    assert "llem_easy_gen exact_match_first_word ± stderr" in p.stdout
    assert " ± " in p.stdout and "†" in p.stdout and "random weights" in p.stdout
    # fitted to 120 columns, what does not fit is named in a note
    p = run_llem(["results", "show", str(qstudy)], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert all(len(line) <= 120 for line in p.stdout.splitlines() if line.startswith(("job", "----", "0")))
    assert "quality_llem_easy_" in p.stdout
    p = run_llem(["results", "show", str(qstudy), "--sort", f"{T}_per_joule", "--columns", f"job_id,{T}_acc"],
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr


def test_results_plot_draws_accuracy_against_energy_with_error_bars_and_pareto(qstudy, tmp_path):
    from llem.results.quality import fig_quality_vs_energy

    df = loaded_to_dataframe(load_path(qstudy))
    plot = fig_quality_vs_energy(df)
    assert plot.figure is not None, plot.skipped
    axes = plot.figure.axes
    assert len(axes) == 2 and {a.get_title().split(":")[0] for a in axes} == {"llem_easy_mc", "llem_easy_gen"}
    bars = [c for c in axes[0].containers if hasattr(c, "has_xerr")]
    assert len(bars) == 2 and all(c.has_xerr and c.has_yerr for c in bars)
    assert any(line.get_label() == "Pareto frontier" for line in axes[0].get_lines())
    assert "[random weights]" in " ".join(t.get_text() for t in axes[0].get_legend().get_texts())
    p = run_llem(["results", "plot", str(qstudy), "--out", str(tmp_path / "plots")], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "plots" / "quality_vs_energy.png").stat().st_size > 10_000


def test_results_compare_compares_quality(qstudy, tmp_path):
    from llem.results.compare import compare_frames

    df = loaded_to_dataframe(load_path(qstudy))
    cmp = compare_frames(df, df)
    assert {f"{T}_acc", f"{T}_per_joule", "quality_llem_easy_gen_exact_match_first_word"} <= set(cmp["metric"])
    row = cmp[cmp["metric"] == f"{T}_per_joule"].iloc[0]
    assert row["diff"] == 0 and bool(row["ci_overlap"]) is True
    p = run_llem(["results", "compare", str(qstudy), str(qstudy), "--metric", f"{T}_acc"], cwd=tmp_path)
    assert p.returncode == 0 and f"{T}_acc" in p.stdout, p.stderr


def test_leaderboard_export_carries_quality_and_round_trips(qstudy, tmp_path):
    from llem.results.leaderboard import SCHEMA_VERSION, leaderboard_order, read_leaderboard_study

    p = run_llem(["results", "export", str(qstudy), "--format", "leaderboard", "--out", str(tmp_path / "lb")],
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    index = json.loads((tmp_path / "lb" / "index.json").read_text())
    doc = json.loads((tmp_path / "lb" / index["studies"][0]["file"]).read_text())
    # quality came with 1.1; later MINOR versions only add keys
    assert doc["schema_version"] == index["schema_version"] == SCHEMA_VERSION
    assert SCHEMA_VERSION.split(".")[0] == "1" and int(SCHEMA_VERSION.split(".")[1]) >= 1
    qcols = [c for c in doc["columns"] if c["group"] == "quality"]
    assert {c["key"] for c in qcols} >= {f"{T}_acc", f"{T}_per_joule"} and all(c["has_ci"] for c in qcols)
    e = doc["entries"][0]
    m = e["metrics"][f"{T}_acc"]
    assert set(m) == {"value", "ci95_low", "ci95_high", "n", "stderr"} and m["n"] == 8
    assert e["quality"]["meaningless"] is True and e["quality"]["status"] == "completed"
    back = read_leaderboard_study(tmp_path / "lb" / index["studies"][0]["file"])
    pd.testing.assert_frame_equal(back, leaderboard_order(loaded_to_dataframe(load_path(qstudy))))


def test_quality_finding_script_summarises_a_study(qstudy, tmp_path):
    """benchmarks/gpu_validation/quality_finding.py (the GPU finding's reproducer) on this study: accuracy, J/token and
    quality_per_joule per precision, each with its interval."""
    from tests.conftest import load_benchmark

    qf = load_benchmark("quality_finding")
    assert qf.main(["--study", str(qstudy), "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "quality_finding.json").read_text())
    assert {r["precision"] for r in summary["rows"]} == {"fp32", "bf16"}
    r = summary["rows"][0]
    assert r["task"] == "llem_easy_mc" and r["samples"] == 8 and r["accuracy"] is not None
    assert r["energy_per_output_token_j_ci95"][0] is not None and r["quality_per_joule"] is not None
    md = (tmp_path / "quality_finding.md").read_text()
    assert md.count("| fp32 |") == 1 and md.count("| bf16 |") == 1 and "Same questions in every job" in md
