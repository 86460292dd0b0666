"""Run a search's trials through a Hydra launcher, each one a study job in manifest.json.

The sampler (hydra-optuna-sweeper, driven by ``hydra_plugins.llem_plugins``) asks for trials; this
module runs them exactly as a grid's jobs run (``llem.study.engine``: same job directories, same
manifest entries, same recording of failures, Ctrl-C and SIGTERM, same study lock) and turns each
job's ``result.json`` into what the sampler is told (``llem.study.search.evaluate``). It knows
nothing of Optuna: trials come in as override lists and go out as outcomes.

Job ids: trial ``k`` is job ``000k`` (``grid_index`` k, cycle 0); its confirmation, a second
measurement of the same configuration, is ``000k_c1`` (cycle 1), as a second grid cycle would be.

Resume: a trial with a recorded outcome (a ``result.json``, completed or failed, or a failure the
study recorded, such as a job killed by the OOM killer) is finished and is replayed to the sampler,
never run again. A trial cut short by the study stopping (killed, Ctrl-C) runs again under its own
job id, with the same parameters, before the sampler proposes new ones.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from llem._version import __version__
from llem.result import ExperimentResult
from llem.results.manifest import MANIFEST_NAME, PLAN_NAME, JobEntry, StudyResult
from llem.study import engine
from llem.study.engine import (RESERVE_MIN_BYTES, RESERVE_NAME, StudyRun, StudyWriteError, _move_aside, _owner,
                               _record, _restore_sigterm, _sigterm_as_interrupt, _stop_running, _Store)
from llem.study.manifest import StudyPlanRecord, _now, lock_for, summarize
from llem.study.plan import GridPoint, PlannedJob
from llem.study.search import (INTERRUPTED_ERRORS, SEARCH_NAME, Outcome, SearchPlan, SearchRecord, TrialRecord,
                               choose, confirm_candidates, evaluate, params_of)

_RESET = ("error_type", "error_message", "result_path", "started_at", "ended_at", "gpu", "duration_s",
          "energy_per_output_token_j", "energy_per_output_token_ci95", "energy_adjusted_per_output_token_j",
          "output_tokens_per_s", "tokens_per_joule", "energy_measured", "energy_estimated")


@dataclass
class SearchRun(StudyRun):
    """A planned search (``plan`` is a ``SearchPlan``), handed to the sweeper like a grid's StudyRun."""

    record: Optional[SearchRecord] = None


@dataclass
class TrialResult:
    """What one launched trial gave: the launcher's JobReturn (None when it never launched) and
    the outcome the sampler is told."""

    job_id: str
    job_return: Any
    outcome: Outcome


def _finished(saved: Optional[JobEntry], now: JobEntry) -> bool:
    """A job whose outcome is recorded: its result.json, or a failure the study process recorded
    (not the study itself stopping)."""
    if now.result_path:
        return True
    e = saved or now
    return e.status in ("failed", "lost") and bool(e.error_type) and e.error_type not in INTERRUPTED_ERRORS


