"""The ``tensorrt:`` section's fields against TensorRT-LLM's ``LLM``, ``QuantConfig`` and
``SamplingParams``, and the checks on them that need no TensorRT-LLM: they run when an
``ExperimentConfig`` is validated, in llem's main environment. ``llem.backends.tensorrt`` maps
the same tables onto TensorRT-LLM's arguments.
"""
from __future__ import annotations

from typing import Optional

from llem.errors import ConfigError

# The QuantAlgo used when only a precision is given. The int methods are weight-only: no
# calibration data set is needed (FP8 calibrates its scales; see docs/tensorrt.md).
DEFAULT_QUANT_ALGO = {"fp8": "FP8", "int8": "W8A16", "int4": "W4A16"}
# Which llem precision each QuantAlgo gives (the ones llem accepts in tensorrt.quantization).
QUANT_PRECISIONS: dict[str, tuple[str, ...]] = {
    "FP8": ("fp8",), "FP8_PER_CHANNEL_PER_TOKEN": ("fp8",), "FP8_BLOCK_SCALES": ("fp8",),
    "W8A16": ("int8",), "W8A16_GPTQ": ("int8",), "W8A8_SQ_PER_CHANNEL": ("int8",), "INT8": ("int8",),
    "W4A16": ("int4",), "W4A16_AWQ": ("int4",), "W4A16_GPTQ": ("int4",), "W4A8_AWQ": ("int4",),
}
# LLM keyword arguments llem sets from its own config: giving them in extra_llm_args is an error.
LLM_MANAGED = {
    "model": "model.path / model.architecture", "tokenizer": "model.tokenizer",
    "skip_tokenizer_init": "llem tokenises prompts itself", "dtype": "precision",
    "tensor_parallel_size": "tensorrt.tensor_parallel_size", "build_config": "tensorrt.max_batch_size / max_num_tokens",
    "kv_cache_config": "tensorrt.kv_cache_*", "quant_config": "precision / tensorrt.quantization",
    "max_batch_size": "tensorrt.max_batch_size", "max_num_tokens": "tensorrt.max_num_tokens",
    "max_seq_len": "dataset.input_len + output_len", "max_input_len": "dataset.input_len",
    "max_beam_width": "fixed at 1", "revision": "model.revision",
}
# SamplingParams fields llem fixes: they define the workload.
SAMPLING_MANAGED = {
    "max_tokens": "output_len", "min_tokens": "output_len", "ignore_eos": "fixed output length",
    "detokenize": "token ids are counted, never decoded", "end_id": "the tokenizer's EOS id",
    "pad_id": "the tokenizer's pad id", "seed": "seed", "n": "one output per prompt",
    "use_beam_search": "beam width is fixed at 1", "best_of": "one output per prompt",
}


# --- configuration checks (no TensorRT-LLM import) ----------------------------------------------
def resolve_quant_algo(config) -> Optional[str]:
    """The QuantAlgo name for this config, or None; raises ConfigError on a mismatch."""
    q = config.tensorrt.quantization
    prec = config.precision
    if q is None:
        return DEFAULT_QUANT_ALGO.get(prec)
    if q not in QUANT_PRECISIONS:
        raise ConfigError(f"tensorrt.quantization={q!r} is not supported; allowed: {', '.join(QUANT_PRECISIONS)}",
                          field="tensorrt.quantization", value=q, allowed=list(QUANT_PRECISIONS))
    if prec not in QUANT_PRECISIONS[q]:
        ok = [a for a, p in QUANT_PRECISIONS.items() if prec in p] or ["null"]
        raise ConfigError(f"tensorrt.quantization={q} gives {'/'.join(QUANT_PRECISIONS[q])}, not precision={prec}; "
                          f"allowed with precision={prec}: {', '.join(ok)}", field="tensorrt.quantization",
                          value=q, allowed=ok)
    return q


def effective_max_batch_size(config) -> int:
    t = config.tensorrt
    return t.max_batch_size if t.max_batch_size is not None else config.batch


def check_config(config) -> None:
    """Everything about a TensorRT-LLM config that can be checked without TensorRT-LLM.

    Raises ``ConfigError`` naming the field, its value and what is allowed.
    """
    t = config.tensorrt
    if config.device == "cpu":
        raise ConfigError("device='cpu' is not supported by backend=tensorrt (TensorRT-LLM runs on NVIDIA GPUs "
                          "only); allowed: auto, cuda, cuda:<index>", field="device", value="cpu",
                          allowed=["auto", "cuda", "cuda:<index>"])
    if config.model.source == "gguf":
        raise ConfigError("model.source='gguf' is not supported by backend=tensorrt; allowed: builtin, no_weights, "
                          "local, hub", field="model.source", value="gguf",
                          allowed=["builtin", "no_weights", "local", "hub"])
    if effective_max_batch_size(config) < config.batch:
        raise ConfigError(f"tensorrt.max_batch_size={t.max_batch_size} is below batch={config.batch}: the engine "
                          f"could not run the batch in one step; allowed: >= {config.batch} (or null, which means batch)",
                          field="tensorrt.max_batch_size", value=t.max_batch_size, allowed=f">= {config.batch}")
    need = config.batch * config.dataset.input_len
    if t.max_num_tokens is not None and t.max_num_tokens < need:
        raise ConfigError(f"tensorrt.max_num_tokens={t.max_num_tokens} is below batch x dataset.input_len = {need}: "
                          f"the prefill of one batch would not fit one engine step; allowed: >= {need} (or null)",
                          field="tensorrt.max_num_tokens", value=t.max_num_tokens, allowed=f">= {need}")
    resolve_quant_algo(config)
    for key, managed, what in ((k, LLM_MANAGED, "extra_llm_args") for k in t.extra_llm_args):
        if key in managed:
            raise ConfigError(f"tensorrt.{what}.{key}={t.extra_llm_args[key]!r} is set by llem from {managed[key]}; "
                              f"allowed: any other LLM "
                              f"argument (set {managed[key]} instead)", field=f"tensorrt.{what}.{key}",
                              value=t.extra_llm_args[key], allowed=managed[key])
    for key in t.extra_sampling_params:
        if key in SAMPLING_MANAGED:
            raise ConfigError(f"tensorrt.extra_sampling_params.{key}={t.extra_sampling_params[key]!r} is set by llem "
                              f"from {SAMPLING_MANAGED[key]}; "
                              "allowed: any other SamplingParams field", field=f"tensorrt.extra_sampling_params.{key}",
                              value=t.extra_sampling_params[key], allowed=SAMPLING_MANAGED[key])
