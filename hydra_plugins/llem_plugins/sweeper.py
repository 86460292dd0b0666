"""llem's sweeper (``hydra/sweeper=llem``): the study grid with a failure-proof manifest.

Unlike Hydra's BasicSweeper it validates every job before the first one runs, never lets a
failed job stop the sweep, and writes ``manifest.json`` after every job. The work is in
``llem.study``; this class adapts it to Hydra's plugin interface.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.llem_plugins import config  # noqa: F401  (registers the configs)


class LlemSweeper(Sweeper):
    def __init__(self, max_batch_size: Optional[int] = 1, params: Optional[Dict[str, str]] = None,
                 grid_cycles: int = 1, order: str = "sequential", shuffle_seed: int = 0,
                 cooldown_s: float = 0.0, study_name: Optional[str] = None) -> None:
        super().__init__()
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.execution = dict(grid_cycles=grid_cycles, order=order, shuffle_seed=shuffle_seed, cooldown_s=cooldown_s)
        self.study_name = study_name
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        from llem.study import engine

        run = engine.CURRENT
        direct = run is None
        if direct:
            run = self._plan_here(arguments)
        m = engine.execute(run, self.launcher, self.effective_max_batch_size(), hydra_config=self.config)
        if direct and run.error:
            # ``llem run`` reports it itself; a Hydra app naming this sweeper gets the line here
            print(f"llem: error: {run.error}", file=sys.stderr)
            raise SystemExit(run.exit_code)
        return m

    def effective_max_batch_size(self) -> Optional[int]:
        """The primary config's ``max_batch_size: 1`` guards launchers that would put parallel
        jobs on one GPU (submitit_local). A launcher whose scheduler hands each job its own GPUs
        (Slurm, ``gres``) declares ``parallel_jobs_get_own_gpus``: it then gets the whole grid
        as one array, unless the user set ``hydra.sweeper.max_batch_size`` on the command line."""
        if not getattr(self.launcher, "parallel_jobs_get_own_gpus", False):
            return self.max_batch_size
        given = list(self.config.hydra.overrides.hydra) if self.config is not None else []
        if any(str(o).lstrip("+~").startswith("hydra.sweeper.max_batch_size") for o in given):
            return self.max_batch_size
        return None

    def _plan_here(self, arguments: List[str]):
        """A Hydra app that names this sweeper directly (not through ``llem run``)."""
        from llem.errors import LlemError
        from llem.study import engine
        from llem.study.plan import ExecutionOptions, GridComposer, check_runners, plan_grid

        assert self.config is not None and self.hydra_context is not None
        try:
            composer = GridComposer(self.hydra_context.config_loader, str(self.config.hydra.job.config_name))
            args = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
            plan = plan_grid(args, composer, ExecutionOptions(**self.execution))
            check_runners(plan)
        except LlemError as err:
            print(f"llem: error: {err}", file=sys.stderr)
            raise SystemExit(err.exit_code) from None
        study_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        launcher = self.config.hydra.runtime.choices.get("hydra/launcher", "unknown")
        return engine.StudyRun(plan=plan, study_dir=study_dir, study_name=self.study_name or study_dir.name,
                               launcher_name=str(launcher))
