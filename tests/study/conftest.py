import os
import subprocess
import sys
from pathlib import Path

import pytest

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
