"""Run a planned study through a Hydra launcher, keeping manifest.json true after every job.

Nothing a job does can stop the study: the task function never raises, a launcher exception
(submitit raises for a killed job) is caught per batch, and a Ctrl-C stops the running job,
records it, and leaves the rest pending for ``llem run --resume``.

What can stop it is the study directory itself: when manifest.json cannot be written (a full
disk, a quota, a permission taken away) the study stops after recording what it can, says so in
one line, and exits 1; the manifest on disk is always a whole, valid file (atomic writes), and
``--resume`` finishes the study once the cause is gone. The whole run holds the study's lock
(``llem.study.lock``), so no second process runs the same study.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from llem._version import __version__
from llem.results.manifest import MANIFEST_NAME, PLAN_NAME, JobEntry, StudyResult
from llem.study.manifest import (RESULT_NAME, StudyPlanRecord, _now, fill_from_result, lock_for,
                                 refresh_entry, summarize)
from llem.study.plan import PlannedJob, StudyPlan

JOB_LOG = "job.log"
ATTEMPTS_DIR = ".attempts"
# disk space set aside while a study runs, freed for the manifest's last save if the disk fills
RESERVE_NAME = ".manifest.reserve"
RESERVE_MIN_BYTES = 64 * 1024


@dataclass
class StudyRun:
    """Everything the sweeper needs, planned and validated before Hydra starts."""

    plan: StudyPlan
    study_dir: Path
    study_name: str
    launcher_name: str
    quiet: bool = False
    resume: bool = False
    command_args: list[str] = field(default_factory=list)
    config_dir: Optional[str] = None
    config_name: str = "config"
    result: Optional[StudyResult] = None
    exit_code: int = 0
    interrupted: bool = False
    # one line for the user when the study could not run or stopped on a write error
    error: Optional[str] = None
    # ``--live URL``: an llem serve server shown the study's progress (llem.study.live)
    live_url: Optional[str] = None
    live_token: Optional[str] = field(default=None, repr=False)


# The study planned by ``llem.cli.study`` for the sweeper of the Hydra run it starts next.
CURRENT: Optional[StudyRun] = None
# The manifest of the last study this process ran (what run_study returns).
LAST: Optional[StudyResult] = None


def new_manifest(run: StudyRun) -> StudyResult:
    now = _now()
    jobs = [JobEntry(job_id=j.job_id, index=j.index, grid_index=j.point.grid_index, cycle=j.cycle,
                     overrides=list(j.overrides), omitted_overrides=list(j.omitted_overrides),
                     config_hash=j.config_hash, backend=j.config.backend,
                     model=j.config.model.name, precision=j.config.precision, batch=j.config.batch,
                     status="pending", job_dir=j.job_id, log_path=f"{j.job_id}/{JOB_LOG}")
            for j in run.plan.jobs]
    m = StudyResult(study_name=run.study_name, study_design_hash=run.plan.study_design_hash,
                    llem_version=__version__, created_at=now, updated_at=now, study_dir=str(run.study_dir),
                    launcher=run.launcher_name, execution=run.plan.execution.as_dict(),
                    sweep_overrides=list(run.plan.sweep_overrides), jobs=jobs, command_args=list(run.command_args),
                    config_dir=run.config_dir, config_name=run.config_name)
    m.summary = summarize(m.jobs)
    return m


def _owner() -> dict[str, Any]:
    from llem.environment.snapshot import boot_id

    return {"host": socket.gethostname(), "boot_id": boot_id(), "pid": os.getpid(), "since": _now()}


class StudyWriteError(Exception):
    """manifest.json (or another study file) could not be written: the study must stop."""

    def __init__(self, path: Path, err: OSError) -> None:
        self.path, self.err = path, err
        super().__init__(f"cannot write {path} ({err.strerror or err})")


class _Reserve:
    """Disk space held in ``.manifest.reserve`` while the study runs. If the disk (or a quota)
    fills, deleting it makes room for the manifest's last save, so the manifest records how the
    study stopped instead of the state before the failure."""

    def __init__(self, study_dir: Path) -> None:
        self.path = study_dir / RESERVE_NAME

    def make(self, nbytes: int) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError:
            return  # best effort: a study without the reserve still stops cleanly
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, nbytes)
            else:
                os.write(fd, b"\0" * nbytes)
        except OSError:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            return
        os.close(fd)

    def release(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass


class _Store:
    def __init__(self, study_dir: Path, m: StudyResult) -> None:
        self.dir, self.m = study_dir, m
        self.reserve = _Reserve(study_dir)

    def save(self) -> None:
        self.m.updated_at = _now()
        self.m.summary = summarize(self.m.jobs)
        try:
            with lock_for(self.dir):
                self.m.save(self.dir)
        except OSError as err:  # ENOSPC, EDQUOT, EACCES, EROFS, a lock timeout
            raise StudyWriteError(self.dir / MANIFEST_NAME, err) from None


def _move_aside(study_dir: Path, job_dir: str) -> None:
    """An earlier failed attempt's directory goes to .attempts/, so its stale result.json can
    never be mistaken for the new attempt's and nothing is deleted."""
    src = study_dir / job_dir
    if not src.exists():
        return
    dest_root = study_dir / ATTEMPTS_DIR
    dest_root.mkdir(exist_ok=True)
    k = 1
    while (dest_root / f"{job_dir}.{k}").exists():
        k += 1
    shutil.move(str(src), str(dest_root / f"{job_dir}.{k}"))


