"""The result schema: what every consumer (CLI summary, manifest, results tools) reads.

Vocabulary (DESIGN.md): ``energy_j`` is raw counter energy; ``energy_adjusted_j`` subtracts
``baseline_power_w`` x duration; throughput counts output tokens. A quantity that was not
measured is ``None`` with a reason beside it, never 0.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

# 1.1: stats.* carry ``value`` (the ratio of totals) with a CI of that value; ``mean`` became
# ``cycle_mean`` (1.0 files still read); + ``quality`` (lm-eval scores, the evaluation's energy,
# quality_per_joule), additive
# 1.2: windows count generate calls: cycles[].calls (new) and cycles[].repeats as a float (workload
# passes, fractional where a window ends inside a pass); latency carries the latency pass's own
# calls, requests, duration, throughput and ``latency_throughput_ratio``; 1.0 and 1.1 files still read
SCHEMA_VERSION = "1.2"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stat(_Model):
    """A headline metric over the measured cycles (llem/measure/stats.py).

    ``value`` is the estimate: the ratio of totals over the cycles (total energy / total output
    tokens, total output tokens / total seconds, ...), the same number as the result's top-level
    point; ``ci95_low``/``ci95_high`` are the 95% CI *of that value* and contain it. ``cycle_mean``,
    ``std`` and ``cv`` describe the per-cycle values (their spread), not the estimate. Results
    written before schema 1.1 have no ``value``, a ``mean`` (read here as ``cycle_mean``) and a CI
    of that mean."""

    n: int
    value: Optional[float] = None
    ci95_low: Optional[float] = None
    ci95_high: Optional[float] = None
    cycle_mean: Optional[float] = Field(None, validation_alias=AliasChoices("cycle_mean", "mean"))
    std: Optional[float] = None
    cv: Optional[float] = None
    method: Optional[str] = None  # the estimator and how its CI was made (llem.measure.stats.describe_method)


class Percentiles(_Model):
    n: int = 0
    mean: Optional[float] = None
    p50: Optional[float] = None
    p90: Optional[float] = None
    p95: Optional[float] = None
    p99: Optional[float] = None


class DeviceEnergy(_Model):
    index: int
    uuid: Optional[str] = None
    name: Optional[str] = None
    energy_j: Optional[float] = None
    baseline_power_w: Optional[float] = None


class CycleResult(_Model):
    """One measured window. ``calls``: the generate calls it held (one prepared batch each; None in
    files before schema 1.2); ``repeats``: the workload passes they make (calls / calls per pass,
    fractional when the window ended inside a pass; whole passes before 1.2)."""

    index: int
    repeats: float
    start_s: float  # relative to the experiment start
    duration_s: float
    input_tokens: int
    output_tokens: int
    energy_j: Optional[float] = None
    energy_adjusted_j: Optional[float] = None
    cpu_energy_j: Optional[float] = None
    dram_energy_j: Optional[float] = None
    per_device: list[DeviceEnergy] = []
    energy_per_output_token_j: Optional[float] = None
    output_tokens_per_s: float
    tokens_per_joule: Optional[float] = None
    calls: Optional[int] = None


class EnergySummary(_Model):
    measured: bool
    not_measured_reason: Optional[str] = None
    meter: str
    source: Optional[str] = None
    estimated: bool = False
    #: "gpu" (the GPUs the job uses) or "host" (CPU + RAM, a CPU-only job's estimate)
    scope: Optional[str] = None
    energy_j: Optional[float] = None
    energy_adjusted_j: Optional[float] = None
    energy_adjusted_reason: Optional[str] = None  # why energy_adjusted_j is None, when it is
    baseline_power_w: Optional[float] = None
    energy_per_output_token_j: Optional[float] = None
    energy_adjusted_per_output_token_j: Optional[float] = None
    tokens_per_joule: Optional[float] = None
    cpu_energy_j: Optional[float] = None
    dram_energy_j: Optional[float] = None
    per_device: list[DeviceEnergy] = []
    load_energy_j: Optional[float] = None


class PhaseResult(_Model):
    duration_s: Optional[float] = None
    energy_j: Optional[float] = None
    energy_adjusted_j: Optional[float] = None
    tokens: Optional[int] = None


class Phases(_Model):
    method: str
    error: str
    prefill: PhaseResult = PhaseResult()
    decode: PhaseResult = PhaseResult()
    prefill_energy_per_prompt_j: Optional[float] = None
    decode_energy_per_output_token_j: Optional[float] = None
    # one standard error of the two above (window-to-window noise; the method's bias is in `error`)
    prefill_energy_per_prompt_se_j: Optional[float] = None
    decode_energy_per_output_token_se_j: Optional[float] = None
    energy_not_measured_reason: Optional[str] = None
    windows: dict[str, Any] = {}


class Latency(_Model):
    """Per-request latency from the latency pass (llem/measure/latency.py), outside every window.

    ``output_tokens_per_s`` is the pass's own throughput (its output tokens / the summed duration
    of its calls) and ``latency_throughput_ratio`` that divided by the measured windows'
    ``output_tokens_per_s``: near 1 when the timed pass decoded at the windows' speed, so that its
    TTFT/ITL/TPOT describe the measured workload. ``precision`` says on how many values the
    percentiles rest. The fields after ``e2e_latency_ms`` are None in files before schema 1.2."""

    method: str
    ttft_ms: Percentiles = Percentiles()
    itl_ms: Percentiles = Percentiles()
    itl_trimmed_ms: Percentiles = Percentiles()
    tpot_ms: Percentiles = Percentiles()
    e2e_latency_ms: Percentiles = Percentiles()
    calls: Optional[int] = None
    requests: Optional[int] = None
    output_tokens: Optional[int] = None
    duration_s: Optional[float] = None
    output_tokens_per_s: Optional[float] = None
    latency_throughput_ratio: Optional[float] = None
    precision: Optional[str] = None


# --- quality (llem/quality; docs/quality.md) ---------------------------------------------------
class QualityMetric(_Model):
    """One lm-eval metric of a task: ``name`` is lm-eval's ``metric,filter`` key."""

    name: str
    value: Optional[float] = None
    stderr: Optional[float] = None
    stderr_reason: Optional[str] = None  # why stderr is missing (lm-eval's "N/A")
    higher_is_better: Optional[bool] = None


