"""``llem run --help`` leads with llem's own flags; resuming a finished study says there is nothing to do."""
from __future__ import annotations

import json

import pytest

from tests.conftest import FAST, run_llem


@pytest.mark.parametrize("args", [["run", "--help"], ["run", "-h"], ["run", "-m", "--help"]])
def test_run_help_starts_with_llem_flags_then_hydra(tmp_path, args):
    p = run_llem(args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.startswith("usage: llem run"), out[:200]
    flags = out[:out.index("examples:")]
    for flag in ("-m, --multirun", "--dry-run", "--resume DIR", "-q, --quiet", "--cfg job"):
        lines = [ln.strip() for ln in flags.splitlines() if ln.strip().startswith(flag)]
        assert len(lines) == 1 and lines[0][len(flag):].strip(), flag  # one line each, with what it does
    # Hydra's help follows: its config groups, after llem's flags
    assert "== Configuration groups ==" in out
    assert out.index("--resume DIR") < out.index("== Configuration groups ==")
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


@pytest.mark.slow
def test_resume_of_a_completed_study_says_nothing_to_do(tmp_path, monkeypatch):
    study = tmp_path / "study"
    p = run_llem(["run", "-m", "batch=1,2", *FAST, "energy.baseline.enabled=false", f"hydra.sweep.dir={study}"],
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    manifest = (study / "manifest.json").read_bytes()
    results = {d: (study / d / "result.json").read_bytes() for d in ("0000", "0001")}

    p = run_llem(["run", "--resume", str(study)], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("nothing to do: all 2 jobs completed"), p.stdout
    assert "2 completed, 0 failed" in p.stdout  # the study's table, as after a run
    # nothing ran and nothing was rewritten
    assert (study / "manifest.json").read_bytes() == manifest
    assert all((study / d / "result.json").read_bytes() == b for d, b in results.items())
    assert json.loads(manifest)["summary"]["completed"] == 2

    q = run_llem(["run", "--resume", str(study), "--quiet"], cwd=tmp_path)
    assert q.returncode == 0 and q.stdout == "" and q.stderr == ""

    # the library call returns the study, as after a resume that ran jobs
    from llem.cli.study_api import resume_study

    monkeypatch.chdir(tmp_path)
    m = resume_study(study)
    assert [j.status for j in m.jobs] == ["completed", "completed"]
    assert (study / "manifest.json").read_bytes() == manifest
