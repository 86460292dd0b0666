"""The typed experiment configuration.

Hydra composes YAML into a DictConfig; this module turns it into a validated
``ExperimentConfig``. Every model forbids unknown keys so that a misspelt option fails
loudly instead of being silently ignored.
"""
from __future__ import annotations

import typing
from functools import lru_cache
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from llem.config.quality_options import QualityConfig

BACKENDS = ("pytorch", "vllm", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int4", "fp8")
METERS = ("auto", "nvml", "nvml_power", "zeus", "codecarbon", "none")

# Which precisions each backend can run at all. Device-specific limits (int8/int4 need a
# GPU quantisation library, fp8 needs Hopper) are checked by the backend before loading.
BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {
    "pytorch": ("fp32", "fp16", "bf16", "int8", "int4"),
    "vllm": ("fp32", "fp16", "bf16", "fp8", "int8", "int4"),
    "tensorrt": ("fp16", "bf16", "fp8", "int8", "int4"),
}


def _number_kind(annotation: Any) -> Optional[tuple[str, bool]]:
    """("an integer" | "a number", accepts null) for a purely numeric field, else None."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) is Union else (annotation,)
    nullable = type(None) in args
    kinds = {a for a in args if a is not type(None)}
    if kinds == {int}:
        return "an integer", nullable
    if kinds and kinds <= {int, float}:
        return "a number", nullable
    return None


@lru_cache(maxsize=None)
def describe_number(model: type[BaseModel], name: str) -> Optional[str]:
    """What a numeric field accepts, from its type and bounds: "an integer >= 1", ...

    Cached: the boolean check below asks it for every boolean field of every job planned."""
    f = model.model_fields[name]
    kind = _number_kind(f.annotation)
    if kind is None:
        return None
    bounds = []
    for m in f.metadata:
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if getattr(m, attr, None) is not None:
                bounds.append(f"{op} {getattr(m, attr)}")
    text = " ".join([kind[0], " and ".join(bounds)]).strip()
    return text + (", or null" if kind[1] else "")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads True as 1 (and 1.0): `batch=true` would run batch 1
        # without a word. A boolean is never a number here.
        if isinstance(value, bool) and info.field_name:
            allowed = describe_number(cls, info.field_name)
            if allowed is not None:
                raise PydanticCustomError("bool_as_number", "a boolean is not a number; allowed: {allowed}",
                                          {"allowed": allowed})
        return value


#: names of weight files transformers, vLLM and TensorRT-LLM load from a model directory
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack", "*.safetensors.index.json",
                   "*.bin.index.json")
GGUF_MAGIC = b"GGUF"


def check_model_dir(path: str) -> None:
    """A model directory must hold a config.json and weights: checked before anything loads,
    so an empty or wrong folder is refused in one line instead of failing after the job started."""
    from pathlib import Path

    d = Path(path).expanduser()
    if not d.is_dir():
        raise ValueError(f"model.path={path!r} does not exist or is not a directory")
    if not (d / "config.json").is_file():
        raise ValueError(f"model.path={path!r} has no config.json; allowed: a model directory with config.json "
                         "and weights (save_pretrained's layout)")
    if not any(next(d.glob(p), None) for p in WEIGHT_PATTERNS):
        raise ValueError(f"model.path={path!r} has config.json but no weights; allowed: a model directory with "
                         "weight files (*.safetensors, *.bin, *.pt)")


def check_gguf_header(path) -> None:
    """A GGUF file begins with the 4 bytes ``GGUF``; anything else would fail only at load."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as err:
        raise ValueError(f"model.path={str(path)!r} cannot be read ({err.strerror}); allowed: a readable GGUF file") from None
    if head != GGUF_MAGIC:
        raise ValueError(f"model.path={str(path)!r} is not a GGUF file (it begins with {head!r}, not b'GGUF'); "
                         "allowed: a GGUF model file")


class ModelConfig(_Strict):
    """Where the model comes from. ``builtin``/``no_weights``: a shipped architecture with seeded
    random weights (no download); ``local``: a model directory; ``gguf``: a GGUF file that
    transformers dequantizes; ``hub``: a Hugging Face hub id (needs the network)."""

    source: Literal["builtin", "no_weights", "local", "gguf", "hub"]
    name: str
    architecture: Optional[str] = None
    path: Optional[str] = None
    gguf_file: Optional[str] = None
    revision: Optional[str] = None
    tokenizer: Optional[str] = None

    @model_validator(mode="after")
    def _check_source(self) -> "ModelConfig":
        from pathlib import Path

        if self.source in ("builtin", "no_weights"):
            from llem.models.architectures import available_architectures

            archs = available_architectures()
            if self.architecture not in archs:
                raise ValueError(
                    f"model.architecture={self.architecture!r} is not shipped; allowed: {', '.join(archs)}"
                )
        if self.source in ("local", "gguf", "hub") and not self.path:
            raise ValueError(f"model.path is required for model.source={self.source}")
        if self.source == "local":
            check_model_dir(self.path)
        if self.source == "gguf":
            p = Path(self.path).expanduser()
            target = p / self.gguf_file if self.gguf_file else p
            if not target.is_file():
                raise ValueError(f"model.path={str(target)!r} is not an existing GGUF file")
            check_gguf_header(target)
        if self.source == "hub":
            from llem.models.offline import is_offline, offline_reason

            # checked here, before anything loads, so an offline run never reaches the network
            if is_offline() and not Path(self.path).expanduser().is_dir():
                raise ValueError(
                    f"model.path={self.path!r} is a Hugging Face hub id but offline mode is on "
                    f"({offline_reason()}); allowed offline: model=local, model=gguf, model=tiny or a no_weights model"
                )
        return self


class DatasetConfig(_Strict):
    """Prompts. Every prompt is exactly ``input_len`` tokens: longer texts are truncated,
    shorter ones repeated until they reach it (fixed input length keeps runs comparable)."""

    kind: Literal["synthetic", "builtin", "jsonl", "hf"]
    name: str
    path: Optional[str] = None
    subset: Optional[str] = None  # HF dataset configuration name (``load_dataset(path, subset)``)
    split: Optional[str] = None
    text_field: str = "text"
    num_prompts: PositiveInt = 8
    input_len: PositiveInt = 32
    order: Literal["sequential", "shuffled"] = "sequential"
    seed: int = 0

    @model_validator(mode="after")
    def _check_path(self) -> "DatasetConfig":
        if self.kind in ("jsonl", "hf") and not self.path:
            raise ValueError(f"dataset.path is required for dataset.kind={self.kind}")
        if self.kind == "jsonl":
            from llem.datasets import check_jsonl

            check_jsonl(self.path, self.text_field)
        if self.kind == "hf":
            from pathlib import Path

            from llem.models.offline import is_offline, offline_reason

            if is_offline() and not Path(self.path).expanduser().exists():
                raise ValueError(
                    f"dataset.path={self.path!r} is a Hugging Face dataset name but offline mode is on "
                    f"({offline_reason()}); allowed offline: dataset=synthetic, dataset=builtin, dataset=jsonl"
                )
        return self


class BaselineConfig(_Strict):
    enabled: bool = True
    duration_s: float = Field(5.0, gt=0)
    cache_ttl_s: float = Field(3600, ge=0)
    cache_dir: Optional[str] = None
    # Wait (up to this long) for GPU power to stop falling before the idle window: a GPU that
    # just worked holds high clocks for seconds and would inflate the baseline.
    settle_max_s: float = Field(30.0, ge=0)


class EnergyConfig(_Strict):
    meter: Literal["auto", "nvml", "nvml_power", "zeus", "codecarbon", "none"] = "auto"
    sample_interval_s: Optional[float] = Field(0.1, gt=0)
    # thread: a thread in the job's process; process: a child process, which cannot compete
    # with the workload's Python thread for the interpreter lock
    sampler: Literal["thread", "process"] = "thread"
    baseline: BaselineConfig = BaselineConfig()
    country_iso_code: str = "USA"


class MeasurementConfig(_Strict):
    # Warm-up and windows count generate calls of the workload (one call = one prepared batch),
    # never whole passes over num_prompts (docs/measurement.md)
    warmup_runs: int = Field(2, ge=0)             # warm-up generate calls (at least)
    warmup_cv_target: Optional[float] = Field(None, gt=0)
    warmup_max_runs: PositiveInt = 20             # calls
    warmup_window: int = Field(3, ge=2)           # calls whose latency CV is judged
    # seconds of calls after the first one that warm-up lasts at least (0: count only)
    warmup_min_s: float = Field(2.0, ge=0)
    cycles: PositiveInt = 5
    # every measured window lasts at least this (s); with a counter the quantisation target sets
    # the window when it asks for more (edge_uncertainty_s / quantisation_target: 20 s on an H100)
    min_window_s: float = Field(2.0, ge=0)
    quantisation_target: float = Field(0.005, gt=0, lt=1)
    # a window takes at most this many workload passes' worth of calls (x calls per pass)
    max_repeats_per_cycle: PositiveInt = 1000
    # 95% CI of each headline ratio of totals over cycles: Student's t on the log scale (right for
    # a few cycles) or a seeded bootstrap of the ratio (llem/measure/stats.py)
    ci_method: Literal["t", "bootstrap"] = "t"
    bootstrap_samples: PositiveInt = 2000
    cv_warn_threshold: float = Field(0.05, gt=0)
    # judged on the windows' average temperatures, not on single samples
    temperature_drift_warn_c: float = Field(5.0, gt=0)
    # prefill/decode split: prefill-only windows (see llem/measure/phases.py)
    phase_split: bool = True
    phase_cycles: PositiveInt = 2
    # the prefill windows' own, looser quantisation target: with a counter each lasts
    # edge_uncertainty_s / phase_quantisation_target (4 s on an H100)
    phase_quantisation_target: float = Field(0.025, gt=0, lt=1)
    # the latency pass and the phase split together cost about this share of the measured windows'
    # time: the phase windows are sized by their target, the latency pass takes what is left
    # (at least one generate call, at most one pass)
    outside_windows_share: float = Field(0.10, gt=0, le=1)
    # warn when the latency pass's throughput differs from the windows' by more than this
    latency_throughput_tolerance: float = Field(0.05, gt=0)
    # after warm-up: one full garbage collection, then the surviving heap frozen, so that no
    # collection inside a window walks the whole heap (llem/measure/gcfreeze.py)
    gc_freeze: bool = True


class PyTorchConfig(_Strict):
    """The ``pytorch:`` section. Loading fields reach ``from_pretrained``/``from_config``,
    decoding fields reach ``model.generate``; ``extra_*_kwargs`` pass anything untyped through.
    Output length is not here: ``output_len`` fixes it for every backend."""

    # --- loading ------------------------------------------------------------------------------
    attn_implementation: Optional[str] = None
    device_map: Optional[Union[str, dict[str, Any]]] = None
    max_memory: Optional[dict[Union[int, str], Any]] = None
    low_cpu_mem_usage: bool = True
    trust_remote_code: bool = False
    # int8/int4 library: auto picks bitsandbytes, then torchao
    quantization: Literal["auto", "bitsandbytes", "torchao"] = "auto"
    # tensor parallelism: tp_plan=auto shards over tp_size processes (one per GPU)
    tp_plan: Optional[Literal["auto"]] = None
    tp_size: Optional[PositiveInt] = None
    torch_compile: bool = False
    torch_compile_mode: Optional[Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]] = None
    torch_compile_backend: Optional[str] = None
    # --- KV cache -----------------------------------------------------------------------------
    cache_implementation: Optional[str] = None  # null: dynamic; static, offloaded, offloaded_static, quantized, ...
    use_cache: bool = True
    # static cache only: one cache object for the job, reset before each call (transformers alone
    # builds a new one per call, and compiled decoding re-records CUDA graphs for its new addresses)
    reuse_static_cache: bool = True
    # --- decoding -----------------------------------------------------------------------------
    do_sample: bool = False
    temperature: float = Field(1.0, ge=0)
    top_k: Optional[int] = Field(None, ge=0)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    min_p: Optional[float] = Field(None, ge=0, le=1)
    typical_p: Optional[float] = Field(None, gt=0, le=1)
    epsilon_cutoff: Optional[float] = Field(None, ge=0, lt=1)
    eta_cutoff: Optional[float] = Field(None, ge=0, lt=1)
    repetition_penalty: Optional[float] = Field(None, gt=0)
    num_beams: PositiveInt = 1
    length_penalty: Optional[float] = None
    early_stopping: Optional[Union[bool, Literal["never"]]] = None
    prompt_lookup_num_tokens: Optional[PositiveInt] = None
    # --- passthrough --------------------------------------------------------------------------
    extra_load_kwargs: dict[str, Any] = {}
    extra_generate_kwargs: dict[str, Any] = {}

    @model_validator(mode="after")
    def _check(self) -> "PyTorchConfig":
        maps = ("auto", "balanced", "balanced_low_0", "sequential")
        if isinstance(self.device_map, str) and self.device_map not in maps and not self.device_map.startswith(("cuda", "cpu")):
            raise ValueError(f"pytorch.device_map={self.device_map!r} is not allowed; allowed: {', '.join(maps)}, "
                             "a device (cuda:0, cpu) or a dict of module -> device")
        if self.tp_plan and self.device_map is not None:
            raise ValueError(f"pytorch.tp_plan={self.tp_plan!r} and pytorch.device_map={self.device_map!r} exclude each "
                             "other; allowed: one of them")
        if self.tp_size and not self.tp_plan:
            raise ValueError(f"pytorch.tp_size={self.tp_size} needs pytorch.tp_plan=auto")
        from llem.config.pytorch_options import check_passthrough

        check_passthrough(self)
        return self


