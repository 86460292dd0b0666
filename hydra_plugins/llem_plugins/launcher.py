"""llem's local launcher (``hydra/launcher=local``): each job in its own process.

Hydra's submitit_local starts every job at once and gives each ``CUDA_VISIBLE_DEVICES=0``, so
two measured jobs would share one GPU and disturb each other's energy. This launcher runs one
job at a time by default; with ``parallel_gpus=true`` it runs jobs side by side, each alone on
one of the visible GPUs.

Each job is ``python -m hydra_plugins.llem_plugins._child`` in a new session (so a Ctrl-C at
the terminal reaches the study, which then stops the job cleanly), with stdout and stderr in
``<job dir>/job.log``. A job past ``timeout_s`` is stopped (SIGTERM, then SIGKILL). A job that
dies from a signal (SIGKILL, the OOM killer) comes back as a failed ``JobReturn`` whose
exception says so; the sweeper records it.
"""
from __future__ import annotations

import copy
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from hydra_plugins.llem_plugins import config  # noqa: F401  (registers the configs)

log = logging.getLogger(__name__)

JOB_LOG = "job.log"
_PAYLOAD = ".llem_payload.pkl"
_RETURN = ".llem_return.pkl"


class JobKilled(RuntimeError):
    """The job's process died from a signal before it returned."""


class JobTimeout(RuntimeError):
    """The job ran past ``hydra.launcher.timeout_s`` and was stopped."""


class JobCrashed(RuntimeError):
    """The job's process exited without returning (an error outside the task function)."""