def _record(study_dir: Path, e: JobEntry, job: PlannedJob, ret, launch_error: Optional[BaseException]) -> None:
    """Set the entry from what the job left on disk, else from what the launcher said."""
    from hydra.core.utils import JobStatus

    rp = study_dir / e.job_dir / RESULT_NAME
    e.ended_at = _now()
    if e.log_path and not (study_dir / e.log_path).is_file():
        # other launchers leave Hydra's <job name>.log (submitit keeps its own under .submitit/)
        logs = sorted((study_dir / e.job_dir).glob("*.log"))
        e.log_path = f"{e.job_dir}/{logs[0].name}" if logs else None
    if rp.is_file():
        refresh_entry(study_dir, e)
        return
    exc = None
    if ret is not None and ret.status != JobStatus.COMPLETED:
        exc = ret._return_value
    elif ret is None:
        exc = launch_error
    if exc is None:
        e.status, e.error_type = "failed", "NoResult"
        e.error_message = "the job returned without writing result.json; see its log"
        return
    name = type(exc).__name__
    if name == "JobTimeout":
        # a known cause: written as a failed result, so the job directory says it too
        from llem.runners.jobs import failed_result

        res = failed_result(job.config, exc, e.started_at or _now())
        res.save(rp)
        fill_from_result(e, res)
        e.result_path = f"{e.job_dir}/{RESULT_NAME}"
        return
    # killed (SIGKILL, OOM killer, scancel) or a launcher error: no result was written
    e.status, e.error_type, e.error_message = "lost", name, str(exc)[:500]


def engine_groups(jobs: list[PlannedJob]) -> list[list[PlannedJob]]:
    """``hydra.launcher.share_engine``: the jobs that can share one vLLM engine, together, in the
    order their first job had; every other job alone. Jobs of a group run back to back."""
    from llem.config.vllm_options import engine_group_key

    groups: dict[str, list[PlannedJob]] = {}
    out: list[list[PlannedJob]] = []
    for j in jobs:
        key = engine_group_key(j.config)
        if key is None:
            out.append([j])
        elif key in groups:
            groups[key].append(j)
        else:
            groups[key] = [j]
            out.append(groups[key])
    return out


def _batch_size(launcher, max_batch_size: Optional[int], n: int) -> int:
    slots = getattr(launcher, "slots", None)
    if callable(slots):
        # llem's launcher schedules itself: one job at a time, or all jobs spread over the
        # GPUs (it reports each job as it ends, so the manifest still follows every job)
        return 1 if slots() <= 1 else max(1, n)
    if max_batch_size is None or max_batch_size <= 0:
        return max(1, n)
    return max_batch_size


def prepare_manifest(run: StudyRun) -> tuple[StudyResult, list[PlannedJob]]:
    """The manifest to run against and the jobs still to run."""
    study_dir = run.study_dir
    if run.resume:
        from llem.study.manifest import rebuild

        m = rebuild(study_dir, save=False)
        by_id = {e.job_id: e for e in m.jobs}
        todo = [j for j in run.plan.jobs if by_id[j.job_id].status != "completed"]
        for j in todo:
            e = by_id[j.job_id]
            _move_aside(study_dir, e.job_dir)
            # a pending/failed job whose config changed runs with the new config
            e.config_hash, e.overrides, e.omitted_overrides = j.config_hash, list(j.overrides), list(j.omitted_overrides)
            e.backend, e.model, e.precision, e.batch = j.config.backend, j.config.model.name, j.config.precision, j.config.batch
            for k in ("error_type", "error_message", "result_path", "started_at", "ended_at", "gpu", "duration_s",
                      "energy_per_output_token_j", "energy_per_output_token_ci95", "energy_adjusted_per_output_token_j",
                      "output_tokens_per_s", "tokens_per_joule", "energy_measured", "energy_estimated"):
                setattr(e, k, None)
            e.status, e.warnings = "pending", 0
        m.study_design_hash = run.plan.study_design_hash
        m.finished_at = None
        m.llem_version = __version__
    else:
        m = new_manifest(run)
        todo = list(run.plan.jobs)
    m.owner = _owner()
    return m, todo