class VLLMConfig(_Strict):
    """vLLM engine and sampling settings. ``None`` means vLLM's own default (not passed on).
    Anything else vLLM accepts goes through ``extra_engine_args`` (EngineArgs fields) and
    ``extra_sampling_params`` (SamplingParams fields), checked against vLLM before loading."""

    # static: one generate() call per batch of `batch` prompts; continuous: all prompts of a pass in
    # one call, vLLM schedules up to max_num_seqs at once. max_num_seqs null means `batch`.
    batching: Literal["static", "continuous"] = "static"
    max_num_seqs: Optional[PositiveInt] = None
    tensor_parallel_size: PositiveInt = 1
    pipeline_parallel_size: Optional[PositiveInt] = None
    quantization: Optional[str] = None
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    enforce_eager: bool = False
    max_model_len: Optional[PositiveInt] = None
    kv_cache_dtype: str = "auto"
    # Off by default although vLLM turns it on: the workload repeats the same prompts, and cached
    # prefixes would skip prefill on every repeat, measuring a different workload.
    enable_prefix_caching: bool = False
    block_size: Optional[PositiveInt] = None
    max_num_batched_tokens: Optional[PositiveInt] = None
    enable_chunked_prefill: Optional[bool] = None
    cpu_offload_gb: Optional[float] = Field(None, ge=0)
    disable_log_stats: Optional[bool] = None
    async_scheduling: Optional[bool] = None
    distributed_executor_backend: Optional[str] = None
    trust_remote_code: Optional[bool] = None
    revision: Optional[str] = None
    tokenizer_revision: Optional[str] = None
    # Sampling. temperature 0 (greedy) matches the PyTorch backend's do_sample=false default.
    temperature: Optional[float] = Field(0.0, ge=0)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    top_k: Optional[int] = None
    min_p: Optional[float] = Field(None, ge=0, le=1)
    repetition_penalty: Optional[float] = Field(None, gt=0)
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    n: Optional[PositiveInt] = None
    extra_engine_args: dict[str, Any] = {}
    extra_sampling_params: dict[str, Any] = {}