def visible_gpus() -> list[str]:
    """The GPUs jobs may be spread over: CUDA_VISIBLE_DEVICES entries, else NVML's GPUs."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [t.strip() for t in env.split(",") if t.strip()]
    from llem.devices import resolve_devices

    return [d.uuid for d in resolve_devices(use_env=False)]


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def fill_job_configs(ret: JobReturn, sweep_config: Optional[DictConfig]) -> None:
    """Give ``ret`` the task config, Hydra config and task name of its job, as Hydra's
    ``run_job`` fills them, for a job whose process ended without returning its own."""
    if sweep_config is None:
        return
    task_cfg = copy.deepcopy(sweep_config)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    ret.cfg = task_cfg
    ret.hydra_cfg = OmegaConf.create({"hydra": copy.deepcopy(sweep_config.hydra)})
    ret.task_name = str(sweep_config.hydra.job.name)


class _Running:
    def __init__(self, idx, overrides, job_dir: Path, proc: subprocess.Popen, gpu: Optional[str], log_file,
                 sweep_config: Optional[DictConfig] = None) -> None:
        self.idx, self.overrides, self.job_dir, self.proc, self.gpu = idx, overrides, job_dir, proc, gpu
        self.log_file = log_file
        self.sweep_config = sweep_config
        self.started = time.monotonic()
        self.timed_out = False


class LlemLocalLauncher(Launcher):
    def __init__(self, parallel_gpus: bool = False, timeout_s: Optional[float] = None,
                 kill_grace_s: float = 10.0, python: Optional[str] = None, share_engine: bool = False) -> None:
        self.parallel_gpus = bool(parallel_gpus)
        # opt-in: vLLM jobs that differ only in what the engine does not fix at start-up run in one
        # process, one after another, and the first job's engine serves them all
        self.share_engine = bool(share_engine)
        # set by llem's study engine before launching such a group: {"jobs": [job ids in order],
        # "max_num_seqs": the group's largest batch}; None for an ordinary batch
        self.engine_group: Optional[dict] = None
        self.timeout_s = float(timeout_s) if timeout_s else None
        self.kill_grace_s = float(kill_grace_s)
        self.python = python or sys.executable
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None
        # set by llem's study engine: on_job_start(k, job_dir, gpu) when the k-th job of a
        # launch() starts, on_job_end(k, JobReturn) when it ends; and the rest a GPU gets
        # between two jobs when jobs run side by side
        self.on_job_start: Optional[Callable[[int, Path, Optional[str]], None]] = None
        self.on_job_end: Optional[Callable[[int, JobReturn], None]] = None
        self.cooldown_s: float = 0.0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def slots(self) -> int:
        """How many jobs this launcher runs at once."""
        if not self.parallel_gpus:
            return 1
        return max(1, len(visible_gpus()))

    # -- one job --------------------------------------------------------------------------
    def _prepare(self, idx: int, overrides: Sequence[str], gpu: Optional[str]):
        """The job's sweep config and directory, a fresh return path, and its log with a header."""
        assert self.hydra_context is not None and self.config is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{os.getpid()}_{idx}"
            sweep_config.hydra.job.num = idx
        job_dir = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / _RETURN).unlink(missing_ok=True)
        header = f"== llem job {idx}: {' '.join(filter_overrides(overrides))}"
        if gpu is not None:
            header += f" | CUDA_VISIBLE_DEVICES={gpu}"
        with open(job_dir / JOB_LOG, "ab") as f:
            f.write((header + "\n").encode())
        return sweep_config, job_dir

    def _spawn(self, payload: dict, payload_path: Path, log_path: Path, gpu: Optional[str]):
        import cloudpickle

        payload = {"singleton_state": Singleton.get_state(), "hydra_context": self.hydra_context,
                   "task_function": self.task_function, "parent_pid": os.getpid(), **payload}
        with open(payload_path, "wb") as f:
            cloudpickle.dump(payload, f)
        env = os.environ.copy()
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        log_file = open(log_path, "ab")
        proc = subprocess.Popen([self.python, "-m", "hydra_plugins.llem_plugins._child", str(payload_path)],
                                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        return proc, log_file

    def _start(self, idx: int, overrides: Sequence[str], gpu: Optional[str]) -> _Running:
        sweep_config, job_dir = self._prepare(idx, overrides, gpu)
        proc, log_file = self._spawn({"sweep_config": sweep_config, "return_path": str(job_dir / _RETURN)},
                                     job_dir / _PAYLOAD, job_dir / JOB_LOG, gpu)
        log.debug(f"#{idx} : {' '.join(filter_overrides(overrides))}" + (f" (GPU {gpu})" if gpu else ""))
        return _Running(idx, list(overrides), job_dir, proc, gpu, log_file, sweep_config)

    def _stop(self, r: _Running) -> None:
        self._stop_process(r.proc)

    def _stop_process(self, proc: subprocess.Popen) -> None:
        """SIGTERM the job's whole process group (vLLM and friends start workers), then SIGKILL."""
        for sig, wait in ((signal.SIGTERM, self.kill_grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # any straggler in the group (the leader may already be gone)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _finish(self, r: _Running) -> JobReturn:
        rc = r.proc.wait()
        r.log_file.close()
        (r.job_dir / _PAYLOAD).unlink(missing_ok=True)
        return self._collect(r.overrides, r.job_dir, r.sweep_config, rc, r.timed_out)

    def _collect(self, overrides, job_dir: Path, sweep_config, rc: Optional[int], timed_out: bool) -> JobReturn:
        """The job's JobReturn from what its process sent back, or from how the process ended."""
        ret = JobReturn(overrides=list(overrides), working_dir=str(job_dir))
        fill_job_configs(ret, sweep_config)
        ret_path = job_dir / _RETURN
        back = None
        if ret_path.is_file():
            try:
                with open(ret_path, "rb") as f:
                    back = pickle.load(f)
            except Exception:
                back = None
            ret_path.unlink(missing_ok=True)
        if back is not None:
            # the job's own view (runtime fields resolved in its process) wins over the parent's
            for key in ("cfg", "hydra_cfg", "task_name"):
                if back.get(key) is not None:
                    setattr(ret, key, back[key])
        if timed_out:
            ret.status = JobStatus.FAILED
            ret._return_value = JobTimeout(f"stopped after the per-job timeout of {self.timeout_s:g} s "
                                           "(hydra.launcher.timeout_s)")
        elif back is not None and back["status"] == "COMPLETED":
            ret.status = JobStatus.COMPLETED
            ret._return_value = back["return_value"]
        elif back is not None:
            ret.status = JobStatus.FAILED
            ret._return_value = RuntimeError(f"{back['error_type']}: {back['error_message']}")
        elif rc is not None and rc < 0:
            ret.status = JobStatus.FAILED
            ret._return_value = JobKilled(f"the job's process was killed by {_signal_name(rc)}"
                                          + (" (out of memory? see dmesg)" if rc == -signal.SIGKILL else ""))
        else:
            ret.status = JobStatus.FAILED
            ret._return_value = JobCrashed(f"the job's process exited with code {rc} before returning; "
                                           f"see {job_dir / JOB_LOG}")
        return ret

    # -- a shared-engine group ------------------------------------------------------------------
    def _launch_group(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        """The jobs in one process, one after another, so vLLM starts their engine once. Each job
        still gets its own directory, log, result and return, and the per-job timeout; a process
        that dies fails the job it was running, and the rest go on in a new process."""
        group = self.engine_group or {}
        ids = list(group.get("jobs") or [str(initial_job_idx + k) for k in range(len(job_overrides))])
        results: dict[int, JobReturn] = {}
        todo = list(range(len(job_overrides)))
        while todo:
            jobs = []
            for k in todo:
                sweep_config, job_dir = self._prepare(initial_job_idx + k, job_overrides[k], None)
                sharing = {"jobs": ids, "position": k, "max_num_seqs": group.get("max_num_seqs"),
                           "log": str(job_dir / JOB_LOG)}
                jobs.append((k, sweep_config, job_dir, sharing))
            first_dir = jobs[0][2]
            proc, log_file = self._spawn(
                {"jobs": [{"sweep_config": c, "return_path": str(d / _RETURN), "log_path": str(d / JOB_LOG),
                           "sharing": sh} for _, c, d, sh in jobs]},
                first_dir / _PAYLOAD, first_dir / JOB_LOG, None)
            todo = self._watch_group(proc, jobs, job_overrides, results)
            log_file.close()
            (first_dir / _PAYLOAD).unlink(missing_ok=True)
        return [results[k] for k in range(len(job_overrides))]

    def _watch_group(self, proc, jobs, job_overrides, results: dict) -> list[int]:
        """Follow the group's process job by job; the jobs left to run if it ended early."""
        at = 0
        started = time.monotonic()
        if self.on_job_start is not None:
            self.on_job_start(jobs[0][0], jobs[0][2], None)
        try:
            while at < len(jobs):
                k, cfg, job_dir, _ = jobs[at]
                if (job_dir / _RETURN).is_file():  # written by os.replace: complete when it exists
                    rc, timed_out = None, False
                elif proc.poll() is not None:
                    rc, timed_out = proc.returncode, False
                elif self.timeout_s and time.monotonic() - started > self.timeout_s:
                    self._stop_process(proc)
                    rc, timed_out = proc.returncode, True
                else:
                    time.sleep(0.05)
                    continue
                results[k] = self._collect(job_overrides[k], job_dir, cfg, rc, timed_out)
                if self.on_job_end is not None:
                    self.on_job_end(k, results[k])
                at += 1
                if rc is not None or timed_out:
                    return [j[0] for j in jobs[at:]]  # the process is gone: the rest start afresh
                started = time.monotonic()
                if at < len(jobs) and self.on_job_start is not None:
                    self.on_job_start(jobs[at][0], jobs[at][2], None)
            try:
                proc.wait(max(self.kill_grace_s, 120.0))  # the engine's shutdown
            except subprocess.TimeoutExpired:
                self._stop_process(proc)
        except BaseException:
            self._stop_process(proc)
            raise
        return []

    # -- the batch --------------------------------------------------------------------------
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        if self.share_engine and self.engine_group and len(job_overrides) > 1:
            return self._launch_group(job_overrides, initial_job_idx)
        gpus: list[Optional[str]] = [None]
        if self.parallel_gpus:
            found = visible_gpus()
            if found:
                gpus = list(found)
            else:
                log.warning("hydra.launcher.parallel_gpus=true but no GPU is visible: running jobs one at a time")
        queue = list(enumerate(job_overrides))
        results: dict[int, JobReturn] = {}
        running: list[_Running] = []
        free = [(g, 0.0) for g in gpus]  # (gpu, monotonic time it may take the next job)
        try:
            while queue or running:
                now = time.monotonic()
                while queue and free and free[0][1] <= now:
                    k, ovr = queue.pop(0)
                    gpu, _ = free.pop(0)
                    r = self._start(initial_job_idx + k, ovr, gpu)
                    r.k = k
                    running.append(r)
                    if self.on_job_start is not None:
                        self.on_job_start(k, r.job_dir, gpu)
                time.sleep(0.05)
                for r in list(running):
                    if r.proc.poll() is None:
                        if self.timeout_s and time.monotonic() - r.started > self.timeout_s:
                            r.timed_out = True
                            self._stop(r)
                        else:
                            continue
                    running.remove(r)
                    results[r.k] = self._finish(r)
                    free.append((r.gpu, time.monotonic() + self.cooldown_s))
                    free.sort(key=lambda f: f[1])
                    if self.on_job_end is not None:
                        self.on_job_end(r.k, results[r.k])
        except BaseException:
            # Ctrl-C or SIGTERM of the study: no job may keep running (and holding a GPU)
            for r in running:
                self._stop(r)
                r.log_file.close()
                (r.job_dir / _PAYLOAD).unlink(missing_ok=True)
            raise
        return [results[k] for k in range(len(job_overrides))]
