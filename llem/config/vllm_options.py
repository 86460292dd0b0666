"""The ``vllm:`` section's fields against vLLM's ``EngineArgs`` and ``SamplingParams``, and the
checks on them that need no vLLM: they run when an ``ExperimentConfig`` is validated, in llem's
main environment (vLLM may live in another venv). ``llem.backends.vllm`` maps the same tables
onto vLLM's arguments.
"""
from __future__ import annotations

from typing import Optional

from llem.errors import ConfigError

# Which llem precision each vLLM quantisation method gives. The method decides the weights'
# format; a checkpoint that carries it (awq/gptq/compressed-tensors) must be a real model.
QUANTIZATION_PRECISIONS: dict[str, tuple[str, ...]] = {
    "fp8": ("fp8",),                      # online: quantises bf16/fp16 weights at load time
    "awq": ("int4",), "awq_marlin": ("int4",),
    "gptq": ("int4", "int8"), "gptq_marlin": ("int4", "int8"),
    "compressed-tensors": ("int8", "int4", "fp8"),
    "bitsandbytes": ("int4", "int8"),     # online from bf16/fp16 weights (GPU only)
    "modelopt": ("fp8",), "experts_int8": ("int8",),
}
# Methods that quantise ordinary weights while loading; the rest need a pre-quantised checkpoint.
ONLINE_QUANTIZATION = ("fp8", "bitsandbytes", "experts_int8")
# The method used when only a precision is given.
DEFAULT_QUANTIZATION = {"fp8": "fp8"}

# Typed VLLMConfig fields that map one-to-one onto EngineArgs fields of the same name.
ENGINE_TYPED = (
    "tensor_parallel_size", "pipeline_parallel_size", "gpu_memory_utilization", "enforce_eager",
    "max_model_len", "kv_cache_dtype", "enable_prefix_caching", "block_size", "max_num_batched_tokens",
    "enable_chunked_prefill", "cpu_offload_gb", "disable_log_stats", "async_scheduling",
    "distributed_executor_backend", "trust_remote_code", "revision", "tokenizer_revision",
)
# EngineArgs fields llem sets from its own config; giving them in extra_engine_args is an error.
ENGINE_MANAGED = {
    "model": "model.path / model.architecture", "tokenizer": "model.tokenizer",
    "skip_tokenizer_init": "llem tokenises prompts itself", "dtype": "precision",
    "quantization": "vllm.quantization / precision", "seed": "seed", "max_num_seqs": "vllm.max_num_seqs / batch",
    "load_format": "model.source (builtin/no_weights load dummy weights)",
}
# Typed VLLMConfig fields that map onto SamplingParams fields of the same name (None: vLLM default).
SAMPLING_TYPED = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty",
                  "frequency_penalty", "n")
# SamplingParams fields llem fixes: they define the workload (fixed output length, token ids out).
SAMPLING_MANAGED = {
    "max_tokens": "output_len", "min_tokens": "output_len", "ignore_eos": "fixed output length",
    "detokenize": "token ids are counted, never decoded", "output_kind": "llem's latency pass",
}


# --- configuration checks (no vLLM import) -------------------------------------------------
def effective_max_num_seqs(config) -> int:
    v = config.vllm
    return v.max_num_seqs if v.max_num_seqs is not None else config.batch


def resolve_quantization(config) -> Optional[str]:
    """The vLLM quantisation method for this config, or None; raises ConfigError on a mismatch."""
    q = config.vllm.quantization
    prec = config.precision
    if q is None:
        if prec in DEFAULT_QUANTIZATION:
            return DEFAULT_QUANTIZATION[prec]
        if prec in ("int8", "int4"):
            allowed = [m for m, p in QUANTIZATION_PRECISIONS.items() if prec in p]
            raise ConfigError(
                f"vllm.quantization=None with precision={prec}: vLLM needs a method for {prec}; "
                f"allowed: {', '.join(allowed)}", field="vllm.quantization", value=None, allowed=allowed)
        return None
    if q not in QUANTIZATION_PRECISIONS:
        raise ConfigError(f"vllm.quantization={q!r} is not supported; allowed: {', '.join(QUANTIZATION_PRECISIONS)}",
                          field="vllm.quantization", value=q, allowed=list(QUANTIZATION_PRECISIONS))
    if prec not in QUANTIZATION_PRECISIONS[q]:
        raise ConfigError(f"precision={prec!r} does not match vllm.quantization={q}; allowed: "
                          f"{', '.join(QUANTIZATION_PRECISIONS[q])}", field="precision", value=prec,
                          allowed=list(QUANTIZATION_PRECISIONS[q]))
    return q


