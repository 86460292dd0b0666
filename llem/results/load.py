"""Find and read results on disk: a study directory, a job directory, or a ``result.json``.

Paths inside a manifest are resolved against the directory the manifest was *found* in, not
the ``study_dir`` recorded at write time: studies are often copied off a cluster, and the
recorded absolute path then points nowhere.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

from pydantic import ValidationError

from llem.errors import ConfigError
from llem.result import ExperimentResult
from llem.results.manifest import MANIFEST_NAME, JobEntry, StudyResult

RESULT_NAME = "result.json"
TIMESERIES_NAME = "timeseries.parquet"


@dataclass
class Entry:
    """One job: its manifest entry (studies only), its result (when one was written) and where."""

    job: Optional[JobEntry]
    result: Optional[ExperimentResult]
    job_dir: Optional[Path]
    # why a result that should exist could not be read (kept beside the row, never hidden)
    load_problem: Optional[str] = None

    @property
    def job_id(self) -> str:
        if self.job is not None:
            return self.job.job_id
        if self.result is not None:
            return self.result.experiment_id
        return self.job_dir.name if self.job_dir else "?"

    def timeseries_path(self) -> Optional[Path]:
        """The job's ``timeseries.parquet`` if it exists on disk."""
        candidates = []
        if self.result is not None and self.result.timeseries_path:
            p = Path(self.result.timeseries_path)
            candidates.append(p if p.is_absolute() else (self.job_dir or Path(".")) / p)
            if self.job_dir is not None:
                candidates.append(self.job_dir / p.name)
        if self.job_dir is not None:
            candidates.append(self.job_dir / TIMESERIES_NAME)
        for c in candidates:
            if c.is_file():
                return c
        return None


@dataclass
class LoadedResults:
    kind: Literal["study", "result", "directory"]
    path: Path                       # the directory everything is relative to
    study: Optional[StudyResult] = None
    entries: list[Entry] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.study is not None:
            return self.study.study_name
        return self.path.name

    def results(self) -> list[ExperimentResult]:
        return [e.result for e in self.entries if e.result is not None]


def load_result(path: str | Path) -> ExperimentResult:
    """Read one ``ExperimentResult`` from a ``result.json`` or the job directory holding it.

    Bad input raises ``ConfigError`` naming the path and what was expected, so the CLI can
    exit 2 with one line instead of a traceback.
    """
    p = Path(path)
    if p.is_dir():
        p = p / RESULT_NAME
    if not p.is_file():
        raise ConfigError(f"result: {str(p)!r} does not exist; expected a result.json or a job directory holding one",
                          field="result", value=str(p), allowed="result.json")
    try:
        return ExperimentResult.model_validate_json(p.read_text())
    except (ValidationError, ValueError) as err:
        first = _first_error(err)
        raise ConfigError(f"result: {str(p)!r} is not a valid llem result.json ({first})",
                          field="result", value=str(p), allowed="an llem ExperimentResult JSON") from None


def load_manifest(path: str | Path) -> StudyResult:
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    try:
        return StudyResult.model_validate_json(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"study: {str(p)!r} does not exist", field="study", value=str(p),
                          allowed=MANIFEST_NAME) from None
    except (ValidationError, ValueError) as err:
        from llem.results.manifest import PLAN_NAME

        hint = (f"; rebuild it with `llem run --resume {p.parent} --rebuild-manifest`"
                if (p.parent / PLAN_NAME).is_file() else "")
        raise ConfigError(f"study: {str(p)!r} is not a valid llem manifest.json ({_first_error(err)}){hint}",
                          field="study", value=str(p), allowed="an llem StudyResult JSON") from None


def load_path(path: str | Path, *, progress: Optional[Callable[[int, int, str], None]] = None) -> LoadedResults:
    """Load whatever ``path`` points at.

    - a directory with ``manifest.json`` (or the manifest itself): a study, one entry per planned job;
    - a directory with ``result.json`` (or the file itself): a single result;
    - a directory of job directories without a manifest (a study killed before writing one):
      every ``*/result.json`` below it.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"DIR: {str(p)!r} does not exist; expected a study directory (manifest.json), "
                          f"a job directory or a result.json", field="DIR", value=str(p),
                          allowed="study dir | job dir | result.json")
    if p.is_file():
        if p.name == MANIFEST_NAME:
            return _load_study(p.parent, progress)
        res = load_result(p)
        return LoadedResults("result", p.parent, None, [Entry(None, res, p.parent)])
    if (p / MANIFEST_NAME).is_file():
        return _load_study(p, progress)
    if (p / RESULT_NAME).is_file():
        return LoadedResults("result", p, None, [Entry(None, load_result(p), p)])
    found = sorted(p.glob(f"**/{RESULT_NAME}"))
    if not found:
        raise ConfigError(f"DIR: {str(p)!r} holds no {MANIFEST_NAME} and no {RESULT_NAME}; expected a study "
                          f"directory, a job directory or a result.json", field="DIR", value=str(p),
                          allowed="study dir | job dir | result.json")
    entries = []
    for i, f in enumerate(found):
        if progress:
            progress(i + 1, len(found), str(f.parent.relative_to(p)))
        try:
            entries.append(Entry(None, load_result(f), f.parent))
        except ConfigError as err:
            entries.append(Entry(None, None, f.parent, load_problem=str(err)))
    return LoadedResults("directory", p, None, entries)


def _load_study(study_dir: Path, progress, study: Optional[StudyResult] = None) -> LoadedResults:
    """Entries for every job of ``study`` (read from ``study_dir`` unless given), paths relative to it."""
    study = study if study is not None else load_manifest(study_dir)
    entries = []
    n = len(study.jobs)
    for i, job in enumerate(study.jobs):
        if progress:
            progress(i + 1, n, job.job_id)
        job_dir = study_dir / job.job_dir if job.job_dir else None
        rpath = study_dir / job.result_path if job.result_path else (job_dir / RESULT_NAME if job_dir else None)
        result, problem = None, None
        if rpath is not None and rpath.is_file():
            try:
                result = load_result(rpath)
            except ConfigError as err:
                problem = str(err)
            if job_dir is None:
                job_dir = rpath.parent
        elif job.status == "completed":
            # the manifest says it finished, so a missing file is worth saying out loud
            problem = f"manifest says completed but {job.result_path or RESULT_NAME} is missing"
        entries.append(Entry(job, result, job_dir, problem))
    return LoadedResults("study", study_dir, study, entries)


def _first_error(err: Exception) -> str:
    if isinstance(err, ValidationError):
        e = err.errors()[0]
        loc = ".".join(str(x) for x in e.get("loc", ()))
        return f"{loc}: {e.get('msg')}" if loc else str(e.get("msg"))
    if isinstance(err, json.JSONDecodeError):
        return f"invalid JSON at line {err.lineno}"
    return str(err).splitlines()[0] if str(err) else type(err).__name__
