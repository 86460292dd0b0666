"""The typed ``hydra.sweeper`` and ``hydra.launcher`` sections of llem's own Hydra plugins.

They live with the rest of llem's typed config, so validation (unknown keys, "did you mean")
knows them without importing the plugins; ``hydra_plugins.llem_plugins.config`` registers them
in Hydra's ConfigStore.
"""

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class LlemSweeperConf:
    """``hydra.sweeper.*``: how the grid runs. None of these is part of a job's config_hash;
    all but study_name are part of the study_design_hash."""

    _target_: str = "hydra_plugins.llem_plugins.sweeper.LlemSweeper"
    # jobs handed to a non-llem launcher at once (submitit: one array per batch). llem's
    # local launcher schedules its own jobs (one at a time, or one per GPU).
    max_batch_size: Optional[int] = 1
    # sweeps kept in a config file instead of the command line, e.g. params: {batch: "1,8,32"}
    params: dict[str, str] = field(default_factory=dict)
    grid_cycles: int = 1              # run the whole grid this many times
    order: str = "sequential"         # sequential | interleaved | shuffled
    shuffle_seed: int = 0
    cooldown_s: float = 0.0           # idle gap between experiments (thermal settling)
    study_name: Optional[str] = None  # default: the sweep directory's name


@dataclass
class LlemLocalLauncherConf:
    """``hydra.launcher.*`` for ``hydra/launcher=local``."""

    _target_: str = "hydra_plugins.llem_plugins.launcher.LlemLocalLauncher"
    parallel_gpus: bool = False       # one job per visible GPU at once (CUDA_VISIBLE_DEVICES per job)
    timeout_s: Optional[float] = None # per job; past it the job is stopped and recorded as failed
    kill_grace_s: float = 10.0        # SIGTERM -> SIGKILL gap when stopping a job
    python: Optional[str] = None      # interpreter for the job processes (default: this one)
    # vLLM jobs that differ only in batch, prompts, sampling, output length or measurement settings
    # run in one process, one after another, on one engine (started once); off: a process per job
    share_engine: bool = False