def check_config(config) -> None:
    """Everything about a vLLM config that can be checked without vLLM (runs at validation time).

    Raises ``ConfigError`` naming the field, its value and what is allowed.
    """
    v = config.vllm
    mseqs = effective_max_num_seqs(config)
    if v.batching == "static" and mseqs < config.batch:
        raise ConfigError(
            f"vllm.max_num_seqs={v.max_num_seqs} is below batch={config.batch}: a static batch must run "
            f"in one step; allowed: >= {config.batch} (or null, which means batch)",
            field="vllm.max_num_seqs", value=v.max_num_seqs, allowed=f">= {config.batch}")
    q = resolve_quantization(config)
    if q is not None and q not in ONLINE_QUANTIZATION and config.model.source in ("builtin", "no_weights"):
        raise ConfigError(
            f"vllm.quantization={q} needs a checkpoint quantised with {q}, but model.source="
            f"{config.model.source} has random weights; allowed for it: {', '.join(ONLINE_QUANTIZATION)} "
            f"(or a model.source=local/hub model quantised with {q})",
            field="vllm.quantization", value=q, allowed=list(ONLINE_QUANTIZATION))
    if config.model.source == "gguf":
        raise ConfigError("model.source='gguf' is not supported by backend=vllm; allowed: builtin, no_weights, local, hub",
                          field="model.source", value="gguf", allowed=["builtin", "no_weights", "local", "hub"])
    for key in v.extra_engine_args:
        if key in ENGINE_MANAGED or key in ENGINE_TYPED or key == "quantization":
            where = ENGINE_MANAGED.get(key, f"vllm.{key}")
            raise ConfigError(f"vllm.extra_engine_args.{key} is set by llem from {where}; allowed: any other "
                              f"EngineArgs field (set {where} instead)", field=f"vllm.extra_engine_args.{key}",
                              value=v.extra_engine_args[key], allowed=where)
    for key in v.extra_sampling_params:
        if key in SAMPLING_MANAGED or key in SAMPLING_TYPED:
            where = SAMPLING_MANAGED.get(key, f"vllm.{key}")
            raise ConfigError(f"vllm.extra_sampling_params.{key} is set by llem from {where}; allowed: any other "
                              f"SamplingParams field (set {where} instead)", field=f"vllm.extra_sampling_params.{key}",
                              value=v.extra_sampling_params[key], allowed=where)


# --- engines shared between the jobs of a study (hydra.launcher.share_engine) ------------------
#: the environment variable that tells a vLLM job it is one of a shared-engine group: the group's
#: jobs in order, this job's place, the group's largest batch and the job's log
SHARING_ENV = "LLEM_ENGINE_SHARING"
# what an engine does not fix when it starts: these may differ between the jobs of one engine
_NOT_ENGINE = ("batch", "output_len", "dataset", "measurement", "energy", "quality", "runner", "pytorch", "tensorrt")
_NOT_ENGINE_VLLM = ("batching", *SAMPLING_TYPED, "extra_sampling_params")


def engine_group_key(config) -> Optional[str]:
    """Jobs with equal keys can share one vLLM engine; None for other backends. Everything that
    reaches the engine's arguments (model, precision, seed, the engine fields of ``vllm:``) is in
    the key; batch, prompts, sampling, output length and the measurement settings are not.
    ``vllm.max_num_seqs`` unset (llem sets it from the batch) stays in as null: a shared engine
    starts with the group's largest batch, and a static batch still hands ``batch`` prompts to
    each call."""
    import json

    if config.backend != "vllm":
        return None
    d = config.model_dump(mode="json")
    for k in _NOT_ENGINE:
        d.pop(k, None)
    for k in _NOT_ENGINE_VLLM:
        d["vllm"].pop(k, None)
    return json.dumps(d, sort_keys=True)