class Searcher:
    """One run (or resume) of a search: the manifest, the jobs, the record."""

    def __init__(self, run: SearchRun, launcher, composer, hydra_config=None) -> None:
        self.run, self.launcher, self.composer, self.hydra_config = run, launcher, composer, hydra_config
        plan: SearchPlan = run.plan
        self.spec = plan.spec
        self.dir = run.study_dir
        self.m: Optional[StudyResult] = None
        self.store: Optional[_Store] = None
        self.outcomes: dict[str, Outcome] = {}
        self.finished: set[str] = set()
        self.reruns: list[JobEntry] = []
        self.current: list[PlannedJob] = []
        self.progress = None
        self.recorded: set[str] = set()
        self.notes: list[str] = []                # said in search.json's notes at the end
        self._t_start: dict[str, float] = {}
        self.live = None                          # --live URL: the reporter (llem.study.live), as a grid's

    def _tell_live(self, e: JobEntry) -> None:
        if self.live is not None:
            self.live.job(e)

    # -- opening -------------------------------------------------------------------------------
    @property
    def entries(self) -> dict[str, JobEntry]:
        return {e.job_id: e for e in self.m.jobs}

    def _new_manifest(self) -> StudyResult:
        run, now = self.run, _now()
        return StudyResult(study_name=run.study_name, study_design_hash=self.spec.design_hash, llem_version=__version__,
                           created_at=now, updated_at=now, study_dir=str(self.dir), launcher=run.launcher_name,
                           execution={}, sweep_overrides=[f"{k}={v}" for k, v in self.spec.space.items()],
                           jobs=[], command_args=list(run.command_args), config_dir=run.config_dir,
                           config_name=run.config_name, search=self.spec.model_dump(), summary=summarize([]))

    def _prepare(self) -> StudyResult:
        if not self.run.resume:
            return self._new_manifest()
        from llem.study.manifest import rebuild

        saved = None
        try:
            saved = StudyResult.load(self.dir)
        except Exception:
            pass  # rebuilt from plan.json by the command; the job directories decide
        m = rebuild(self.dir, save=False)
        was = {e.job_id: e for e in saved.jobs} if saved is not None else {}
        for e in m.jobs:
            if _finished(was.get(e.job_id), e):
                if not e.result_path and e.job_id in was:  # a recorded failure without result.json
                    old = was[e.job_id]
                    e.status, e.error_type, e.error_message = old.status, old.error_type, old.error_message
                self.finished.add(e.job_id)
                continue
            _move_aside(self.dir, e.job_dir)
            for k in _RESET:
                setattr(e, k, None)
            e.status, e.warnings = "pending", 0
            if e.cycle == 0:
                self.reruns.append(e)
        self.reruns.sort(key=lambda e: e.index)
        m.finished_at = None
        m.llem_version = __version__
        m.search = self.spec.model_dump()
        m.study_design_hash = self.spec.design_hash
        return m

    def open(self) -> None:
        from llem.fsio import remove_stale_temps

        with lock_for(self.dir):
            for name in (MANIFEST_NAME, PLAN_NAME, SEARCH_NAME):
                remove_stale_temps(self.dir, name)
            (self.dir / RESERVE_NAME).unlink(missing_ok=True)
        self.m = self._prepare()
        self.m.owner = _owner()
        for e in self.m.jobs:
            if e.job_id in self.finished:
                self.outcomes[e.job_id] = self._evaluate(e)
        self.store = _Store(self.dir, self.m)
        self._save_plan()
        self.store.save()
        self.store.reserve.make(RESERVE_MIN_BYTES + 4 * len(self.m.model_dump_json(indent=2)) + 64 * 1024)
        if self.hydra_config is not None and not (self.dir / "multirun.yaml").exists():
            from omegaconf import OmegaConf

            try:
                OmegaConf.save(self.hydra_config, self.dir / "multirun.yaml")
            except OSError as err:
                (self.dir / "multirun.yaml").unlink(missing_ok=True)
                raise StudyWriteError(self.dir / "multirun.yaml", err) from None
        self._save_record()
        from llem.study.progress import Progress

        total = self.spec.n_trials + self.spec.confirm
        done = sum(1 for e in self.m.jobs if e.job_id in self.finished and e.status == "completed")
        failed = sum(1 for e in self.m.jobs if e.job_id in self.finished and e.status != "completed")
        self.progress = Progress(total, already_done=done, quiet=self.run.quiet, keys=set(self.spec.space))
        self.progress.failed = failed
        # a search's jobs appear as the sampler proposes them; the server takes each new job id as it comes
        self.live = engine._live(self.run, self.m)

    # -- what the sampler is told about the past ------------------------------------------------
    def history(self) -> list[TrialRecord]:
        """The finished trials, in order, to replay to a new sampler on a resume."""
        return [self.trial_record(e) for e in sorted(self.m.jobs, key=lambda e: e.index)
                if e.cycle == 0 and e.job_id in self.finished]

    def remaining(self) -> int:
        """Trials still to ask the sampler for (the interrupted ones to run again included)."""
        done = sum(1 for e in self.m.jobs if e.cycle == 0 and e.job_id in self.finished)
        return max(0, self.spec.n_trials - done)

    def rerun_params(self) -> list[dict[str, str]]:
        return [params_of(e.overrides, self.spec.space) for e in self.reruns]

    # -- running trials -------------------------------------------------------------------------
    def _next_number(self) -> int:
        return 1 + max((e.grid_index for e in self.m.jobs), default=-1)

    def _entry(self, number: int, cycle: int, overrides: list[str]) -> JobEntry:
        job_id = f"{number:04d}" + (f"_c{cycle}" if cycle else "")
        e = JobEntry(job_id=job_id, index=len(self.m.jobs), grid_index=number, cycle=cycle, overrides=list(overrides),
                     config_hash="", backend="?", model="?", precision="?", batch=0, status="pending", job_dir=job_id,
                     log_path=f"{job_id}/{engine.JOB_LOG}")
        self.m.jobs.append(e)
        return e

    def _plan_job(self, e: JobEntry) -> Optional[PlannedJob]:
        """Compose and validate the job's config; a trial the config refuses is recorded failed
        and never launched (the sampler is told it failed)."""
        from llem.errors import ConfigError

        try:
            cfg = self.composer.compose(list(e.overrides))
        except ConfigError as err:
            e.status, e.error_type, e.error_message = "failed", "ConfigError", str(err)[:500]
            e.started_at = e.ended_at = _now()
            return None
        e.config_hash, e.backend, e.model, e.precision, e.batch = (cfg.config_hash, cfg.backend, cfg.model.name,
                                                                   cfg.precision, cfg.batch)
        point = GridPoint(grid_index=e.grid_index, overrides=list(e.overrides), config=cfg, config_hash=cfg.config_hash)
        return PlannedJob(job_id=e.job_id, index=e.index, point=point, cycle=e.cycle)

    def take_rerun(self, params: dict[str, str]) -> Optional[str]:
        """The job id of the interrupted trial the sampler was asked to run again (FIFO)."""
        for k, e in enumerate(self.reruns):
            if params_of(e.overrides, self.spec.space) == params:
                self.reruns.pop(k)
                return e.job_id
        return None

    def run_trials(self, batch: list[tuple[Optional[str], list[str]]]) -> list[TrialResult]:
        """Run one batch of trials: (job id of a trial run again or None, overrides) each."""
        entries = self.entries
        jobs: list[tuple[JobEntry, Optional[PlannedJob]]] = []
        for rerun_id, ovr in batch:
            if rerun_id is not None and rerun_id in entries:
                e = entries[rerun_id]
                e.overrides = list(ovr)
            else:
                e = self._entry(self._next_number(), 0, ovr)
            jobs.append((e, self._plan_job(e)))
        return self._run(jobs)

    def _run(self, jobs: list[tuple[JobEntry, Optional[PlannedJob]]]) -> list[TrialResult]:
        self._save_plan()
        self.store.save()
        planned = [j for _, j in jobs if j is not None]
        rets = self._launch(planned) if planned else {}
        out = []
        for e, j in jobs:
            if j is None:
                self.progress.end(e)  # refused by the config: recorded failed, never launched
                self._tell_live(e)
            if _finished(None, e):
                self.finished.add(e.job_id)
            self.outcomes[e.job_id] = o = self._evaluate(e)
            out.append(TrialResult(e.job_id, rets.get(e.job_id), o))
            if not self.run.quiet:
                self.progress.say(self._trial_line(e, o))
        self._save_record()
        self.store.save()
        return out

    def _launch(self, planned: list[PlannedJob]) -> dict[str, Any]:
        """Engine's batch step: callbacks as each job starts and ends (llem's launcher), the
        entries recorded from the job directories, the manifest saved after each."""
        launcher, store = self.launcher, self.store
        entries = self.entries
        rets_by_id: dict[str, Any] = {}

        def start(j: PlannedJob, gpu: Optional[str] = None) -> None:
            e = entries[j.job_id]
            e.status, e.started_at, e.gpu = "running", _now(), gpu
            self._t_start[j.job_id] = time.monotonic()
            self.progress.start(e)
            self._tell_live(e)

        def end(j: PlannedJob, ret, err) -> None:
            e = entries[j.job_id]
            _record(self.dir, e, j, ret, err)
            e.duration_s = round(time.monotonic() - self._t_start.get(j.job_id, time.monotonic()), 3)
            self.recorded.add(j.job_id)
            rets_by_id[j.job_id] = ret
            self.progress.end(e)
            self._tell_live(e)

        self.current = planned
        if hasattr(launcher, "on_job_end"):
            def on_start(k: int, job_dir: Path, gpu: Optional[str]) -> None:
                start(planned[k], gpu)
                store.save()

            def on_end(k: int, ret) -> None:
                end(planned[k], ret, None)
                store.save()

            launcher.on_job_start, launcher.on_job_end = on_start, on_end
            launcher.cooldown_s = 0.0
        else:
            for j in planned:
                start(j)
            store.save()
        rets, err = None, None
        try:
            rets = launcher.launch([j.launch_overrides() for j in planned], initial_job_idx=planned[0].index)
        except StudyWriteError:
            raise
        except Exception as exc:  # submitit raises for a killed/failed job; the others may be fine
            err = exc
        for k, j in enumerate(planned):
            if j.job_id not in self.recorded:
                end(j, rets[k] if rets is not None and k < len(rets) else None, err)
        self.current = []
        return rets_by_id

    # -- confirmation -----------------------------------------------------------------------------
    def confirm(self, batch_size: int = 1) -> None:
        """Measure the best candidates again (``--confirm K``), jobs ``<trial>_c1``."""
        trials = [t for e, t in self._records() if e.cycle == 0]
        cands = confirm_candidates(trials, self.spec)
        if not cands:
            return
        entries = self.entries
        todo: list[tuple[JobEntry, Optional[PlannedJob]]] = []
        for t in cands:
            cid = f"{t.job_id}_c1"
            if cid in entries and cid in self.finished:
                continue
            e = entries.get(cid) or self._entry(t.number, 1, list(t.overrides))
            todo.append((e, self._plan_job(e)))
        self.progress.total = self.progress.done + self.progress.failed + len(todo)
        if todo and not self.run.quiet:
            self.progress.say(f"confirming the {len(cands)} best candidate{'s' if len(cands) != 1 else ''}: "
                              + ", ".join(t.job_id for t in cands))
        for i in range(0, len(todo), max(1, batch_size)):
            self._run(todo[i:i + max(1, batch_size)])

    # -- records --------------------------------------------------------------------------------
    def _evaluate(self, e: JobEntry) -> Outcome:
        res = None
        if e.result_path and (self.dir / e.result_path).is_file():
            try:
                res = ExperimentResult.load(self.dir / e.result_path)
            except Exception:
                res = None
        failure = f"{e.error_type}: {e.error_message}" if e.error_type else None
        return evaluate(res, self.spec, failure=failure)

    def trial_record(self, e: JobEntry) -> TrialRecord:
        o = self.outcomes.get(e.job_id)
        if e.job_id not in self.finished or o is None:
            state = {"pending": "pending", "running": "running"}.get(e.status, "interrupted")
            o = Outcome({}, {}, [])
        elif o.reason is not None:
            state = "failed"
        elif o.violations:
            state = "infeasible"
        else:
            state = "complete"
        return TrialRecord(number=e.grid_index, job_id=e.job_id, overrides=list(e.overrides),
                           params=params_of(e.overrides, self.spec.space), config_hash=e.config_hash or None,
                           status=e.status, state=state, values=o.values, constraints=o.constraints,
                           violations=o.violations, reason=o.reason, energy_estimated=o.estimated,
                           result_path=e.result_path)

    def _records(self) -> list[tuple[JobEntry, TrialRecord]]:
        return [(e, self.trial_record(e)) for e in sorted(self.m.jobs, key=lambda e: e.index)]

    def record(self, final: bool = False) -> SearchRecord:
        recs = self._records()
        trials = [t for e, t in recs if e.cycle == 0]
        confirmations = {t.number: t for e, t in recs if e.cycle == 1 and e.job_id in self.finished}
        rec = SearchRecord(study_name=self.m.study_name, study_dir=str(self.dir), spec=self.spec, trials=trials)
        if final:
            rec.candidates, rec.best, rec.pareto_front, rec.notes = choose(trials, confirmations, self.spec)
            front = len(confirm_candidates(trials, self.spec.model_copy(update={"confirm": 10 ** 9})))
            if self.spec.confirm and len(self.spec.objectives) > 1 and front > self.spec.confirm:
                rec.notes.append(f"the search's Pareto front has {front} configurations; --confirm {self.spec.confirm} "
                                 f"measured the first {self.spec.confirm} (by {self.spec.objectives[0]}) again and "
                                 "the front named here is of those")
            rec.notes += self.notes
            rec.finished_at = self.m.finished_at
        return rec

    def _save_record(self, final: bool = False) -> SearchRecord:
        rec = self.record(final)
        try:
            rec.save(self.dir)
        except OSError as err:
            raise StudyWriteError(self.dir / SEARCH_NAME, err) from None
        self.run.record = rec
        return rec

    def _save_plan(self) -> None:
        try:
            StudyPlanRecord.from_manifest(self.m).save(self.dir)
        except OSError as err:
            raise StudyWriteError(self.dir / PLAN_NAME, err) from None

    def _trial_line(self, e: JobEntry, o: Outcome) -> str:
        from llem.results.fmt import fmt_with_ci

        what = "confirmation" if e.cycle else "trial"
        vals = ", ".join(f"{m} {fmt_with_ci(v.value, v.ci95_low, v.ci95_high)}" for m, v in o.values.items())
        if o.reason:
            return f"{what} {e.job_id}: told the sampler it failed: {o.reason}"
        if o.violations:
            return f"{what} {e.job_id}: {vals}; infeasible ({'; '.join(o.violations)}): told the sampler it failed"
        return f"{what} {e.job_id}: {vals}"

    # -- the end ----------------------------------------------------------------------------------
    def stop_running(self, error_type: str, message: str) -> None:
        _stop_running(self.dir, self.entries, self.current, error_type, message)
        self.current = []


