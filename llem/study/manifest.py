"""Keeping ``manifest.json`` (``llem.results.manifest.StudyResult``) true to the job directories.

Job entries are refreshed from each job's ``result.json``, the whole manifest can be rebuilt
from the job directories on disk (``rebuild``), and a file lock guards its read-modify-write.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from llem.result import ExperimentResult
from llem.results.manifest import MANIFEST_NAME, JobEntry, StudyResult

# --- keeping the manifest true to the job directories --------------------------------------

RESULT_NAME = "result.json"


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def lock_for(study_dir: str | Path):
    """A file lock around read-modify-write of manifest.json (Slurm jobs, a resume and
    ``llem results`` may touch the same study)."""
    from filelock import FileLock

    return FileLock(str(Path(study_dir) / f".{MANIFEST_NAME}.lock"), timeout=60)


def fill_from_result(entry: JobEntry, result: ExperimentResult) -> JobEntry:
    """Copy a job's result.json into its manifest entry (status, error, headline numbers)."""
    entry.status = "completed" if result.status == "completed" else "failed"
    entry.error_type = result.error_type
    entry.error_message = (result.error_message or None) and result.error_message[:500]
    entry.started_at = result.started_at
    entry.ended_at = result.ended_at
    e = result.energy
    entry.energy_measured = e.measured
    entry.energy_estimated = e.estimated if e.measured else None
    entry.warnings = len(result.warnings)
    entry.energy_per_output_token_j = e.energy_per_output_token_j
    entry.energy_adjusted_per_output_token_j = e.energy_adjusted_per_output_token_j
    entry.tokens_per_joule = e.tokens_per_joule
    entry.output_tokens_per_s = result.output_tokens_per_s
    s = result.stats.get("energy_per_output_token_j")
    entry.energy_per_output_token_ci95 = [s.ci95_low, s.ci95_high] if s is not None and s.ci95_low is not None else None
    return entry


def refresh_entry(study_dir: Path, entry: JobEntry, *, running_ok: bool = False) -> JobEntry:
    """The entry's status as the job directory shows it.

    result.json -> its status. A directory without one -> ``lost`` (the job started and died
    before writing it), unless ``running_ok`` (its study process is still alive). No directory
    -> ``pending``.
    """
    if not entry.job_dir:
        return entry
    jd = study_dir / entry.job_dir
    rp = jd / RESULT_NAME
    if rp.is_file():
        try:
            res = ExperimentResult.load(rp)
        except Exception as err:
            entry.status, entry.error_type = "lost", "UnreadableResult"
            entry.error_message = f"{entry.job_dir}/{RESULT_NAME} could not be read: {err}"[:500]
            return entry
        entry.result_path = f"{entry.job_dir}/{RESULT_NAME}"
        return fill_from_result(entry, res)
    entry.result_path = None
    if entry.status == "running" and running_ok:
        return entry
    if entry.status == "failed" and entry.error_type:
        return entry  # recorded by the study process (timeout, interrupt, launcher error)
    if jd.is_dir() or entry.status in ("running", "completed"):
        entry.status = "lost"
        entry.error_type = "Lost"
        entry.error_message = ("the job started but never wrote result.json (killed?)" if jd.is_dir()
                               else "no job directory: the job never started or was removed")
    return entry


def summarize(jobs: list[JobEntry]) -> dict[str, Any]:
    counts = {s: 0 for s in ("pending", "running", "completed", "failed", "lost")}
    for j in jobs:
        counts[j.status] += 1
    measured = [j for j in jobs if j.status == "completed" and j.energy_measured]
    return {
        "jobs": len(jobs),
        **counts,
        "failed_jobs": [j.job_id for j in jobs if j.status in ("failed", "lost")],
        "energy_measured_jobs": len(measured),
    }


def _owner_alive(owner: dict[str, Any]) -> bool:
    import os
    import socket

    from llem.environment.snapshot import boot_id

    pid = owner.get("pid")
    if not pid or owner.get("host") != socket.gethostname() or pid == os.getpid():
        return False
    # another machine of the same host name, or this one rebooted: the pid is someone else's
    if owner.get("boot_id") and owner["boot_id"] != boot_id():
        return False
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True


def rebuild(study_dir: str | Path, *, save: bool = True) -> StudyResult:
    """Rebuild manifest.json from the job directories.

    The planned jobs come from the existing manifest (written before the first job ran);
    their statuses and numbers come from each job's result.json. Without a manifest, the job
    directories themselves (``.hydra/overrides.yaml`` + ``result.json``) are the plan.
    """
    study_dir = Path(study_dir).resolve()
    mpath = study_dir / MANIFEST_NAME
    with lock_for(study_dir):
        if mpath.is_file():
            m = StudyResult.load(mpath)
            alive = _owner_alive(m.owner)
            m.jobs = [refresh_entry(study_dir, j, running_ok=alive) for j in m.jobs]
        else:
            m = _from_job_dirs(study_dir)
        m.study_dir = str(study_dir)
        m.summary = summarize(m.jobs)
        m.updated_at = _now()
        if save:
            m.save(study_dir)
    return m


def _from_job_dirs(study_dir: Path) -> StudyResult:
    import yaml

    from llem._version import __version__

    jobs = []
    for k, jd in enumerate(sorted(p for p in study_dir.iterdir() if (p / ".hydra").is_dir())):
        ov_path = jd / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(ov_path.read_text()) if ov_path.is_file() else []
        rp = jd / RESULT_NAME
        res = None
        if rp.is_file():
            try:
                res = ExperimentResult.load(rp)
            except Exception:
                res = None
        e = JobEntry(job_id=jd.name, index=k, grid_index=k, overrides=list(overrides or []),
                     config_hash=res.config_hash if res else "", backend=res.backend if res else "?",
                     model=res.model if res else "?", precision=res.precision if res else "?",
                     batch=res.batch if res else 0, status="running", job_dir=jd.name,
                     log_path=f"{jd.name}/job.log" if (jd / "job.log").is_file() else None)
        jobs.append(refresh_entry(study_dir, e))
    from llem.study.plan import design_hash

    now = _now()
    return StudyResult(study_name=study_dir.name, study_design_hash=design_hash([j.config_hash for j in jobs], {}),
                       llem_version=__version__, created_at=now, updated_at=now, study_dir=str(study_dir),
                       jobs=jobs)
