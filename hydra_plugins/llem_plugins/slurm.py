"""llem's Slurm launcher (``hydra/launcher=slurm``): hydra-submitit-launcher's, made failure-proof.

submitit_slurm's own ``launch`` returns after asking each job for its result in turn and raises
at the first job that Slurm ended without one (``scancel``, time limit, node failure, out of
memory). The study then cannot tell the jobs of that batch apart, and the later jobs of an
array are left running unwatched. This launcher submits the same way (same keys, same sbatch
script, same job function, so jobs run exactly as under submitit_slurm), then waits for every
job and turns each one that ended without a result into:

- a failed ``result.json`` in the job's directory (error type from the Slurm state, what
  ``sacct`` says about the job under ``environment.slurm``), so the study directory alone tells
  what happened, as for a job that failed on its own;
- a failed ``JobReturn``, so the sweeper goes on with the other jobs.

A Ctrl-C or SIGTERM of the study cancels the jobs it submitted that have not ended.

A job that ended without a result may only look so: on a shared filesystem its result file can
show up on the submitting host a little later. submitit waits 15 s for it, job after job (an
array of 100 cancelled jobs: 25 minutes); this launcher waits once for all of them, and not at
all for a job that ran on this host (its file went through this host's own kernel, so it would
already be visible).

Each job's output (submitit keeps it under ``.submitit/<Slurm id>/``) is copied to
``<job dir>/job.log``, where the manifest's ``log_path`` points: the job directory comes from
the job's own config, never from the directory ``llem`` was started in.

Time limits: submitit asks Slurm to warn each job with SIGUSR2 ``signal_delay_s`` before its
limit, and its handler then raises ``UncompletedJobError`` wherever the job happens to be (to
requeue a checkpointable job). llem never requeues (a measurement restarted half-way is not
the same measurement), so the job ignores the warning: Slurm ends it at its limit, records it
as ``TIMEOUT``, and this launcher writes the failed result (``SlurmTimeLimit``, with
``sacct``'s state) as for any job Slurm ended.
"""
from __future__ import annotations

import logging
import signal
import socket
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig

from hydra_plugins.llem_plugins.launcher import fill_job_configs

log = logging.getLogger(__name__)

RESULT_NAME = "result.json"
# submitit_slurm's keys that size a job the same way on any cluster (the others are passed to
# submitit with a "slurm_" prefix); from its BaseQueueConf.
_GENERIC_KEYS = {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "name",
                 "stderr_to_stdout"}
# read when the executor is built, not per job
_EXECUTOR_KEYS = {"submitit_folder", "max_num_timeout"}


class SlurmJobEnded(RuntimeError):
    """Slurm ended the job before it wrote its result."""


class SlurmTimeLimit(SlurmJobEnded):
    """The job reached its time limit (hydra.launcher.timeout_min)."""


class SlurmCancelled(SlurmJobEnded):
    """The job was cancelled (scancel, or an administrator)."""


class SlurmOutOfMemory(SlurmJobEnded):
    """The job went past its memory allocation."""


class SlurmNodeFailure(SlurmJobEnded):
    """The job's node failed or was taken back (node failure, preemption, boot failure)."""


def _error_class(state: str) -> type:
    s = state.upper()
    if s.startswith(("TIMEOUT", "DEADLINE")):
        return SlurmTimeLimit
    if s.startswith("CANCELLED"):
        return SlurmCancelled
    if s.startswith("OUT_OF_ME"):
        return SlurmOutOfMemory
    if s.startswith(("NODE_FAIL", "PREEMPTED", "BOOT_FAIL")):
        return SlurmNodeFailure
    return SlurmJobEnded


def _utc(sacct_time: Optional[str]) -> Optional[str]:
    """sacct prints the cluster's local time without a zone; results use UTC."""
    from datetime import datetime, timezone

    if not sacct_time or not sacct_time[:1].isdigit():
        return None
    try:
        return datetime.fromisoformat(sacct_time).astimezone(timezone.utc).isoformat(timespec="seconds")
    except ValueError:
        return None


def _time_limit_warning(signum: int, frame: Any) -> None:
    log.warning("Slurm's time-limit warning (SIGUSR2): llem does not requeue jobs; this job runs on "
                "until Slurm ends it at its limit (hydra.launcher.timeout_min)")


def _output_dir(ret: JobReturn) -> Optional[Path]:
    """The job directory of a job that returned, from the Hydra config it ran with."""
    try:
        out = ret.hydra_cfg.hydra.runtime.output_dir  # type: ignore[union-attr]
    except Exception:
        return None
    return Path(str(out)) if out else None


