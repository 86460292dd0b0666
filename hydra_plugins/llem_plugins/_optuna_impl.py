"""The Optuna side of llem's search (``hydra_plugins.llem_plugins.search``): hydra-optuna-sweeper's
``OptunaSweeperImpl``, its launcher replaced by one that runs each trial as a llem study job.

What the sampler is told about a trial (llem.study.search.evaluate reads the job's result.json):
- its objective value(s), when the job completed, the objectives were measured and every
  ``--constraint`` holds;
- FAIL otherwise: a failed or killed job, an objective or constrained metric not measured, or a
  constraint broken (an infeasible trial). Optuna's samplers leave failed trials out of their
  model; the job itself stays in the manifest with its measurements.

A resume replays the finished trials into a fresh in-memory Optuna study (Optuna 2.10's RDB
storage does not work beside SQLAlchemy 2), enqueues the trials the stop cut short with their
parameters, and asks only for the trials still to run.
"""
from __future__ import annotations

import logging
import sys
import warnings
from typing import Any, List, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides


class TrialFailed(RuntimeError):
    """The trial gave no value: its job failed, or a metric it needs was not measured."""


class InfeasibleTrial(RuntimeError):
    """The trial's job completed but broke a --constraint."""


class _TrialReturn(JobReturn):
    """A JobReturn whose failure is raised without Hydra's "Error executing job" line: an
    infeasible trial is an outcome, not an error, and llem prints its own line for each trial."""

    @property
    def return_value(self) -> Any:
        if self.status == JobStatus.COMPLETED:
            return self._return_value
        raise self._return_value

    @return_value.setter
    def return_value(self, value: Any) -> None:
        self._return_value = value


def _param_value(dist, text: str) -> Any:
    """An override's value (as the sweeper wrote it, ``f"{name}={value}"``) in the distribution's terms."""
    from optuna.distributions import (CategoricalDistribution, IntLogUniformDistribution,
                                      IntUniformDistribution)

    if isinstance(dist, CategoricalDistribution):
        for c in dist.choices:
            if str(c) == text:
                return c
        raise ValueError(f"{text!r} is not one of {dist.choices}")
    if isinstance(dist, (IntUniformDistribution, IntLogUniformDistribution)):
        return int(text)
    return float(text)


class _TrialLauncher:
    """Stands where the sweeper expects its launcher: runs the asked trials through the search
    searcher (which uses the real launcher) and returns what the sampler should be told."""

    def __init__(self, impl: "LlemOptunaSweeperImpl", searcher) -> None:
        self.impl, self.searcher = impl, searcher

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from llem.study.search import params_of

        space = self.searcher.spec.space
        batch = []
        for k, ovr in enumerate(job_overrides):
            trial = self.impl._asked[k] if k < len(self.impl._asked) else None
            rerun = None
            if trial is not None and trial.system_attrs.get("fixed_params"):
                rerun = self.searcher.take_rerun(params_of(list(ovr), space))
            batch.append((rerun, list(ovr)))
        results = self.searcher.run_trials(batch)
        return [self._ret(r, ovr) for r, ovr in zip(results, job_overrides)]

    def _ret(self, r, overrides) -> JobReturn:
        base = r.job_return
        ret = _TrialReturn(overrides=list(overrides))
        if base is not None:
            ret.cfg, ret.hydra_cfg, ret.working_dir, ret.task_name = (base.cfg, base.hydra_cfg, base.working_dir,
                                                                      base.task_name)
        o = r.outcome
        objectives = self.searcher.spec.objectives
        if o.feasible:
            vals = [o.values[m].value for m in objectives]
            ret.status, ret._return_value = JobStatus.COMPLETED, (vals[0] if len(vals) == 1 else vals)
        elif o.reason is not None:
            ret.status, ret._return_value = JobStatus.FAILED, TrialFailed(f"trial {r.job_id}: {o.reason}")
        else:
            ret.status = JobStatus.FAILED
            ret._return_value = InfeasibleTrial(f"trial {r.job_id}: {'; '.join(o.violations)}")
        return ret


