"""The API's response models (what ``/openapi.json`` publishes). Request bodies are llem's own
schemas (``llem.serve.upload``: ``StudyResult`` and ``ExperimentResult`` inside an upload)."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel


class Problem(BaseModel):
    detail: str


class Info(BaseModel):
    name: str
    llem_version: str
    result_schema_version: str
    manifest_schema_version: str
    leaderboard_schema_version: str
    upload_format: str
    upload_format_version: str
    max_upload_bytes: int
    upload_rate_per_min: int
    database: str


class JobSummary(BaseModel):
    id: int
    study_id: int
    study_name: str
    job_id: str
    status: str
    backend: Optional[str] = None
    model: Optional[str] = None
    precision: Optional[str] = None
    batch: Optional[int] = None
    device: Optional[str] = None
    gpu_name: Optional[str] = None
    started_at: Optional[str] = None
    ended_at: Optional[str] = None
    energy_measured: Optional[bool] = None
    energy_estimated: Optional[bool] = None
    synthetic: Optional[bool] = None
    energy_per_output_token_j: Optional[float] = None
    energy_per_output_token_j_ci95_low: Optional[float] = None
    energy_per_output_token_j_ci95_high: Optional[float] = None
    energy_adjusted_per_output_token_j: Optional[float] = None
    tokens_per_joule: Optional[float] = None
    output_tokens_per_s: Optional[float] = None
    energy_j: Optional[float] = None
    llem_version: Optional[str] = None
    config_hash: Optional[str] = None


class JobPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[JobSummary]


class StudySummary(BaseModel):
    id: int
    name: str
    slug: str
    kind: str
    study_design_hash: Optional[str] = None
    created_at: Optional[str] = None
    finished_at: Optional[str] = None
    llem_version: Optional[str] = None
    owner: str
    uploaded_at: str
    updated_at: str
    verified: bool
    n_jobs: int
    n_results: int
    leaderboard_url: str


class StudyPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[StudySummary]


class UploadRecord(BaseModel):
    """Provenance of one push: who, when, from which llem; ``verified`` is false for every upload."""

    id: int
    user: str
    created_at: str
    client_llem_version: Optional[str] = None
    client_python: Optional[str] = None
    client_platform: Optional[str] = None
    body_bytes: int
    body_sha256: str
    results_added: int
    results_replaced: int
    results_unchanged: int
    #: distinct llem versions, hosts, GPUs, drivers, OS, Python, backends the uploaded results name
    environment: dict[str, list[str]]
    verified: bool


class StudyDetail(StudySummary):
    manifest: Optional[dict[str, Any]] = None
    jobs: list[JobSummary]
    uploads: list[UploadRecord]


class JobDetail(BaseModel):
    job: JobSummary
    study: StudySummary
    result: dict[str, Any]
    timeseries: Optional[dict[str, Any]] = None


class CompareValue(BaseModel):
    job: int
    value: Optional[float] = None
    ci95_low: Optional[float] = None
    ci95_high: Optional[float] = None
    missing_reason: Optional[str] = None


class CompareAgainst(BaseModel):
    job: int
    diff: Optional[float] = None
    rel_diff_pct: Optional[float] = None
    ci_overlap: Optional[bool] = None


class CompareMetric(BaseModel):
    metric: str
    unit: Optional[str] = None
    higher_is_better: Optional[bool] = None
    values: list[CompareValue]
    against_first: list[CompareAgainst]


class Comparison(BaseModel):
    jobs: list[JobSummary]
    metrics: list[CompareMetric]


class UploadOutcome(BaseModel):
    created: bool
    message: str
    study_id: int
    upload_id: Optional[int] = None
    results_added: int
    results_replaced: int
    results_unchanged: int
    owner: str
    study_url: str
    leaderboard_url: str
    verified: bool = False


class Deleted(BaseModel):
    deleted: bool
    study_id: int
    jobs_deleted: int


class LiveCreated(BaseModel):
    id: int
    url: str


class LiveAccepted(BaseModel):
    accepted: bool


class LiveStudyState(BaseModel):
    id: int
    name: str
    owner: str
    status: str
    study_design_hash: Optional[str] = None
    created_at: Optional[str] = None
    started_at: str
    updated_at: str
    counts: dict[str, int]
    jobs: list[dict[str, Any]]
    power_unavailable_reason: Optional[str] = None
    power: dict[str, dict[str, list[list[float]]]] = {}


class LiveList(BaseModel):
    studies: list[LiveStudyState]
