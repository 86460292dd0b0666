"""`llem results ...` as a user types it: tables, compare, every export, plots, and bad input (exit 2)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import run_llem
from tests.results.results_fixtures import make_study, write_measured_job, write_real_job


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs")
    return (write_measured_job(root, "a", j_per_token=0.5, seed=1), write_measured_job(root, "b", j_per_token=0.8,
                                                                                         seed=2),
            write_real_job(root))


def _table_rows(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("------"))
    out = []
    for ln in lines[start + 1:]:
        if not ln.strip():
            break
        out.append(ln)
    return out


def test_show_study_sorted_by_metric(study, tmp_path):
    r = run_llem(["results", "show", str(study), "--sort", "energy_per_output_token_j", "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # --quiet: no progress
    rows = _table_rows(r.stdout)
    assert len(rows) == 11
    df = pd.DataFrame(json.loads((study / "manifest.json").read_text())["jobs"])
    measured = df.dropna(subset=["energy_per_output_token_j"]).sort_values("energy_per_output_token_j")
    shown = [ln.split()[0] for ln in rows]
    assert shown[:8] == list(measured["job_id"])
    assert all("n/a" in ln for ln in rows[8:])  # unmeasured last, shown as n/a, never 0
    assert "no energy meter is available" in r.stdout
    assert "SYNTHETIC TEST DATA" in r.stdout


def test_show_descending_and_single_result(jobs, study, tmp_path):
    r = run_llem(["results", "show", str(study), "--sort", "output_tokens_per_s", "--desc", "-q"], cwd=tmp_path)
    assert r.returncode == 0
    assert _table_rows(r.stdout)[0].split()[0] == "0007"  # vllm batch 8 is the fastest synthetic job
    r = run_llem(["results", "show", str(jobs[2] / "result.json")], cwd=tmp_path)
    assert r.returncode == 0 and len(_table_rows(r.stdout)) == 1


def test_show_progress_on_stderr_unless_quiet(study, tmp_path):
    r = run_llem(["results", "show", str(study)], cwd=tmp_path)
    assert r.returncode == 0
    assert "llem: loading results 11/11" in r.stderr
    assert "loading results" not in r.stdout


def test_show_carbon_is_a_separate_section(study, tmp_path):
    r = run_llem(["results", "show", str(study), "--carbon", "FRA", "--pue", "1.1", "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    table, _, carbon = r.stdout.partition("\ncarbon (derived")
    assert "gCO2e" not in table and "carbon" not in _table_rows(r.stdout)[0]
    assert "source:" in carbon and "PUE 1.1" in carbon and "grid FRA" in carbon


def test_compare_two_results(jobs, tmp_path):
    r = run_llem(["results", "compare", str(jobs[0]), str(jobs[1]), "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if " energy_per_output_token_j " in ln)
    assert "NO (differ)" in line and "+" in line and "%" in line
    r = run_llem(["results", "compare", str(jobs[0]), str(jobs[2]), "-q"], cwd=tmp_path)
    assert r.returncode == 0
    line = next(ln for ln in r.stdout.splitlines() if " energy_per_output_token_j " in ln)
    assert "B: energy not measured" in line


@pytest.mark.parametrize("fmt,ext", [("csv", ".csv"), ("parquet", ".parquet"), ("json", ".json")])
def test_export_round_trips(study, tmp_path, fmt, ext):
    from llem.results.export import read_table
    from llem.results.load import load_path
    from llem.results.table import loaded_to_dataframe

    out = tmp_path / f"t{ext}"
    r = run_llem(["results", "export", str(study), "--format", fmt, "--out", str(out), "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out)
    pd.testing.assert_frame_equal(read_table(out), loaded_to_dataframe(load_path(study)))


def test_export_leaderboard(study, tmp_path):
    from llem.results.leaderboard import leaderboard_order, read_leaderboard_study
    from llem.results.load import load_path
    from llem.results.table import loaded_to_dataframe

    out = tmp_path / "lb"
    r = run_llem(["results", "export", str(study), "--format", "leaderboard", "--out", str(out), "-q"],
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    index = json.loads((out / "index.json").read_text())
    [entry] = index["studies"]
    back = read_leaderboard_study(out / entry["file"])
    pd.testing.assert_frame_equal(back, leaderboard_order(loaded_to_dataframe(load_path(study))))


def test_plot_writes_pngs_and_reports_skips(study, jobs, tmp_path):
    out = tmp_path / "plots"
    r = run_llem(["results", "plot", str(study), "--out", str(out)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["energy_per_token_vs_batch.png", "pareto_throughput_vs_energy.png",
                    "phases_prefill_decode.png", "timeseries_0000.png"]
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    assert "llem: plotting" in r.stderr
    r = run_llem(["results", "plot", str(jobs[2]), "--out", str(tmp_path / "p2"), "-q"], cwd=tmp_path)
    assert r.returncode == 0
    assert "skipped energy_per_token_vs_batch: no job has a measured" in r.stdout
    assert not list((tmp_path / "p2").glob("*.png")) if (tmp_path / "p2").exists() else True


BAD_INPUT = [
    (["show", "{missing}"], "DIR"),
    (["show", "{study}", "--sort", "joules"], "--sort"),
    (["show", "{study}", "--carbon", "ATLANTIS"], "--carbon"),
    (["show", "{study}", "--carbon", "FRA", "--pue", "0.5"], "--pue"),
    (["show", "{study}", "--columns", "job_id,joules"], "--columns"),
    (["export", "{study}", "--format", "xml", "--out", "{out}"], "--format"),
    (["export", "{study}", "--format", "csv", "--out", "{tmp}"], "--out"),
    (["compare", "{study}", "{missing}"], "DIR"),
    (["compare", "{study}", "{study}", "--metric", "joules"], "--metric"),
    (["plot", "{missing}"], "DIR"),
    (["frobnicate"], "unknown action"),
]


def _argv(args, study, tmp_path):
    return [a.format(study=study, missing=tmp_path / "missing", out=tmp_path / "out.xml", tmp=tmp_path)
            for a in args]


def _assert_one_line_error(rc, stderr, field):
    assert rc == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert field in lines[0]
    assert any(w in lines[0] for w in ("allowed", "expected", "must be", "give a file")), lines[0]


@pytest.mark.parametrize("args,field", BAD_INPUT)
def test_bad_input_exits_2_with_one_line_and_no_file(study, tmp_path, capsys, args, field):
    from llem.cli.main import main

    rc = main(["results", *_argv(args, study, tmp_path)])
    captured = capsys.readouterr()
    _assert_one_line_error(rc, captured.err, field)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize("args,field", [BAD_INPUT[1], BAD_INPUT[5]])
def test_bad_input_as_typed(study, tmp_path, args, field):
    r = run_llem(["results", *_argv(args, study, tmp_path)], cwd=tmp_path)
    _assert_one_line_error(r.returncode, r.stderr, field)
    assert r.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []
