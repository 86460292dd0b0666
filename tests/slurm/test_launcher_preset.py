"""hydra/launcher=slurm composes into submitit_slurm with energy-study defaults (no cluster needed)."""
from __future__ import annotations

import pytest

from llem.config.compose import compose


def _launcher(*overrides):
    cfg = compose(["hydra/launcher=slurm", *overrides], return_hydra_cfg=True)
    return cfg.hydra.launcher


def test_local_stays_the_default():
    cfg = compose([], return_hydra_cfg=True)
    assert cfg.hydra.launcher._target_.endswith("LlemLocalLauncher")


def test_slurm_preset_defaults():
    launcher = _launcher()
    assert launcher._target_ == "hydra_plugins.llem_plugins.slurm.LlemSlurmLauncher"
    assert launcher.gpus_per_node == 1
    assert launcher.additional_parameters.exclusive is True
    assert launcher.timeout_min == 120
    # a time-limited job is stopped and recorded, never silently requeued
    assert launcher.max_num_timeout == 0
    assert launcher.partition is None and launcher.account is None and launcher.qos is None
    # keys of submitit_slurm's own schema are all there (the preset extends it)
    for key in ("submitit_folder", "array_parallelism", "gres", "mem_gb", "cpus_per_task", "setup"):
        assert key in launcher


def test_site_settings_through_overrides():
    launcher = _launcher("hydra.launcher.partition=gpu", "hydra.launcher.account=energy",
                         "hydra.launcher.qos=high", "hydra.launcher.gpus_per_node=null",
                         "hydra.launcher.gres=gpu:a100:1", "~hydra.launcher.additional_parameters.exclusive",
                         "hydra.launcher.timeout_min=30")
    assert (launcher.partition, launcher.account, launcher.qos) == ("gpu", "energy", "high")
    assert launcher.gpus_per_node is None and launcher.gres == "gpu:a100:1"
    assert "exclusive" not in launcher.additional_parameters
    assert launcher.timeout_min == 30


def test_schema_rejects_a_misspelt_key():
    from llem.errors import ConfigError

    with pytest.raises(ConfigError):
        _launcher("hydra.launcher.gpus_per_nod=2")


def test_sbatch_script_asks_for_what_the_preset_says(tmp_path):
    """The preset's values reach sbatch as the flags an energy study needs."""
    from omegaconf import OmegaConf
    from submitit.slurm.slurm import _make_sbatch_string

    launcher = OmegaConf.to_container(_launcher("hydra.launcher.partition=gpu"), resolve=False)
    script = _make_sbatch_string(
        command="true", folder=str(tmp_path), partition=launcher["partition"], gpus_per_node=launcher["gpus_per_node"],
        time=launcher["timeout_min"], additional_parameters=launcher["additional_parameters"],
        signal_delay_s=launcher["signal_delay_s"])
    for flag in ("#SBATCH --exclusive\n", "#SBATCH --gpus-per-node=1\n", "#SBATCH --time=120\n",
                 "#SBATCH --partition=gpu\n"):
        assert flag in script + "\n"


def test_a_warning_due_as_the_job_starts_is_refused_before_anything_runs(tmp_path):
    from tests.conftest import run_llem

    r = run_llem(["run", "-m", "batch=1,2", "hydra/launcher=slurm", "hydra.launcher.timeout_min=1", "--dry-run"],
                 cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
    err = r.stderr.strip()
    assert r.returncode == 2 and len(err.splitlines()) == 1, err
    assert "hydra.launcher.signal_delay_s=60 with hydra.launcher.timeout_min=1" in err
    assert "allowed: signal_delay_s below timeout_min x 60 = 60 s" in err
    assert r.stdout == "" and list(tmp_path.rglob("*")) == []


class _SlurmJobEnv:
    """Test double for submitit's JobEnvironment on a Slurm node: rank 0, requeues recorded."""

    global_rank = 0

    def __init__(self):
        self.requeued = []

    def _requeue(self, countdown):
        self.requeued.append(countdown)


def test_a_signal_in_submitits_handler_ends_the_job_never_requeues_it(tmp_path):
    # submitit's own SIGUSR2 handler runs from its install until LlemSlurmLauncher.__call__ replaces
    # it; a signal it takes for a preemption (early in the job) would requeue a checkpointable job
    from submitit.core.job_environment import SignalHandler
    from submitit.core.utils import DelayedSubmission, JobPaths, UncompletedJobError

    from hydra_plugins.llem_plugins.slurm import LlemSlurmLauncher

    delayed = DelayedSubmission(LlemSlurmLauncher(), ["batch=1"], "hydra.sweep.subdir", 0, "0", {})
    delayed.set_timeout(timeout_min=120, max_num_timeout=0)
    paths = JobPaths(tmp_path, job_id="1")
    env = _SlurmJobEnv()
    handler = SignalHandler(env, paths, delayed)
    assert not handler.has_timed_out()  # seconds into a 2-hour job: submitit reads it as a preemption
    with pytest.raises(UncompletedJobError, match="checkpoint function returned None"):
        handler.checkpoint_and_try_requeue(12)  # SIGUSR2
    assert env.requeued == [] and not paths.submitted_pickle.exists()
