"""``StudyResult``: the study manifest (``manifest.json`` in the sweep directory).

It lists every planned job of the grid (not only the ones that ran), with its overrides,
``config_hash``, status and result path, and an aggregate summary. It is always rebuildable
from the job directories on disk (``llem.study.manifest.rebuild``), so it survives a killed study.

The schema lives here, with the code that reads it, so that reading a study needs nothing of
the code that plans and runs one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict

from llem.result import ExperimentResult, write_atomic

MANIFEST_NAME = "manifest.json"
# written once at study start: what a rebuild of a lost or corrupt manifest needs (llem.study.manifest)
PLAN_NAME = "plan.json"
JobStatus = Literal["pending", "running", "completed", "failed", "lost"]


class JobEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str                      # stable within the study, e.g. "0003" or "0003_c1" for grid cycle 1
    index: int                       # position in the execution order
    grid_index: int                  # position in the grid (before ordering/cycles)
    cycle: int = 0                   # grid cycle (0-based)
    overrides: list[str]             # what this job ran with
    # the grid's overrides of another backend's own section, left out of this job
    # (`vllm.enforce_eager=true` for the PyTorch jobs of a `backend=vllm,pytorch` grid)
    omitted_overrides: list[str] = []
    config_hash: str
    backend: str
    model: str
    precision: str
    batch: int
    status: JobStatus = "pending"
    job_dir: Optional[str] = None    # relative to the study directory
    result_path: Optional[str] = None
    log_path: Optional[str] = None
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    started_at: Optional[str] = None
    ended_at: Optional[str] = None
    # copied from result.json for quick reading (None when not measured)
    energy_per_output_token_j: Optional[float] = None
    energy_per_output_token_ci95: Optional[list[Optional[float]]] = None
    energy_adjusted_per_output_token_j: Optional[float] = None
    output_tokens_per_s: Optional[float] = None
    tokens_per_joule: Optional[float] = None
    energy_measured: Optional[bool] = None
    # added by the study runner (optional, so older manifests still load)
    gpu: Optional[str] = None        # CUDA_VISIBLE_DEVICES the launcher gave the job, if it chose one
    energy_estimated: Optional[bool] = None  # a model-based meter (CodeCarbon), not a hardware counter
    warnings: int = 0                # how many warnings result.json carries
    duration_s: Optional[float] = None


class JsonFile:
    """A record kept as one JSON file (``FILE_NAME``) in a study directory, written atomically:
    the manifest, the plan, a search's record."""

    FILE_NAME: ClassVar[str]

    def save(self, study_dir: str | Path) -> Path:
        path = Path(study_dir) / self.FILE_NAME
        write_atomic(path, self.model_dump_json(indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path):
        """From the file, or from a study directory holding it."""
        path = Path(path)
        if path.is_dir():
            path = path / cls.FILE_NAME
        return cls.model_validate_json(path.read_text())


class StudyResult(JsonFile, BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: str = "1.0"
    study_name: str
    study_design_hash: str
    llem_version: str
    created_at: str
    updated_at: str
    finished_at: Optional[str] = None
    study_dir: str
    launcher: Optional[str] = None
    execution: dict[str, Any] = {}   # order, grid cycles, cooldown_s, shuffle seed
    sweep_overrides: list[str] = []
    jobs: list[JobEntry] = []
    summary: dict[str, Any] = {}     # counts per status, totals
    # what `llem run --resume` needs to recompose the same grid
    command_args: list[str] = []     # the original `llem run` arguments (llem flags removed)
    config_dir: Optional[str] = None
    config_name: str = "config"
    owner: dict[str, Any] = {}       # host and pid of the process running the study
    # a search (hydra/sweeper=optuna) instead of a grid: what it optimises (llem.study.search.SearchSpec);
    # its trials are the jobs above, its record search.json beside this file
    search: Optional[dict[str, Any]] = None

    FILE_NAME: ClassVar[str] = MANIFEST_NAME

    def save(self, study_dir: str | Path | None = None) -> Path:
        return super().save(study_dir or self.study_dir)

    def results(self) -> list[ExperimentResult]:
        """The ExperimentResults of completed (and failed) jobs that wrote a result.json."""
        out = []
        base = Path(self.study_dir)
        for j in self.jobs:
            if j.result_path and (base / j.result_path).is_file():
                out.append(ExperimentResult.load(base / j.result_path))
        return out

    def to_dataframe(self, base_dir: str | Path | None = None):
        """One row per job (config + flattened metrics with CIs); see ``llem.results.table``.

        ``base_dir`` is the directory the job paths are relative to (defaults to ``study_dir``).
        """
        from llem.results.table import study_to_dataframe

        return study_to_dataframe(self, base_dir)
