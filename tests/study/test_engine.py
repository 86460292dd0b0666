"""The study engine with a stand-in launcher: batching for other launchers (Slurm), a
launcher exception mid-study, cooldown, and the manifest after each batch."""
import json

import pytest
from hydra.core.utils import JobReturn, JobStatus

from llem.runners.jobs import failed_result
from llem.study import engine
from llem.study.plan import ExecutionOptions, plan_grid, standalone_composer


@pytest.fixture(scope="module")
def plan4():
    with standalone_composer() as c:
        return plan_grid(["batch=1,2,3,4", "output_len=4"], c, ExecutionOptions(cooldown_s=7))


class FakeLauncher:
    """Like submitit: runs a batch, raises if any job of it was killed."""

    def __init__(self, study_dir, plan, kill=()):
        self.dir, self.plan, self.kill = study_dir, plan, set(kill)
        self.batches = []
        self.manifests_seen = []

    def launch(self, job_overrides, initial_job_idx):
        self.batches.append([o[-1] for o in job_overrides])
        self.manifests_seen.append(json.loads((self.dir / "manifest.json").read_text()))
        rets = []
        for ovr in job_overrides:
            job_id = ovr[-1].split("=", 1)[1].strip("'")
            (self.dir / job_id / ".hydra").mkdir(parents=True)
            if job_id in self.kill:
                continue
            j = next(j for j in self.plan.jobs if j.job_id == job_id)
            r = failed_result(j.config, RuntimeError("x"), "2026-01-01T00:00:00+00:00")
            r.status, r.error_type, r.error_message = "completed", None, None
            r.save(self.dir / job_id / "result.json")
            rets.append(JobReturn(status=JobStatus.COMPLETED, _return_value=0))
        if any(o[-1].split("=", 1)[1].strip("'") in self.kill for o in job_overrides):
            raise RuntimeError("UncompletedJobError: job 123 was killed")  # as submitit does
        return rets


def test_batches_exceptions_and_cooldown(tmp_path, plan4, monkeypatch):
    sleeps = []
    monkeypatch.setattr(engine.time, "sleep", lambda s: sleeps.append(s))
    run = engine.StudyRun(plan=plan4, study_dir=tmp_path, study_name="s", launcher_name="slurm", quiet=True)
    launcher = FakeLauncher(tmp_path, plan4, kill={"0001"})
    m = engine.execute(run, launcher, max_batch_size=2)
    # max_batch_size respected for a launcher that does not schedule itself
    assert launcher.batches == [["hydra.sweep.subdir='0000'", "hydra.sweep.subdir='0001'"],
                                ["hydra.sweep.subdir='0002'", "hydra.sweep.subdir='0003'"]]
    # every planned job is in the manifest before the first launch; the batch is marked running
    first = launcher.manifests_seen[0]
    assert [j["status"] for j in first["jobs"]] == ["running", "running", "pending", "pending"]
    # the second batch ran although the first raised; the exception cost only the killed job
    assert [j.status for j in m.jobs] == ["completed", "lost", "completed", "completed"]
    assert m.jobs[1].error_type == "RuntimeError" and "killed" in m.jobs[1].error_message
    assert sleeps == [7.0]  # one cooldown gap between the two batches
    assert run.exit_code == 1 and m.summary["failed_jobs"] == ["0001"]
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert [j["status"] for j in on_disk["jobs"]] == ["completed", "lost", "completed", "completed"]
    assert on_disk["owner"] == {} and on_disk["finished_at"]