class LlemSlurmLauncher(SlurmLauncher):
    #: Slurm allocates each job its own GPUs (gres), so llem's sweeper submits the whole grid
    #: as one array instead of one job at a time (see LlemSweeper.effective_max_batch_size).
    parallel_jobs_get_own_gpus = True
    # How often Slurm is asked about unfinished jobs: often at first, as jobs that fail at
    # once (bad request, missing environment) are common, then rarely, as sacct costs the
    # accounting database and a measured job runs for minutes to hours.
    poll_min_s = 2.0
    poll_max_s = 30.0
    # How long a result file that a job did not leave may still appear (a shared filesystem's
    # cache): submitit's own wait (Job._results_timeout_s), once for all jobs of a batch.
    result_grace_s = 15.0

    # -- on the node ---------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """The job itself, on its node: as submitit_slurm's, without the requeue on the time-limit
        warning (submitit's SIGUSR2 handler is installed just before this runs)."""
        if hasattr(signal, "SIGUSR2"):
            signal.signal(signal.SIGUSR2, _time_limit_warning)
        return super().__call__(*args, **kwargs)

    def checkpoint(self, *args: Any, **kwargs: Any) -> None:
        """No requeue, ever. submitit's own SIGUSR2 handler, installed just before ``__call__``
        replaces it, calls this to requeue the job; a warning landing in that moment (a warning
        due early, or a preemption, which submitit requeues whatever ``max_num_timeout`` says)
        would run the measurement again from the start. With None, submitit ends the job with an
        error result instead, which the launcher records as the job's failure."""
        return None

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        jobs = self._submit(job_overrides, initial_job_idx)
        try:
            self._wait(jobs)
        except BaseException:
            self._cancel(jobs)
            raise
        facts = self._await_results(jobs)
        return [self._collect(job, list(ovr), initial_job_idx + k, facts.get(job.job_id))
                for k, (job, ovr) in enumerate(zip(jobs, job_overrides))]

    # -- submit ----------------------------------------------------------------------------
    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
        import submitit

        params = dict(self.params)
        executor = submitit.AutoExecutor(folder=params["submitit_folder"], cluster="slurm",
                                         slurm_max_num_timeout=params.get("max_num_timeout", 0))
        executor.update_parameters(**{(k if k in _GENERIC_KEYS else f"slurm_{k}"): v
                                      for k, v in params.items() if k not in _EXECUTOR_KEYS})
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        indices = [initial_job_idx + k for k in range(len(job_overrides))]
        state = Singleton.get_state()
        # the arguments of BaseSubmititLauncher.__call__, which runs each job on its node
        jobs = executor.map_array(self, [list(o) for o in job_overrides], ["hydra.sweep.dir"] * len(indices),
                                  indices, [f"job_id_for_{i}" for i in indices], [state] * len(indices))
        for idx, job, ovr in zip(indices, jobs, job_overrides):
            log.info(f"#{idx} : Slurm job {job.job_id} : {' '.join(filter_overrides(list(ovr)))}")
        return jobs

    # -- wait --------------------------------------------------------------------------------
    def _wait(self, jobs: list) -> None:
        t0 = time.monotonic()
        last_poll = t0
        pending = list(jobs)
        while pending:
            elapsed = time.monotonic() - t0
            force = time.monotonic() - last_poll >= min(self.poll_max_s, max(self.poll_min_s, elapsed / 10))
            if force:
                last_poll = time.monotonic()
            # one forced sacct call refreshes every job of this executor's watcher
            pending = [j for k, j in enumerate(pending) if not j.done(force_check=force and k == 0)]
            if pending:
                time.sleep(1.0)

    def _await_results(self, jobs: list) -> dict[str, dict]:
        """What sacct says about each ended job that left no result file, once its file can no
        longer appear late.

        submitit's ``results()`` waits up to 15 s for a missing result file in case a shared
        filesystem shows it late, one job after another. Here one wait of ``result_grace_s``
        serves every job of the batch, and a job that ran on this host needs none: it wrote its
        file through this host's kernel, so any process here would see it at once. A job
        whose node sacct cannot name is waited for."""
        from llem.environment.cluster import sacct_facts

        missing = [j for j in jobs if not j.paths.result_pickle.exists()]
        facts = {j.job_id: sacct_facts(j.job_id) for j in missing}
        here = socket.gethostname().split(".")[0]
        elsewhere = [j for j in missing if facts[j.job_id].get("node_name") != here]
        deadline = time.monotonic() + self.result_grace_s
        while elsewhere and time.monotonic() < deadline:
            time.sleep(1.0)
            for folder in {j.paths.folder for j in elsewhere}:
                try:  # as submitit does: a chmod makes NFS refresh its view of the folder
                    folder.chmod(folder.stat().st_mode)
                except OSError:
                    pass
            elsewhere = [j for j in elsewhere if not j.paths.result_pickle.exists()]
        for j in missing:
            j._results_timeout_s = 0  # waited for above; results() reads the file or raises at once
        return facts

    @staticmethod
    def _cancel(jobs: list) -> None:
        unfinished = [j for j in jobs if not j.done()]
        for j in unfinished:
            try:
                j.cancel(check=False)
            except Exception as err:  # a cancel that fails must not hide the interrupt
                log.warning(f"could not cancel Slurm job {j.job_id}: {err}")
        if unfinished:
            log.warning(f"cancelled Slurm jobs {' '.join(j.job_id for j in unfinished)}")

    # -- collect -----------------------------------------------------------------------------
    def _collect(self, job: Any, overrides: List[str], idx: int, facts: Optional[dict] = None) -> JobReturn:
        try:
            ret = job.results()[0]
        except Exception as exc:  # the job ended without returning; record why, go on
            ret = self._failed(job, overrides, idx, exc, facts)
        # A returned job's working_dir is the directory the job ran in (where llem was
        # started, as Hydra does not change into the job directory): the log belongs in the
        # job's output directory, which its config names.
        job_dir = _output_dir(ret) or self._job_dir(overrides)
        if job_dir is not None:
            self._copy_log(job, job_dir)
        return ret

    @staticmethod
    def _copy_log(job: Any, job_dir: Path) -> None:
        """The study's manifest points at <job dir>/job.log for every launcher; submitit keeps
        the job's output under .submitit/<Slurm id>/, so it is copied beside the result."""
        parts = [f"== Slurm job {job.job_id}: {job.paths.stdout} and {job.paths.stderr}\n"]
        for path in (job.paths.stdout, job.paths.stderr):
            try:
                parts.append(Path(path).read_text(errors="replace"))
            except OSError:
                continue
        try:
            job_dir.mkdir(parents=True, exist_ok=True)
            with open(job_dir / "job.log", "a") as f:
                f.write("".join(parts))
        except OSError as err:
            log.warning(f"could not copy the log of Slurm job {job.job_id}: {err}")

    def _failed(self, job: Any, overrides: List[str], idx: int, exc: BaseException,
                facts: Optional[dict] = None) -> JobReturn:
        from llem.environment.cluster import sacct_facts

        facts = facts or sacct_facts(job.job_id)
        state = str(facts.get("state") or getattr(job, "state", "") or "UNKNOWN")
        where = f" on {facts['node_name']}" if facts.get("node_name") else ""
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        err = _error_class(state)(f"Slurm job {job.job_id} ended {state}{where} without a result "
                                  f"({type(exc).__name__}: {detail}); its log: {job.paths.stderr}")
        ret = JobReturn(overrides=overrides)
        fill_job_configs(ret, self._sweep_config(overrides))
        ret.status = JobStatus.FAILED
        ret._return_value = err
        job_dir = self._job_dir(overrides)
        if job_dir is not None:
            ret.working_dir = str(job_dir)
            if not (job_dir / RESULT_NAME).is_file():
                self._write_failed_result(job_dir, overrides, err, facts)
        log.warning(f"#{idx} : {err}")
        return ret

    def _sweep_config(self, overrides: List[str]) -> Optional[DictConfig]:
        try:
            return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        except Exception as err:
            log.warning(f"cannot compose the config of {' '.join(overrides)}: {err}")
            return None

    def _job_dir(self, overrides: List[str]) -> Optional[Path]:
        cfg = self._sweep_config(overrides)
        return None if cfg is None else Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)

    def _write_failed_result(self, job_dir: Path, overrides: List[str], err: BaseException, facts: dict) -> None:
        """The same failed result a job writes for its own errors, so readers of the study
        directory need no Slurm-specific case."""
        from llem.config.compose import to_plain, validate
        from llem.measure.harness import _now
        from llem.runners.jobs import failed_result

        try:
            from omegaconf import open_dict

            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            # the job's hydra node only resolves inside a running Hydra job; the experiment
            # config does not need it
            with open_dict(cfg):
                del cfg["hydra"]
            config = validate(to_plain(cfg))
            res = failed_result(config, err, _utc(facts.get("start")) or _now())
            res.ended_at = _utc(facts.get("end")) or res.ended_at
            res.environment = {"slurm": facts}
            res.extra.pop("traceback", None)  # raised here, in the study process: says nothing
            res.save(job_dir / RESULT_NAME)
        except Exception as write_err:
            log.warning(f"could not write the failed result of {job_dir}: {write_err}")