class TensorRTConfig(_Strict):
    tensor_parallel_size: PositiveInt = 1
    max_batch_size: Optional[PositiveInt] = None
    max_num_tokens: Optional[PositiveInt] = None
    kv_cache_free_gpu_memory_fraction: float = Field(0.9, gt=0, le=1)
    # off: every measured cycle repeats the same prompts, and reused KV blocks would skip their prefill
    kv_cache_enable_block_reuse: bool = False
    quantization: Optional[str] = None
    extra_llm_args: dict[str, Any] = {}
    extra_sampling_params: dict[str, Any] = {}


class RunnerConfig(_Strict):
    """Where each backend's jobs run: ``local`` (this Python), ``venv:<path>``,
    ``container`` or ``auto`` (local if importable, else the project's default venv)."""

    pytorch: str = "local"
    vllm: str = "auto"
    tensorrt: str = "auto"

    @model_validator(mode="after")
    def _check(self) -> "RunnerConfig":
        for b in BACKENDS:
            v = getattr(self, b)
            if not (v in ("local", "auto", "container") or v.startswith("venv:")):
                raise ValueError(
                    f"runner.{b}={v!r} is not allowed; allowed: local, auto, container, venv:<path>"
                )
        return self


class ExperimentConfig(_Strict):
    """One measured experiment: everything that affects the number, and nothing else."""

    backend: Literal["pytorch", "vllm", "tensorrt"] = "pytorch"
    model: ModelConfig = ModelConfig(source="builtin", name="tiny-llama", architecture="tiny", tokenizer="builtin")
    precision: Literal["fp32", "fp16", "bf16", "int8", "int4", "fp8"] = "fp32"
    batch: PositiveInt = 1
    output_len: PositiveInt = 32
    seed: int = 0
    device: str = "auto"
    dataset: DatasetConfig = DatasetConfig(kind="synthetic", name="synthetic")
    energy: EnergyConfig = EnergyConfig()
    measurement: MeasurementConfig = MeasurementConfig()
    runner: RunnerConfig = RunnerConfig()
    pytorch: Optional[PyTorchConfig] = None
    vllm: Optional[VLLMConfig] = None
    tensorrt: Optional[TensorRTConfig] = None
    #: lm-eval on the measured engine after the measured cycles (llem/quality, docs/quality.md)
    quality: QualityConfig = QualityConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> "ExperimentConfig":
        if self.precision not in BACKEND_PRECISIONS[self.backend]:
            raise ValueError(
                f"precision={self.precision!r} is not supported by backend={self.backend}; "
                f"allowed: {', '.join(BACKEND_PRECISIONS[self.backend])}"
            )
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device={self.device!r} is not allowed; allowed: auto, cpu, cuda, cuda:<index>")
        for b in BACKENDS:
            section = getattr(self, b)
            if b != self.backend and section is not None:
                raise ValueError(f"a `{b}:` section was given but backend={self.backend}; remove it or set backend={b}")
        if getattr(self, self.backend) is None:
            # A library user may omit the section: the defaults apply.
            default = {"pytorch": PyTorchConfig, "vllm": VLLMConfig, "tensorrt": TensorRTConfig}[self.backend]()
            object.__setattr__(self, self.backend, default)
        if self.backend == "pytorch":
            from llem.config.pytorch_options import cross_check  # pure checks, no torch import

            cross_check(self)
        if self.backend == "vllm":
            from llem.config.vllm_options import check_config  # pure checks, no vLLM import

            check_config(self)
        if self.backend == "tensorrt":
            from llem.config.tensorrt_options import check_config as trt_check  # pure checks, no TensorRT-LLM import

            trt_check(self)
        from llem.config.quality_options import cross_check as quality_check

        quality_check(self)
        return self

    @property
    def backend_section(self) -> BaseModel:
        return getattr(self, self.backend)

    def semantic_keys(self) -> list[str]:
        """The top-level fields that affect the measurement (runner placement excluded: where a
        job runs does not change what is measured)."""
        # quality off: the hash of every config written before quality existed stays the same
        return [k for k in type(self).model_fields if k != "runner" and (k != "quality" or self.quality.enabled)]

    def semantic_dict(self) -> dict[str, Any]:
        """The fields that affect the measurement, for hashing."""
        return self.model_dump(mode="json", include=set(self.semantic_keys()))

    def semantic_json(self, known: Optional[dict[str, tuple[BaseModel, str]]] = None) -> str:
        """``canonical_json(self.semantic_dict())``, field by field. ``known`` maps a field to a
        section instance and its canonical JSON already made: where this config holds that very
        instance (a planned grid shares its unchanged sections), the text is reused. A scalar
        field's text is remembered per (field, type, value) from its first ``model_dump``: a
        10,000-job grid repeats a few hundred of them."""
        cls, flag = type(self), bool(self.quality.enabled)
        keys = _SEMANTIC_KEYS.get((cls, flag))
        if keys is None:
            # semantic_keys() depends on quality.enabled alone
            keys = _SEMANTIC_KEYS[(cls, flag)] = tuple((k, _key_json(k) + ":") for k in sorted(self.semantic_keys()))
        known = known or {}
        parts: list[Optional[str]] = []
        rest: dict[str, int] = {}
        for k, head in keys:
            v = getattr(self, k)
            hit = known.get(k)
            if hit is not None and v is hit[0]:
                parts.append(head + hit[1])
                continue
            if v is None or type(v) in _SCALAR_TYPES:
                text = _FIELD_JSON.get((cls, k, type(v), v))
                if text is not None:
                    parts.append(head + text)
                    continue
            rest[k] = len(parts)
            parts.append(None)
        if rest:
            dumped = self.model_dump(mode="json", include=set(rest))
            for k, i in rest.items():
                text = _value_json(dumped[k])
                v = getattr(self, k)
                if (v is None or type(v) in _SCALAR_TYPES) and len(_FIELD_JSON) < 100_000:
                    _FIELD_JSON[(cls, k, type(v), v)] = text
                parts[i] = keys[i][1] + text
        return "{" + ",".join(parts) + "}"

    @property
    def config_hash(self) -> str:
        from llem.config.hashing import config_hash

        return config_hash(self)


