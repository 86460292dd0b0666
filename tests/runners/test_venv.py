"""The venv runner runs the job in another interpreter and always returns a result."""
import json
import sys

import pytest

from llem.config.compose import load_config
from llem.runners.jobs import execute_job
from llem.runners.venv import VenvRunner

TINY = ["measurement.cycles=2", "measurement.warmup_runs=0", "measurement.min_window_s=0", "output_len=4", "dataset.num_prompts=2",
        "energy.baseline.enabled=false"]


@pytest.mark.slow
def test_job_runs_in_the_other_interpreter(second_venv, tmp_path):
    config = load_config(TINY + [f"runner.pytorch=venv:{second_venv}"])
    result = execute_job(config, tmp_path / "job", raise_errors=False)
    assert result.status == "completed", result.error_message
    # the worker records the interpreter it ran in: the venv's, not ours
    assert result.extra["runner"]["python"].startswith(str(second_venv))
    assert result.extra["runner"]["python"] != sys.executable
    on_disk = json.loads((tmp_path / "job/result.json").read_text())
    assert on_disk["config_hash"] == config.config_hash and on_disk["output_tokens"] > 0
    # the hand-over files are cleaned up
    assert not list((tmp_path / "job").glob(".worker_*"))


def test_runtime_failure_in_the_venv_is_a_failed_result(second_venv, tmp_path):
    # a model file that validates (it begins with the GGUF magic) but breaks at load time
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00not a gguf body")
    config = load_config(["model=gguf", f"model.path={bad}", f"runner.pytorch=venv:{second_venv}"] + TINY)
    result = execute_job(config, tmp_path / "job", raise_errors=False)
    assert result.status == "failed" and result.error_type and result.error_message
    assert result.extra["runner"]["python"].startswith(str(second_venv))
    assert json.loads((tmp_path / "job/result.json").read_text())["status"] == "failed"


def test_worker_killed_is_recorded(tmp_path):
    # a "venv" whose python dies from SIGKILL before writing anything
    venv = tmp_path / "v"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin/python"
    py.write_text("#!/bin/sh\nkill -9 $$\n")
    py.chmod(0o755)
    config = load_config(TINY + [f"runner.pytorch=venv:{venv}"])
    result = execute_job(config, tmp_path / "job", raise_errors=False)
    assert result.status == "failed"
    assert result.error_type == "WorkerKilled" and "SIGKILL" in result.error_message


def test_check_names_the_missing_interpreter(tmp_path):
    from llem.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match=str(tmp_path)):
        VenvRunner(tmp_path / "missing", "vllm").check()
