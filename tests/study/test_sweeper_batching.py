"""How many jobs llem's sweeper hands a launcher at once."""
from omegaconf import OmegaConf

from hydra_plugins.llem_plugins.slurm import LlemSlurmLauncher
from hydra_plugins.llem_plugins.sweeper import LlemSweeper


class _PlainLauncher:
    pass


class _OwnGpus:
    parallel_jobs_get_own_gpus = True


def _sweeper(launcher, hydra_overrides, max_batch_size=1):
    s = LlemSweeper(max_batch_size=max_batch_size)
    s.launcher = launcher
    s.config = OmegaConf.create({"hydra": {"overrides": {"hydra": list(hydra_overrides), "task": []}}})
    return s


def test_plain_launchers_keep_the_configured_batch_size():
    # submitit_local and friends would put parallel jobs on GPU 0: one at a time
    assert _sweeper(_PlainLauncher(), []).effective_max_batch_size() == 1


def test_a_launcher_that_gives_each_job_its_own_gpus_gets_the_whole_grid():
    assert _sweeper(_OwnGpus(), ["hydra/launcher=slurm"]).effective_max_batch_size() is None


def test_a_batch_size_given_on_the_command_line_is_respected():
    s = _sweeper(_OwnGpus(), ["hydra/launcher=slurm", "hydra.sweeper.max_batch_size=1"])
    assert s.effective_max_batch_size() == 1
    s = _sweeper(_OwnGpus(), ["hydra.sweeper.max_batch_size=3"], max_batch_size=3)
    assert s.effective_max_batch_size() == 3


def test_llem_slurm_launcher_declares_its_gpus_are_its_own():
    assert LlemSlurmLauncher.parallel_jobs_get_own_gpus is True