class QualityEnergy(_Model):
    """The energy of one task's evaluation: the sum of its meter windows (one per lm-eval request
    type), raw and baseline-adjusted. Missing values carry their reason, never 0."""

    measured: bool
    not_measured_reason: Optional[str] = None
    meter: str
    estimated: bool = False
    windows: int = 0
    duration_s: float = 0.0
    energy_j: Optional[float] = None
    energy_adjusted_j: Optional[float] = None
    energy_adjusted_reason: Optional[str] = None
    baseline_power_w: Optional[float] = None
    #: edge uncertainty x windows / duration: the counter quantisation bound of the summed windows
    quantisation_bound: Optional[float] = None
    energy_per_sample_j: Optional[float] = None
    energy_adjusted_per_sample_j: Optional[float] = None
    #: tokens the engine generated for generation requests (None for loglikelihood-only tasks)
    generated_tokens: Optional[int] = None
    energy_per_generated_token_j: Optional[float] = None
    per_token_reason: Optional[str] = None  # why energy_per_generated_token_j is missing
    #: relative uncertainty of energy_j used in the quality_per_joule interval (llem/quality/stats.py)
    uncertainty: dict[str, Any] = {}
    per_window: list[dict[str, Any]] = []


class QualityTaskResult(_Model):
    task: str
    status: Literal["completed", "failed"] = "completed"
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    source: Optional[str] = None  # llem (shipped), include_path, lm-eval
    kind: str = "task"            # task or group
    output_type: Optional[str] = None
    version: Optional[Any] = None
    task_hash: Optional[str] = None  # lm-eval's hash of the samples' documents, prompts and targets
    num_fewshot: Optional[int] = None
    samples: int = 0               # evaluated (after limit)
    samples_total: Optional[int] = None  # in the task's split
    requests: dict[str, int] = {}
    chance_accuracy: Optional[float] = None  # multiple choice: mean of 1/choices
    primary_metric: Optional[str] = None
    metrics: list[QualityMetric] = []
    energy: Optional[QualityEnergy] = None
    quality_per_joule: Optional[float] = None
    quality_per_joule_ci95_low: Optional[float] = None
    quality_per_joule_ci95_high: Optional[float] = None
    quality_per_joule_method: Optional[str] = None
    quality_per_joule_reason: Optional[str] = None  # why it (or its interval) is missing
    #: the same on baseline-adjusted energy (point value only)
    quality_per_joule_adjusted: Optional[float] = None
    duration_s: Optional[float] = None  # wall time of the whole evaluation of this task
    samples_path: Optional[str] = None  # quality.log_samples: the samples file, relative to the job dir

    def primary(self) -> Optional[QualityMetric]:
        return next((m for m in self.metrics if m.name == self.primary_metric), None)