def _save_plan(run: StudyRun, m: StudyResult) -> None:
    """plan.json: written when the study starts; rewritten only when a resume replanned it (a
    pending job's config changed), so it always describes the study as it now runs."""
    path = run.study_dir / PLAN_NAME
    # the jobs as planned (not as they ran: a launcher may have moved a job's log), with the
    # study's own record of how it was started
    planned = new_manifest(run)
    for k in ("study_name", "created_at", "launcher", "command_args", "config_dir", "config_name"):
        setattr(planned, k, getattr(m, k))
    plan = StudyPlanRecord.from_manifest(planned)
    if path.is_file():
        try:
            old = StudyPlanRecord.load(path)
            if (old.study_design_hash, old.jobs, old.command_args) == (plan.study_design_hash, plan.jobs,
                                                                       plan.command_args):
                return
        except Exception:
            pass  # unreadable: write it again
    plan.save(run.study_dir)


def _stopped(run: StudyRun, message: str, exit_code: int) -> None:
    run.error, run.exit_code = message, exit_code
    return None


def execute(run: StudyRun, launcher, max_batch_size: Optional[int] = 1, hydra_config=None) -> Optional[StudyResult]:
    """Run the study's remaining jobs; returns the manifest, or None (``run.error`` says why)
    when the study could not start."""
    from llem.errors import LlemError
    from llem.study.lock import StudyLock

    try:
        run.study_dir.mkdir(parents=True, exist_ok=True)
        # ``llem run`` holds it already (taken before its checks); a Hydra app that names
        # llem's sweeper directly takes it here
        lock = StudyLock(run.study_dir, what=f"hydra.sweep.dir={run.study_dir}").acquire()
    except OSError as err:
        return _stopped(run, f"hydra.sweep.dir={run.study_dir}: cannot create it ({err.strerror})", 2)
    except LlemError as err:
        return _stopped(run, str(err), err.exit_code)
    try:
        return _execute(run, launcher, max_batch_size, hydra_config)
    finally:
        lock.release()