def execute(run: SearchRun, launcher, composer, hydra_config, drive: Callable[[Searcher], None],
            confirm_batch: int = 1) -> Optional[StudyResult]:
    """Run the search: ``drive(searcher)`` asks the sampler for trials and runs them through
    ``searcher.run_trials`` until the search's trials are done; then the confirmations, the
    record and the summary. Returns the manifest, or None (``run.error`` says why)."""
    from llem.errors import LlemError
    from llem.study.lock import StudyLock

    try:
        run.study_dir.mkdir(parents=True, exist_ok=True)
        lock = StudyLock(run.study_dir, what=f"hydra.sweep.dir={run.study_dir}").acquire()
    except OSError as err:
        return engine._stopped(run, f"hydra.sweep.dir={run.study_dir}: cannot create it ({err.strerror})", 2)
    except LlemError as err:
        return engine._stopped(run, str(err), err.exit_code)
    try:
        return _execute(run, launcher, composer, hydra_config, drive, confirm_batch)
    finally:
        lock.release()


def _execute(run: SearchRun, launcher, composer, hydra_config, drive, confirm_batch: int) -> Optional[StudyResult]:
    s = Searcher(run, launcher, composer, hydra_config)
    try:
        s.open()
    except (OSError, StudyWriteError) as err:
        return engine._stopped(run, f"cannot write in {run.study_dir} ({getattr(err, 'strerror', None) or err}); no "
                                    f"trial ran. Once it is writable: llem run --resume {run.study_dir}", 1)
    old_term = _sigterm_as_interrupt()
    write_error: Optional[StudyWriteError] = None
    try:
        drive(s)
        s.confirm(confirm_batch)
    except KeyboardInterrupt:
        run.interrupted = True
        s.stop_running("Interrupted", "stopped by Ctrl-C/SIGTERM of the study; run it again with llem run --resume")
    except StudyWriteError as err:
        write_error = err
        s.stop_running("StudyStopped", f"the study stopped: {err}; run it again with llem run --resume")
    finally:
        _restore_sigterm(old_term)
    m = s.m
    if not run.interrupted and write_error is None:
        m.finished_at = _now()
    m.owner = {}
    if write_error is not None:
        s.store.reserve.release()
    last_error = None
    rec = None
    stopped = run.interrupted or write_error is not None
    try:
        s.store.save()
        # a search cut short names nothing yet (its record still lists every trial so far)
        rec = s._save_record(final=not stopped)
    except StudyWriteError as err:
        last_error = err
        write_error = write_error or err
    s.store.reserve.release()
    if s.live is not None:
        s.live.finish(m, "interrupted" if run.interrupted else ("stopped" if write_error is not None else "finished"))
    run.result = m
    engine.LAST = m
    done = run.interrupted or write_error is not None
    run.exit_code = 130 if run.interrupted else (1 if write_error or rec is None or rec.best is None else 0)
    if write_error is not None:
        n = sum(1 for e in m.jobs if e.status == "completed")
        run.error = (f"{write_error}: the search stopped ({n} jobs completed, their results are kept); once the cause "
                     f"is fixed, finish it with: llem run --resume {run.study_dir}")
        if last_error is not None:
            run.error += f" ({MANIFEST_NAME} or {SEARCH_NAME} still shows the state before the failure)"
    elif not done and rec is not None and rec.best is None:
        run.error = ("the search named no configuration: no trial " + ("met the constraints" if s.spec.constraints
                     else "gave a value") + f"; see {run.study_dir / SEARCH_NAME}")
    if not run.quiet:
        from llem.study.progress import summary_table
        from llem.study.search import summary_text

        print(summary_table(m), flush=True)
        if rec is not None and not run.interrupted:
            print(summary_text(rec), flush=True)
        if run.interrupted:
            print(f"interrupted: resume with  llem run --resume {run.study_dir}", file=sys.stderr, flush=True)
    return m
