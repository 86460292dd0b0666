"""Estimated GPU memory of one job, for the dry run, as NVML will report it used on the device.

From the architecture's public shape (layers, hidden size, heads, vocabulary) and the bytes per
value of the precision. An estimate to catch jobs that cannot fit before they run, not a
measurement. Its parts, calibrated against the peak NVML memory of measured PyTorch jobs
(Llama-3.2-1B, batches 1-128, bf16/int8/int4, on H100 and H200; tests/study/test_memory.py
checks it against the committed results):

- the CUDA context, driver reservations and library workspaces outside the framework's
  allocator: NVML's "used" minus torch's peak reserved was 0.79-1.23 GiB on those GPUs (more
  at larger batches, as more kernels load); counted as 1.2 GiB;
- the allocator's cache: torch keeps what loading needed (the weights plus the largest tensor
  being materialised, the vocabulary embedding) and what generation needed (the weights, about
  two KV caches' worth, measured with static and dynamic caches alike, and the prefill
  activations), whichever is larger, plus 0.1 GiB of rounding;
- vLLM and TensorRT-LLM pre-allocate their KV pool from a fixed fraction of the GPU, so for them
  the estimate is weights + one KV cache + activations + the context, compared against that
  fraction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

GIB = 1024 ** 3
# bytes per weight. int4 carries ~1 scale per 32-128 weights (group-wise quantisation): ~+6%.
WEIGHT_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.53}
# activations and KV cache stay in the compute dtype; weight-only quantisation computes in 16 bit
COMPUTE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 2, "int8": 2, "int4": 2}
# CUDA context, driver reservations and workspaces outside the framework's allocator (see above)
CONTEXT_BYTES = int(1.2 * GIB)
# the caching allocator's rounding and block splitting
ALLOCATOR_SLACK_BYTES = int(0.1 * GIB)
#: everything the estimate adds beyond the model's own tensors (PyTorch jobs)
RUNTIME_OVERHEAD_BYTES = CONTEXT_BYTES + ALLOCATOR_SLACK_BYTES


@dataclass
class MemoryEstimate:
    weights_bytes: Optional[int]
    kv_cache_bytes: Optional[int]
    activations_bytes: Optional[int]
    overhead_bytes: int = RUNTIME_OVERHEAD_BYTES
    per_gpu_bytes: Optional[int] = None
    gpus_needed: int = 1
    reason: Optional[str] = None   # why there is no estimate
    load_transient_bytes: int = 0  # PyTorch: the largest tensor materialised while loading

    @property
    def total_bytes(self) -> Optional[int]:
        if self.weights_bytes is None:
            return None
        return self.weights_bytes + (self.kv_cache_bytes or 0) + (self.activations_bytes or 0) + self.overhead_bytes

    def gib(self) -> Optional[float]:
        return None if self.per_gpu_bytes is None else self.per_gpu_bytes / GIB


def parameter_count(arch: dict) -> int:
    h = arch["hidden_size"]
    layers = arch["num_hidden_layers"]
    heads = arch["num_attention_heads"]
    kv = arch.get("num_key_value_heads", heads)
    hd = arch.get("head_dim") or h // heads
    inter = arch["intermediate_size"]
    vocab = arch["vocab_size"]
    attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h
    if arch.get("model_type") == "qwen2":  # q/k/v projections carry biases
        attn += heads * hd + 2 * kv * hd
    mlp = 3 * h * inter  # gated (SiLU) MLP: gate, up, down
    per_layer = attn + mlp + 2 * h
    embed = vocab * h
    head = 0 if arch.get("tie_word_embeddings") else vocab * h
    return layers * per_layer + embed + head + h


def architecture_of(config) -> tuple[Optional[dict], Optional[str]]:
    m = config.model
    if m.architecture:
        from llem.models.architectures import load_architecture

        return load_architecture(m.architecture), None
    if m.path:
        p = Path(m.path).expanduser()
        cfg = p / "config.json" if p.is_dir() else None
        if cfg and cfg.is_file():
            return json.loads(cfg.read_text()), None
    return None, f"no architecture known for model.source={m.source} (no config.json to read)"


def estimate(config, architecture: Optional[tuple[Optional[dict], Optional[str]]] = None) -> MemoryEstimate:
    """``architecture``: what ``architecture_of(config)`` returned, when the caller already has it
    (a dry run estimates thousands of jobs of a few models)."""
    arch, why = architecture if architecture is not None else architecture_of(config)
    if arch is None:
        return MemoryEstimate(None, None, None, reason=why)
    try:
        n_params = parameter_count(arch)
    except KeyError as err:
        return MemoryEstimate(None, None, None, reason=f"architecture lacks {err}")
    wb = WEIGHT_BYTES[config.precision]
    cb = COMPUTE_BYTES[config.precision]
    weights = int(n_params * wb)
    h, layers = arch["hidden_size"], arch["num_hidden_layers"]
    heads = arch["num_attention_heads"]
    kv_heads = arch.get("num_key_value_heads", heads)
    hd = arch.get("head_dim") or h // heads
    seq = config.dataset.input_len + config.output_len
    b = config.batch
    kv_bytes = cb
    section = config.backend_section
    if _field(section, "kv_cache_dtype", "auto") in ("fp8", "fp8_e4m3", "fp8_e5m2"):
        kv_bytes = 1
    kv = 2 * layers * kv_heads * hd * seq * b * kv_bytes
    # Prefill peak: a few hidden-sized tensors and the MLP's two intermediate tensors for the
    # whole prompt, plus fp32 logits over the vocabulary for the last position.
    acts = b * config.dataset.input_len * (4 * h + 2 * arch["intermediate_size"]) * cb + b * arch["vocab_size"] * 4
    tp = _field(section, "tensor_parallel_size", 1) or 1
    if config.backend != "pytorch":
        # a pre-allocated KV pool out of a fixed fraction of the GPU (compared against it in fits)
        est = MemoryEstimate(weights, kv, acts, gpus_needed=tp, overhead_bytes=CONTEXT_BYTES)
        est.per_gpu_bytes = int((weights + kv) / tp + acts + CONTEXT_BYTES)
        return est
    # transformers materialises the embedding (and an untied head) in the load dtype before
    # any quantisation; the allocator keeps that block cached for the rest of the job
    load_bytes = 4 if config.precision == "fp32" else 2
    transient = arch["vocab_size"] * h * load_bytes
    # measured: torch's reserved memory holds about two KV caches by the end of a job, with the
    # static cache and the dynamic one alike (a dynamic cache grows by concatenation, and blocks
    # freed by one generate call are cached, not always reused, by the next)
    est = MemoryEstimate(weights, kv, acts, gpus_needed=tp, load_transient_bytes=transient)
    est.per_gpu_bytes = int(max(weights + transient, weights + 2 * kv + acts) / tp + RUNTIME_OVERHEAD_BYTES)
    return est


def _field(section, name: str, default):
    # a field some backends' sections lack: pydantic's getattr miss raises and catches, slowly
    return getattr(section, name) if name in type(section).model_fields else default


def gpu_capacities() -> tuple[list[int], Optional[str]]:
    """Total memory (bytes) of each GPU visible here, or ([], why none)."""
    from llem.devices import resolve_devices
    from llem.devices.nvml import nvml_module

    devices = resolve_devices()
    if not devices:
        return [], "no GPU"
    nv = nvml_module()
    out = []
    for d in devices:
        try:
            out.append(int(nv.nvmlDeviceGetMemoryInfo(d.handle).total))
        except Exception:
            out.append(0)
    return out, None


def fits(config, est: MemoryEstimate, capacities: list[int], none_reason: Optional[str]) -> str:
    if not capacities:
        return none_reason or "no GPU"
    if est.per_gpu_bytes is None:
        return "unknown"
    if est.gpus_needed > len(capacities):
        return f"no (needs {est.gpus_needed} GPUs, {len(capacities)} found)"
    usable = sorted(capacities, reverse=True)[: est.gpus_needed]
    # vLLM and TensorRT-LLM only use their configured fraction of each GPU
    frac = _field(config.backend_section, "gpu_memory_utilization", None) or \
        _field(config.backend_section, "kv_cache_free_gpu_memory_fraction", None) or 1.0
    if config.backend == "tensorrt":
        frac = 1.0  # its fraction applies to the memory left after weights, not to the total
    cap = min(usable) * frac
    return "yes" if est.per_gpu_bytes <= cap else f"no ({est.per_gpu_bytes / GIB:.1f} > {cap / GIB:.1f} GiB)"