def _execute(run: StudyRun, launcher, max_batch_size: Optional[int], hydra_config) -> Optional[StudyResult]:
    from llem.fsio import remove_stale_temps

    study_dir = run.study_dir
    try:
        with lock_for(study_dir):
            # left by a process killed mid-write; no one else writes here while we hold the locks
            for name in (MANIFEST_NAME, PLAN_NAME):
                remove_stale_temps(study_dir, name)
            (study_dir / RESERVE_NAME).unlink(missing_ok=True)
        m, todo = prepare_manifest(run)
        _save_plan(run, m)
    except OSError as err:
        return _stopped(run, f"cannot write in {study_dir} ({err.strerror or err}); no job ran. "
                             f"Once it is writable: llem run --resume {study_dir}", 1)
    store = _Store(study_dir, m)
    entries = {e.job_id: e for e in m.jobs}
    ex = run.plan.execution
    progress = _progress(run, m, ex.cooldown_s)
    live = _live(run, m)
    size = _batch_size(launcher, max_batch_size, len(todo))
    batches = [todo[i:i + size] for i in range(0, len(todo), size)]
    if getattr(launcher, "share_engine", False):
        batches = engine_groups(todo)
    per_job = hasattr(launcher, "on_job_end")  # llem's launcher: callbacks as each job starts and ends
    t_start: dict[str, float] = {}
    recorded: set[str] = set()

    def start(j: PlannedJob, gpu: Optional[str] = None) -> None:
        e = entries[j.job_id]
        e.status, e.started_at, e.gpu = "running", _now(), gpu
        t_start[j.job_id] = time.monotonic()
        progress.start(e)
        if live is not None:
            live.job(e)

    def end(j: PlannedJob, ret, err) -> None:
        e = entries[j.job_id]
        _record(study_dir, e, j, ret, err)
        e.duration_s = round(time.monotonic() - t_start.get(j.job_id, time.monotonic()), 3)
        recorded.add(j.job_id)
        progress.end(e)
        if live is not None:
            live.job(e)

    old_term = _sigterm_as_interrupt()
    current: list[PlannedJob] = []
    write_error: Optional[StudyWriteError] = None
    try:
        store.save()
        store.reserve.make(RESERVE_MIN_BYTES + 2 * len(m.model_dump_json(indent=2)))
        if hydra_config is not None and not (study_dir / "multirun.yaml").exists():
            from omegaconf import OmegaConf

            try:
                OmegaConf.save(hydra_config, study_dir / "multirun.yaml")
            except OSError as err:
                (study_dir / "multirun.yaml").unlink(missing_ok=True)
                raise StudyWriteError(study_dir / "multirun.yaml", err) from None
        for b, batch in enumerate(batches):
            if b > 0 and ex.cooldown_s > 0:
                progress.say(f"cooling down {ex.cooldown_s:g} s")
                time.sleep(ex.cooldown_s)
            current = batch
            if per_job:
                def on_start(k: int, job_dir: Path, gpu: Optional[str], _batch=batch) -> None:
                    start(_batch[k], gpu)
                    store.save()

                def on_end(k: int, ret, _batch=batch) -> None:
                    end(_batch[k], ret, None)
                    store.save()

                launcher.on_job_start, launcher.on_job_end = on_start, on_end
                # side by side on several GPUs, each GPU rests cooldown_s between its jobs
                launcher.cooldown_s = ex.cooldown_s if len(batch) > 1 else 0.0
            else:
                for j in batch:
                    start(j)
                store.save()
            rets, err = None, None
            if hasattr(launcher, "engine_group"):
                launcher.engine_group = ({"jobs": [j.job_id for j in batch], "max_num_seqs": max(j.config.batch for j in batch)}
                                         if len(batch) > 1 else None)
            try:
                rets = launcher.launch([j.launch_overrides() for j in batch], initial_job_idx=batch[0].index)
            except StudyWriteError:
                raise  # from our own callbacks: the launcher has stopped its jobs; so do we
            except Exception as exc:  # submitit raises for a killed/failed job; the others may be fine
                err = exc
            for k, j in enumerate(batch):
                if j.job_id not in recorded:
                    end(j, rets[k] if rets is not None and k < len(rets) else None, err)
            current = []
            store.save()
    except KeyboardInterrupt:
        run.interrupted = True
        _stop_running(study_dir, entries, current, "Interrupted",
                      "stopped by Ctrl-C/SIGTERM of the study; run it again with llem run --resume")
    except StudyWriteError as err:
        write_error = err
        _stop_running(study_dir, entries, current, "StudyStopped",
                      f"the study stopped: {err}; run it again with llem run --resume")
    finally:
        _restore_sigterm(old_term)
    if not run.interrupted and write_error is None:
        m.finished_at = _now()
    m.owner = {}
    if write_error is not None:
        store.reserve.release()  # room for this last save on a full disk
    last_error = None
    try:
        store.save()
    except StudyWriteError as err:
        last_error = err
        write_error = write_error or err
    store.reserve.release()
    if live is not None:
        live.finish(m, "interrupted" if run.interrupted else ("stopped" if write_error is not None else "finished"))
    run.result = m
    global LAST
    LAST = m
    s = m.summary
    run.exit_code = 130 if run.interrupted else (1 if s["failed"] or s["lost"] or s["pending"] or write_error else 0)
    if write_error is not None:
        done = sum(1 for e in m.jobs if e.status == "completed")
        run.error = (f"{write_error}: the study stopped ({done} of {len(m.jobs)} jobs completed, their results are "
                     f"kept); once the cause is fixed, finish it with: llem run --resume {study_dir}")
        if last_error is not None:
            run.error += (f" ({MANIFEST_NAME} still shows the state before the failure; the resume reads the "
                          "rest from the job directories)")
    if not run.quiet:
        from llem.study.progress import summary_table

        print(summary_table(m), flush=True)
        if run.interrupted:
            print(f"interrupted: resume with  llem run --resume {study_dir}", file=sys.stderr, flush=True)
    return m


def _stop_running(study_dir: Path, entries: dict[str, JobEntry], current: list[PlannedJob], error_type: str,
                  message: str) -> None:
    """The jobs of the batch that was running when the study stopped: recorded from their
    result.json if they wrote one, else as failed with why."""
    for j in current:
        e = entries[j.job_id]
        if e.status != "running":
            continue  # already recorded, or never started (stays pending)
        if (study_dir / e.job_dir / RESULT_NAME).is_file():
            refresh_entry(study_dir, e)
        else:
            e.status, e.error_type, e.error_message = "failed", error_type, message[:500]
            e.ended_at = _now()


def _progress(run: StudyRun, m: StudyResult, cooldown_s: float):
    from llem.study.progress import Progress

    from llem.study.progress import varying

    done = sum(1 for e in m.jobs if e.status == "completed")
    keys, _ = varying([e.overrides for e in m.jobs])
    return Progress(len(m.jobs), already_done=done, cooldown_s=cooldown_s, quiet=run.quiet, keys=keys)


def _live(run: StudyRun, m: StudyResult):
    """The reporter of ``--live URL``, started; None without it."""
    if not run.live_url:
        return None
    from llem.study.live import LiveReporter

    reporter = LiveReporter(run.live_url, run.live_token or "")
    reporter.begin(m)
    return reporter


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _sigterm_as_interrupt():
    """SIGTERM (kill, scancel, a container stop) stops the study like Ctrl-C does: the running
    job is stopped and recorded instead of being orphaned."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def _restore_sigterm(old) -> None:
    if old is not None:
        signal.signal(signal.SIGTERM, old)
