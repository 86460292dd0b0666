import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus

# the smallest real workload: a study job finishes in seconds on 2 CPU cores
TINY = ["measurement.cycles=2", "measurement.warmup_runs=0", "measurement.min_window_s=0", "output_len=4", "dataset.num_prompts=2",
        "energy.baseline.enabled=false"]


def llem_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "llem", "run", *args]


def run_llem(*args: str, cwd: Path, timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(llem_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


class CallbackLauncher:
    """Stands in for llem's local launcher (which reports each job as it starts and ends):
    each job "runs" by writing a completed result.json."""

    def __init__(self, study_dir, plan):
        self.dir, self.plan = study_dir, plan
        self.on_job_start = self.on_job_end = None
        self.cooldown_s = 0.0
        self.launched = []
        self.reserve_seen = []

    def slots(self):
        return 1

    def launch(self, job_overrides, initial_job_idx):
        from llem.runners.jobs import failed_result

        rets = []
        for k, ovr in enumerate(job_overrides):
            job_id = ovr[-1].split("=", 1)[1].strip("'")
            self.launched.append(job_id)
            self.on_job_start(k, self.dir / job_id, None)
            reserve = self.dir / ".manifest.reserve"
            self.reserve_seen.append(reserve.stat().st_size if reserve.is_file() else 0)
            (self.dir / job_id / ".hydra").mkdir(parents=True)
            j = next(j for j in self.plan.jobs if j.job_id == job_id)
            r = failed_result(j.config, RuntimeError("x"), "2026-12-07T00:00:00+00:00")
            r.status, r.error_type, r.error_message = "completed", None, None
            r.save(self.dir / job_id / "result.json")
            rets.append(JobReturn(status=JobStatus.COMPLETED, _return_value=0))
            self.on_job_end(k, rets[-1])
        return rets
