"""llem's search sweeper: hydra-optuna-sweeper's ``hydra/sweeper=optuna``, with every trial a study job.

``llem run -m hydra/sweeper=optuna ...`` plans and checks the search (``llem.study.search``),
then runs Hydra with this class in place of the plugin's ``OptunaSweeper``: same config keys
(sampler, n_trials, n_jobs, params, ...), same sampler and ask/tell loop (the plugin's own
``OptunaSweeperImpl``), but each trial runs as a job of a llem study (``llem.study.search_run``:
job directory, manifest entry, failures recorded), its value is read from its ``result.json``,
and the search resumes from the study directory. docs/search.md says it for users.

Optuna is imported only when a search runs: Hydra imports this module in every llem process
while it looks for plugins.
"""
from __future__ import annotations

from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class LlemOptunaSweeper(Sweeper):
    def __init__(self, sampler: Any, direction: Any, storage: Optional[Any], study_name: Optional[str], n_trials: int,
                 n_jobs: int, max_failure_rate: float, search_space: Optional[DictConfig],
                 custom_search_space: Optional[str], params: Optional[DictConfig]) -> None:
        from hydra_plugins.llem_plugins._optuna_impl import LlemOptunaSweeperImpl

        self.sweeper = LlemOptunaSweeperImpl(sampler, direction, storage, study_name, n_trials, n_jobs,
                                             max_failure_rate, search_space, custom_search_space, params)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self.sweeper.sweep(arguments)