@lru_cache(maxsize=None)
def _key_json(key: str) -> str:
    from llem.config.hashing import canonical_json

    return canonical_json(key)


_SCALAR_JSON: dict[tuple[type, Any], str] = {}
#: (type of config, quality on) -> its semantic keys, sorted, each with its JSON key and colon
_SEMANTIC_KEYS: dict[tuple[type, bool], tuple[tuple[str, str], ...]] = {}
#: (type of config, field, type, value) -> the field's canonical JSON as model_dump gave it
_FIELD_JSON: dict[tuple[type, str, type, Any], str] = {}
_SCALAR_TYPES = (bool, int, str)  # not float: -0.0 == 0.0 would share a text


def _value_json(value: Any) -> str:
    """canonical_json(value), remembered for the scalars a grid repeats (batch=8, precision=bf16)."""
    from llem.config.hashing import canonical_json

    if value is None or type(value) in (bool, int, str):
        key = (type(value), value)
        hit = _SCALAR_JSON.get(key)
        if hit is None:
            hit = canonical_json(value)
            if len(_SCALAR_JSON) < 100_000:
                _SCALAR_JSON[key] = hit
        return hit
    return canonical_json(value)


class StudyConfig(_Strict):
    """A grid of experiments for ``run_study``.

    ``base`` is the experiment every job starts from; ``sweep`` maps dotted override keys
    (Hydra syntax, e.g. ``"batch"`` or ``"backend"``) to the values to sweep.
    """

    name: str = "study"
    base: dict[str, Any] = {}
    sweep: dict[str, list[Any]] = {}
    overrides: list[str] = []
    cycles: PositiveInt = 1
    order: Literal["sequential", "interleaved", "shuffled"] = "sequential"
    shuffle_seed: int = 0
    cooldown_s: float = Field(0.0, ge=0)
    output_dir: Optional[str] = None
    launcher: str = "local"
    parallel_gpus: bool = False
