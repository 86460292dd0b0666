"""Recovery from a corrupt or deleted manifest.json: plan.json (written once when the study
starts) + the job directories rebuild it, and ``llem run --resume DIR --rebuild-manifest``
does that and resumes. Before, the error pointed to ``llem.study.manifest.rebuild()``, which
raised on the same manifest, and rebuilding without a manifest lost the command arguments."""
import json
import shutil

import pytest

from llem.errors import ConfigError
from llem.study import engine
from llem.results.manifest import PLAN_NAME, StudyResult
from llem.study.manifest import StudyPlanRecord, rebuild
from llem.study.plan import ExecutionOptions, plan_grid, standalone_composer
from tests.study.conftest import TINY, CallbackLauncher, run_llem

GRID = ["batch=1,2,3", *TINY]


@pytest.fixture(scope="module")
def plan():
    with standalone_composer() as c:
        return plan_grid(GRID, c, ExecutionOptions())


def _study(study_dir, plan, *, unfinished=("0002",)):
    """A study as ``llem run -m batch=1,2,3 ...`` leaves it: planned, run (jobs stand-in),
    ``unfinished`` jobs without a directory (as if the study was stopped before them)."""
    run = engine.StudyRun(plan=plan, study_dir=study_dir, study_name="bs", launcher_name="local", quiet=True,
                          command_args=["-m", *GRID])
    engine.execute(run, CallbackLauncher(study_dir, plan))
    assert run.exit_code == 0
    for job_id in unfinished:
        shutil.rmtree(study_dir / job_id)
    return run.result


def _corrupt(study_dir, how):
    p = study_dir / "manifest.json"
    if how == "truncated":
        p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2])
    elif how == "garbage":
        p.write_bytes(b"\x00\xffnot json at all\x13" * 40)
    else:
        p.unlink()


CASES = ["truncated", "garbage", "deleted"]


def test_the_plan_is_written_once_at_the_start_with_what_a_rebuild_needs(tmp_path, plan):
    original = _study(tmp_path, plan, unfinished=())
    p = StudyPlanRecord.load(tmp_path / PLAN_NAME)
    assert p.command_args == ["-m", *GRID] and p.study_design_hash == plan.study_design_hash
    assert [(j.job_id, j.config_hash, j.overrides) for j in p.jobs] == \
        [(j.job_id, j.config_hash, j.overrides) for j in original.jobs]
    before = (tmp_path / PLAN_NAME).read_bytes()
    shutil.rmtree(tmp_path / "0001")
    run = engine.StudyRun(plan=plan, study_dir=tmp_path, study_name="bs", launcher_name="local", quiet=True,
                          resume=True, command_args=["-m", *GRID])
    engine.execute(run, CallbackLauncher(tmp_path, plan))
    assert (tmp_path / PLAN_NAME).read_bytes() == before  # a resume of the same plan leaves it alone


@pytest.mark.parametrize("how", CASES)
def test_rebuild_from_the_plan_after_the_manifest_is(tmp_path, plan, how):
    original = _study(tmp_path, plan)
    bad = (tmp_path / "manifest.json").read_bytes()
    _corrupt(tmp_path, how)
    corrupt = (tmp_path / "manifest.json").read_bytes() if how != "deleted" else None
    m = rebuild(tmp_path)
    assert [j.status for j in m.jobs] == ["completed", "completed", "pending"]
    assert m.command_args == original.command_args and m.study_design_hash == original.study_design_hash
    assert [j.config_hash for j in m.jobs] == [j.config_hash for j in original.jobs]
    assert m.jobs[0].output_tokens_per_s == original.jobs[0].output_tokens_per_s
    assert StudyResult.load(tmp_path / "manifest.json") == m
    kept = list(tmp_path.glob("manifest.json.corrupt-*"))
    if how == "deleted":
        assert kept == []
    else:  # never deleted: a person may still want to read what was there
        assert len(kept) == 1 and kept[0].read_bytes() == corrupt != bad


def test_an_unreadable_manifest_without_a_plan_is_left_alone_with_a_clear_error(tmp_path, plan):
    _study(tmp_path, plan)
    (tmp_path / PLAN_NAME).unlink()  # a study from before plan.json
    _corrupt(tmp_path, "truncated")
    corrupt = (tmp_path / "manifest.json").read_bytes()
    with pytest.raises(ConfigError, match="no plan.json to rebuild it from"):
        rebuild(tmp_path)
    assert (tmp_path / "manifest.json").read_bytes() == corrupt


@pytest.mark.parametrize("how", CASES)
def test_resume_names_the_command_that_rebuilds(tmp_path, plan, how):
    study = tmp_path / "study"
    _study(study, plan)
    _corrupt(study, how)
    r = run_llem("--resume", str(study), cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"`llem run --resume {study} --rebuild-manifest`" in line
    assert "llem.study.manifest.rebuild()" not in line


@pytest.mark.slow
@pytest.mark.parametrize("how", CASES)
def test_resume_with_rebuild_manifest_finishes_the_study(tmp_path, plan, how):
    study = tmp_path / "study"
    # the truncated case leaves a job to run for real; the others check the rebuild alone
    original = _study(study, plan, unfinished=("0002",) if how == "truncated" else ())
    done = (study / "0000/result.json").read_bytes()
    _corrupt(study, how)
    r = run_llem("--resume", str(study), "--rebuild-manifest", "-q", cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"rebuilt {study}/manifest.json from plan.json" in r.stderr
    m = StudyResult.load(study / "manifest.json")
    assert [j.status for j in m.jobs] == ["completed"] * 3 and m.finished_at
    assert m.command_args == original.command_args and m.study_design_hash == original.study_design_hash
    assert (study / "0000/result.json").read_bytes() == done
    if how == "truncated":
        res = json.loads((study / "0002/result.json").read_text())
        assert res["status"] == "completed" and res["batch"] == 3