class LlemOptunaSweeperImpl(OptunaSweeperImpl):
    def setup(self, *, hydra_context, task_function, config) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self._asked: list = []

    def _configure_trials(self, trials, search_space_distributions, fixed_params):
        overrides = super()._configure_trials(trials, search_space_distributions, fixed_params)
        self._asked = list(trials)  # the launch that follows runs these, in this order
        return overrides

    def _given(self, key: str) -> bool:
        given = [str(o) for o in self.config.hydra.overrides.hydra] if self.config is not None else []
        return any(o.lstrip("+~").split("=", 1)[0] == key for o in given)

    def sweep(self, arguments: List[str]) -> Any:
        from llem.study import engine
        from llem.study.plan import GridComposer
        from llem.study.search_run import SearchRun, execute

        run = engine.CURRENT
        if not isinstance(run, SearchRun):
            print("llem: error: llem's search sweeper runs through `llem run -m hydra/sweeper=optuna ...`, which plans "
                  "and checks the search first", file=sys.stderr)
            raise SystemExit(2)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # llem prints a line for each trial and the search's end (with the confirmed best)
        logging.getLogger("hydra_plugins.hydra_optuna_sweeper._impl").setLevel(logging.ERROR)
        real = self.launcher
        spec = run.plan.spec
        if not self._given("hydra.sweeper.n_jobs"):
            # trials asked at once: as many as the launcher runs side by side (llem's: one per GPU
            # with parallel_gpus, else one); each answer then informs the next proposal
            slots = getattr(real, "slots", None)
            self.n_jobs = slots() if callable(slots) else 1
        if not self._given("hydra.sweeper.max_failure_rate"):
            self.max_failure_rate = 1.0  # a failed or infeasible trial never stops the search
        self.direction = list(spec.directions)
        self.study_name = self.study_name or run.study_name
        composer = GridComposer(self.hydra_context.config_loader, str(self.config.hydra.job.config_name))

        def drive(searcher) -> None:
            self.storage = self._replayed_storage(searcher, arguments)
            self.n_trials = searcher.remaining()
            self.launcher = _TrialLauncher(self, searcher)
            try:
                OptunaSweeperImpl.sweep(self, arguments)
            except ValueError as err:
                # the plugin's closing study.best_trial, when no trial gave a value: llem says so itself
                if any(t.state == "complete" for t in searcher.history()):
                    raise
                del err
            except (TrialFailed, InfeasibleTrial) as err:
                # hydra.sweeper.max_failure_rate, set by the user, was exceeded by a batch
                searcher.notes.append(f"the search stopped early: more than hydra.sweeper.max_failure_rate="
                                     f"{self.max_failure_rate:g} of a batch of trials failed ({err})")
            finally:
                self.launcher = real

        m = execute(run, real, composer, self.config, drive, confirm_batch=self.n_jobs)
        return m

    def _replayed_storage(self, searcher, arguments: List[str]):
        """An in-memory study holding the search's finished trials (a resume) and the ones to run again."""
        import optuna
        from optuna.exceptions import ExperimentalWarning
        from optuna.storages import InMemoryStorage
        from optuna.trial import TrialState, create_trial

        self._process_searchspace_config()
        dists, fixed = create_params_from_overrides(self._parse_sweeper_params_config() + list(arguments))
        for name in fixed:
            dists.pop(name, None)
        storage = InMemoryStorage()
        study = optuna.create_study(storage=storage, study_name=self.study_name, directions=self._get_directions())
        objectives = searcher.spec.objectives
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            for t in searcher.history():
                try:
                    params = {k: _param_value(d, t.params[k]) for k, d in dists.items()}
                except (KeyError, ValueError):
                    continue  # a value the space no longer holds: nothing to tell the sampler
                attrs = {"llem_job_id": t.job_id}
                if t.state == "complete":
                    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[t.values[m].value for m in objectives],
                                                 params=params, distributions=dists, user_attrs=attrs))
                else:
                    study.add_trial(create_trial(state=TrialState.FAIL, params=params, distributions=dists,
                                                 user_attrs=attrs))
            for p in searcher.rerun_params():
                try:
                    study.enqueue_trial({k: _param_value(d, p[k]) for k, d in dists.items() if k in p})
                except ValueError:
                    pass
        return storage

