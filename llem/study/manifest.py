"""Keeping ``manifest.json`` (``llem.results.manifest.StudyResult``) true to the job directories.

Job entries are refreshed from each job's ``result.json``, the whole manifest can be rebuilt
from the job directories on disk (``rebuild``), and a file lock guards its read-modify-write.

``plan.json`` beside it is written once when the study starts (and again only if a resume
replans it): the grid, the command arguments and the design hash. It is what a rebuild needs
when ``manifest.json`` itself is lost or corrupt (``llem run --resume DIR --rebuild-manifest``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict

from llem.result import ExperimentResult
from llem.results.manifest import MANIFEST_NAME, PLAN_NAME, JobEntry, JsonFile, StudyResult


class PlanEntry(BaseModel):
    """One planned job: what it is, not how it went."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    index: int
    grid_index: int
    cycle: int = 0
    overrides: list[str]
    config_hash: str
    backend: str
    model: str
    precision: str
    batch: int
    job_dir: Optional[str] = None
    log_path: Optional[str] = None
    omitted_overrides: list[str] = []


_PLAN_ENTRY_KEYS = tuple(PlanEntry.model_fields)


class StudyPlanRecord(JsonFile, BaseModel):
    """``plan.json``: everything a rebuild of ``manifest.json`` needs, and nothing that changes
    while the study runs (statuses and numbers come from the job directories)."""

    model_config = ConfigDict(extra="forbid")
    FILE_NAME: ClassVar[str] = PLAN_NAME

    schema_version: str = "1.0"
    study_name: str
    study_design_hash: str
    llem_version: str
    created_at: str
    study_dir: str
    launcher: Optional[str] = None
    execution: dict[str, Any] = {}
    sweep_overrides: list[str] = []
    command_args: list[str] = []
    config_dir: Optional[str] = None
    config_name: str = "config"
    jobs: list[PlanEntry] = []
    # a search: its spec (the jobs above are its trials so far; plan.json is rewritten as they are asked)
    search: Optional[dict[str, Any]] = None

    @classmethod
    def from_manifest(cls, m: StudyResult) -> "StudyPlanRecord":
        return cls(study_name=m.study_name, study_design_hash=m.study_design_hash, llem_version=m.llem_version,
                   created_at=m.created_at, study_dir=m.study_dir, launcher=m.launcher, execution=dict(m.execution),
                   sweep_overrides=list(m.sweep_overrides), command_args=list(m.command_args),
                   config_dir=m.config_dir, config_name=m.config_name,
                   jobs=[PlanEntry(**{k: getattr(j, k) for k in _PLAN_ENTRY_KEYS}) for j in m.jobs],
                   search=m.search)

    def to_manifest(self, study_dir: str | Path) -> StudyResult:
        """A manifest with every job pending, as it was before the first job ran."""
        jobs = [JobEntry(**j.model_dump(), status="pending") for j in self.jobs]
        return StudyResult(study_name=self.study_name, study_design_hash=self.study_design_hash,
                           llem_version=self.llem_version, created_at=self.created_at, updated_at=_now(),
                           study_dir=str(study_dir), launcher=self.launcher, execution=dict(self.execution),
                           sweep_overrides=list(self.sweep_overrides), jobs=jobs, summary=summarize(jobs),
                           command_args=list(self.command_args), config_dir=self.config_dir,
                           config_name=self.config_name, search=self.search)



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


def _unreadable(err: BaseException) -> str:
    """Why a JSON file could not be loaded, in a few words (pydantic's first error)."""
    errors = getattr(err, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            loc = ".".join(str(x) for x in first.get("loc", ()))
            return (first["msg"] + (f" at {loc}" if loc else ""))[:200]
        except Exception:
            pass
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:200]


def rebuild(study_dir: str | Path, *, save: bool = True, from_plan: bool = False) -> StudyResult:
    """Rebuild manifest.json from the job directories.

    The planned jobs come from the existing manifest; when it is missing or cannot be read
    (or ``from_plan``), from ``plan.json``, written when the study started. Their statuses and
    numbers come from each job's result.json. A corrupt manifest is kept beside the new one as
    ``manifest.json.corrupt-<time>``, never deleted. Without either file, the job directories
    themselves (``.hydra/overrides.yaml`` + ``result.json``) are the plan; such a manifest
    lacks the command arguments, so it cannot be resumed.

    Raises ``ConfigError`` when the manifest is unreadable and there is no plan.json.
    """
    from llem.errors import ConfigError
    from llem.study.lock import held_elsewhere

    study_dir = Path(study_dir).resolve()
    mpath = study_dir / MANIFEST_NAME
    ppath = study_dir / PLAN_NAME
    with lock_for(study_dir):
        m, broken = None, None
        if mpath.is_file():
            try:
                m = StudyResult.load(mpath)
            except Exception as err:  # truncated, garbage, or an unknown schema
                broken = err
        # a study process holding the lock is running it: its running job is not lost
        alive = held_elsewhere(study_dir) or (m is not None and _owner_alive(m.owner))
        if m is not None and not from_plan:
            m.jobs = [refresh_entry(study_dir, j, running_ok=alive) for j in m.jobs]
        elif ppath.is_file():
            try:
                plan = StudyPlanRecord.load(ppath)
            except Exception as err:
                raise ConfigError(f"{study_dir}: {PLAN_NAME} cannot be read ({_unreadable(err)}), so "
                                  f"{MANIFEST_NAME} cannot be rebuilt from it", field="study_dir",
                                  value=str(study_dir), allowed=f"a study directory with a readable {PLAN_NAME}") from None
            m = plan.to_manifest(study_dir)
            for j in m.jobs:
                if alive and j.job_dir and (study_dir / j.job_dir).is_dir():
                    j.status = "running"  # refresh_entry keeps it unless its result.json is there
            m.jobs = [refresh_entry(study_dir, j, running_ok=alive) for j in m.jobs]
        elif broken is not None or from_plan:
            why = (f"{MANIFEST_NAME} cannot be read ({_unreadable(broken)})" if broken is not None
                   else f"{MANIFEST_NAME} can only be rebuilt from {PLAN_NAME}")
            raise ConfigError(f"{study_dir}: {why} and there is no {PLAN_NAME} to rebuild it from (the study was "
                              "started by an older llem); its results stay readable with "
                              f"`llem results show {study_dir}/<job>`", field="study_dir",
                              value=str(study_dir), allowed=f"a study directory with {PLAN_NAME}")
        else:
            m = _from_job_dirs(study_dir)
        m.study_dir = str(study_dir)
        m.summary = summarize(m.jobs)
        m.updated_at = _now()
        if save:
            if mpath.is_file() and (broken is not None or from_plan):
                # keep what was there: a person may still want to read it
                stamp = _now().replace(":", "").replace("+0000", "Z")
                kind = "corrupt" if broken is not None else "old"
                mpath.replace(study_dir / f"{MANIFEST_NAME}.{kind}-{stamp}")
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