class QualityResult(_Model):
    status: Literal["completed", "partial", "failed"]
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    #: true when the model has random weights (quality.allow_random_weights): every score is meaningless
    meaningless: bool = False
    meaningless_reason: Optional[str] = None
    lm_eval_version: Optional[str] = None
    #: the object evaluated (class, id, and that it is the measured one) and how it was wrapped
    evaluated_object: dict[str, Any] = {}
    #: the exact lm-eval arguments (simple_evaluate keyword arguments, tasks as resolved)
    lm_eval_arguments: dict[str, Any] = {}
    decoding: dict[str, Any] = {}
    tasks: list[QualityTaskResult] = []
    #: the inference energy per output token of the same job, beside the scores
    energy_per_output_token_j: Optional[float] = None
    energy_per_output_token_j_ci95_low: Optional[float] = None
    energy_per_output_token_j_ci95_high: Optional[float] = None
    duration_s: Optional[float] = None
    notes: list[str] = []


class ExperimentResult(_Model):
    schema_version: str = SCHEMA_VERSION
    llem_version: str
    experiment_id: str
    config_hash: str
    status: Literal["completed", "failed"] = "completed"
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    started_at: str
    ended_at: str
    config: dict[str, Any]
    backend: str
    backend_version: Optional[str] = None
    model: str
    precision: str
    batch: int
    device: str
    # totals over all measured cycles
    input_tokens: int = 0
    output_tokens: int = 0
    duration_s: float = 0.0
    output_tokens_per_s: Optional[float] = None
    load_time_s: Optional[float] = None
    energy: EnergySummary
    cycles: list[CycleResult] = []
    stats: dict[str, Stat] = {}
    latency: Optional[Latency] = None
    phases: Optional[Phases] = None
    flops: Optional[dict[str, Any]] = None
    memory: Optional[dict[str, Any]] = None
    steady_state_window: Optional[list[float]] = None
    measurement_methodology: dict[str, Any] = {}
    environment: dict[str, Any] = {}
    warnings: list[str] = []
    timeseries_path: Optional[str] = None
    quality: Optional[QualityResult] = None
    extra: dict[str, Any] = Field(default_factory=dict)

    # --- persistence -------------------------------------------------------------------
    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        write_atomic(path, self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ExperimentResult":
        path = Path(path)
        if path.is_dir():
            path = path / "result.json"
        return cls.model_validate_json(path.read_text())


def write_atomic(path: str | Path, text: str) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file
    (the file's mode follows the umask: ``llem.fsio``)."""
    from llem.fsio import write_text_atomic

    write_text_atomic(path, text)


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str))
