"""Peak device memory as NVML saw it during the measured cycles, for every backend.

torch's own counters (PyTorch backend) see only its allocator; vLLM's engine runs in another
process and reports its KV pool, not what the device holds. NVML's "used" is the whole device:
the CUDA context, every framework's cache and any other process on the GPU, which is what
decides whether a job fits and what the dry run's estimate predicts.
"""
from __future__ import annotations

from typing import Any, Optional

MIB = 2 ** 20


def device_peak(sampler) -> dict[str, Any]:
    """``memory`` fields from the sampler's rows: the peak used per GPU and their sum."""
    rows = getattr(sampler, "rows", None) or []
    per: dict[int, float] = {}
    for r in rows:
        used = r.get("memory_used_mib")
        if used is None:
            continue
        i = int(r.get("gpu_index") or 0)
        per[i] = max(per.get(i, 0.0), float(used))
    if not per:
        why = ("no GPU sampler ran (CPU job or energy.sampler off)" if not rows
               else "the GPU did not report its memory use (NVML memory info unavailable)")
        return {"device_peak_used_bytes": None, "device_peak_not_measured_reason": why}
    interval = getattr(sampler, "interval_s", None)
    every = f" every {interval:g} s" if interval else ""
    return {
        "device_peak_used_bytes": int(sum(per.values()) * MIB),
        "device_peak_per_gpu": [{"gpu_index": i, "peak_used_bytes": int(v * MIB)} for i, v in sorted(per.items())],
        "device_peak_method": (f"NVML memory used (nvmlDeviceGetMemoryInfo), the highest sample{every} during the "
                               "measured cycles, summed over the GPUs sampled: the whole device, so it includes the "
                               "CUDA context, the framework's allocator cache and any other process on the GPU"),
    }


def with_device_peak(memory: Optional[dict], sampler) -> dict:
    out = dict(memory or {})
    out.update(device_peak(sampler))
    return out
