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
    start = next(i for i, ln in enumerate(lines) if ln.startswith("----"))
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
    lines = r.stdout.splitlines()
    i = next(i for i, ln in enumerate(lines) if " energy_per_output_token_j " in ln)
    assert lines[i + 1].strip() == "note: B: energy not measured [1]"


def test_compare_stays_readable_when_energy_is_missing(jobs, study, tmp_path):
    # one side without energy: each row stays one short line, the note under it points at one
    # numbered reason printed once, and both sides say how (or whether) energy was measured
    r = run_llem(["results", "compare", str(jobs[2]), str(jobs[0]), "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert all(len(ln) <= 120 for ln in out.splitlines()), max(out.splitlines(), key=len)
    head = out.split("\n\n")[0]
    assert head.split("\nB: ")[0].endswith("energy: not measured") and "energy: synthetic" in head.split("\nB: ")[1]
    reason = "no energy meter is available here"
    assert out.count(reason) == 1 and "[1] A " in out
    notes = [ln for ln in out.splitlines() if ln.strip().startswith("note:")]
    assert notes and all(n.strip().startswith("note: A: energy not measured [1]") for n in notes)
    # throughput is compared as usual
    assert "output_tokens_per_s" in out and "+" in next(ln for ln in out.splitlines() if "output_tokens_per_s" in ln)
    # two studies with unmeasured and failed jobs: one title line per matched pair, each reason once
    r = run_llem(["results", "compare", str(study), str(study), "-q"], cwd=tmp_path)
    assert r.returncode == 0 and "pytorch tiny-llama fp32 batch 1: A 0000, B 0000 (config_hash)" in r.stdout
    assert r.stdout.count(reason) == 1 and r.stdout.count("CUDA out of memory (synthetic)") == 1
    assert "note: A: job failed [2]; B: job failed [2]" in r.stdout
    assert all(len(ln) <= 120 for ln in r.stdout.splitlines())


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
    assert pngs == ["backends_side_by_side.png", "energy_per_token_vs_batch.png", "pareto_throughput_vs_energy.png",
                    "phases_prefill_decode.png", "throughput_latency_vs_batch.png", "timeseries_0000.png"]
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    assert "llem: plotting" in r.stderr
    r = run_llem(["results", "plot", str(jobs[2]), "--out", str(tmp_path / "p2"), "-q"], cwd=tmp_path)
    assert r.returncode == 0
    assert "skipped energy_per_token_vs_batch: no job has a measured" in r.stdout
    # a result without energy still gets the figures that need none
    assert sorted(p.name for p in (tmp_path / "p2").glob("*.png")) == ["backends_side_by_side.png",
                                                                      "throughput_latency_vs_batch.png"]


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


def test_show_fits_120_columns_and_says_what_it_hid(study, tmp_path):
    r = run_llem(["results", "show", str(study), "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("\nnotes:")[0]
    assert max(len(ln) for ln in table.splitlines()) <= 120
    assert "all jobs: model=tiny-llama" in r.stdout  # a column equal everywhere moves above the table
    hidden = next(ln for ln in r.stdout.splitlines() if "hidden to fit 120 columns" in ln)
    assert "tokens_per_joule" in hidden
    # the row identity and both raw and adjusted energy stay
    head = _header(r.stdout)
    for label in ("job", "status", "backend", "precision", "batch", "J/token [95% CI]", "adj. J/token [95% CI]",
                  "tok/s [95% CI]"):
        assert label in head, label
    wide = run_llem(["results", "show", str(study), "--wide", "-q"], cwd=tmp_path)
    assert wide.returncode == 0 and "tokens/J [95% CI]" in _header(wide.stdout) and "hidden" not in wide.stdout
    assert max(len(ln) for ln in wide.stdout.split("\nnotes:")[0].splitlines()) > 120
    cols = run_llem(["results", "show", str(study), "--columns", "job_id,tokens_per_joule,ttft_ms_p90", "-q"],
                    cwd=tmp_path)
    assert cols.returncode == 0 and _header(cols.stdout).split() == ["job", "tokens/J", "[95%", "CI]", "ttft_ms_p90"]
    bad = run_llem(["results", "show", str(study), "--wide", "--columns", "job_id", "-q"], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--wide" in bad.stderr


def _header(stdout: str) -> str:
    lines = stdout.splitlines()
    return lines[next(i for i, ln in enumerate(lines) if ln.startswith("----")) - 1]


def test_show_cells_print_points_inside_their_intervals(study, tmp_path):
    import re

    r = run_llem(["results", "show", str(study), "-q"], cwd=tmp_path)
    cells = re.findall(r"(\d[\d.]*) \[(-?[\d.]+), (-?[\d.]+)\]", r.stdout)
    assert len(cells) >= 24
    for v, lo, hi in cells:
        assert 0 < float(lo) <= float(v) <= float(hi)


def test_show_warnings_lists_every_warning(tmp_path):
    from tests.results.results_fixtures import real_result, synthetic_result

    d = tmp_path / "warned"
    d.mkdir()
    res = synthetic_result(real_result(), backend="vllm", batch=1, j_per_token=0.5, tokens_per_s=50.0)
    ws = ["high CV: throughput (output tokens/s) varies 47.0% across cycles (threshold 5.0%)",
          "not steady: output_tokens_per_s has a falling trend across cycles (72, 60, 45, 30, 23 tok/s; "
          "Mann-Kendall p=0.017 < 0.05)"]
    res.model_copy(update={"warnings": ws}).save(d / "result.json")
    plain = run_llem(["results", "show", str(d), "-q"], cwd=tmp_path)
    assert "2 measurement warning(s) in 1 job(s); --warnings lists them" in plain.stdout
    assert "falling trend" not in plain.stdout
    r = run_llem(["results", "show", str(d), "--warnings", "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    block = r.stdout.split("\nwarnings (2):\n")[1]
    assert "(vllm tiny-llama fp32 batch 1): 2" in block
    listed = []
    for ln in block.splitlines()[1:]:
        if ln.startswith("    - "):
            listed.append(ln[6:])
        elif ln.startswith("      ") and listed:
            listed[-1] += " " + ln.strip()  # a wrapped line continues the warning above it
    assert listed == ws
    assert all(len(ln) <= 120 for ln in block.splitlines())
