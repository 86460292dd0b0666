"""Warnings for anything that weakens a number. Each is one sentence that names the condition,
the value seen and the threshold, and goes into the result and onto the screen."""
from __future__ import annotations

import os
from typing import Optional

from llem.measure.sampler import throttle_names

#: A window shorter than this is a warning whatever the counter's period: host-side noise
#: (Python, launch latency, synchronisation) is no longer small against it.
MIN_WINDOW_WARN_S = 1.0


#: below this mean utilisation (NVML, %) inside the windows a measured GPU counts as idle
IDLE_GPU_UTIL_PCT = 2.0


def environment_warnings(environment: dict, sampler, config) -> list[str]:
    out: list[str] = []
    for g in environment.get("gpus", []):
        lim, dflt = g.get("power_limit_w"), g.get("default_power_limit_w")
        if lim is not None and dflt is not None and abs(lim - dflt) > 0.5:
            out.append(f"non-default power limit: GPU {g['index']} is capped at {lim:g} W (default {dflt:g} W)")
        if g.get("persistence_mode") is False:
            out.append(f"persistence mode off on GPU {g['index']}: the driver may unload between runs, "
                       "changing idle power and start-up behaviour (nvidia-smi -pm 1)")
    if sampler is not None:
        out.extend(sampler_warnings(sampler.in_windows(), config.measurement.temperature_drift_warn_c))
    return out


def window_means(rows: list[dict], key: str) -> dict[int, float]:
    """Per measured window (the rows' ``cycle``), the mean of ``key`` over its samples."""
    acc: dict[int, list[float]] = {}
    for r in rows:
        v = r.get(key)
        if v is not None and r.get("cycle", -1) >= 0:
            acc.setdefault(r["cycle"], []).append(v)
    return {c: sum(v) / len(v) for c, v in sorted(acc.items())}


def sampler_warnings(rows: list[dict], drift_threshold_c: float) -> list[str]:
    out: list[str] = []
    by_gpu: dict = {}
    for r in rows:
        by_gpu.setdefault(r["gpu_index"], []).append(r)
    for idx, rs in sorted(by_gpu.items()):
        # Drift is judged on each window's average temperature: the number a window reports
        # averages over it, and single 0.1 s samples swing by several degrees with the load of
        # the moment (45->51 C of raw samples while every window averaged 45-46 C)
        means = window_means(rs, "temperature_c")
        if len(means) >= 2:
            lo_c, hi_c = min(means, key=means.get), max(means, key=means.get)
            if means[hi_c] - means[lo_c] > drift_threshold_c:
                temps = [r["temperature_c"] for r in rs if r["temperature_c"] is not None]
                out.append(f"temperature drift: GPU {idx}'s window-average temperature ranged from {means[lo_c]:.1f} C (window "
                           f"{lo_c + 1}) to {means[hi_c]:.1f} C (window {hi_c + 1}), more than the "
                           f"{drift_threshold_c:g} C threshold (samples ranged {min(temps):g}-{max(temps):g} C)")
        mask = 0
        hit = 0
        for r in rs:
            m = r["throttle_reasons"] or 0
            if throttle_names(m):
                hit += 1
            mask |= m
        names = throttle_names(mask)
        if names:
            out.append(f"throttling: GPU {idx} reported {', '.join(names)} in {hit} of {len(rs)} samples "
                       "inside the measured windows")
        util = [r["utilization_gpu_pct"] for r in rs if r.get("utilization_gpu_pct") is not None]
        # an idle measured GPU means the energy is not the workload's: an H100 run whose torchao
        # int8 model stayed on the CPU read 0% here while reporting J/token of an idle GPU
        if len(util) >= 3 and sum(util) / len(util) < IDLE_GPU_UTIL_PCT:
            out.append(f"GPU {idx} was nearly idle during the measured windows (mean utilisation "
                       f"{sum(util) / len(util):.1f}% over {len(util)} samples): the workload may not run on the "
                       "GPU whose energy is measured, so its energy is not the workload's")
    return out


def own_process_tree(pid: Optional[int] = None) -> set[int]:
    """``pid`` (default: this process) and all its descendants: vLLM's EngineCore, tensor-parallel
    follower ranks and other processes llem started hold GPU memory too, but their energy is the job's."""
    pid = pid or os.getpid()
    own = {pid}
    try:
        import psutil

        own.update(c.pid for c in psutil.Process(pid).children(recursive=True))
    except Exception:  # psutil.NoSuchProcess / AccessDenied: the pid itself is still ours
        pass
    return own


def foreign_process_warnings(environment: dict, devices, own_pid: Optional[int] = None) -> list[str]:
    """Other processes on the job's GPUs, from the snapshot and from a fresh read now (called while
    the backend's own child processes are still running, so they count as ours)."""
    own = own_process_tree(own_pid)
    seen: dict = {}
    for g in environment.get("gpus", []):
        for p in g.get("processes") or []:
            seen.setdefault(g["index"], set()).add(p["pid"])
    if devices:
        try:
            from llem.devices.nvml import nvml_module

            nv = nvml_module()
            for d in devices:
                for p in nv.nvmlDeviceGetComputeRunningProcesses(d.handle):
                    seen.setdefault(d.index, set()).add(p.pid)
        except Exception:
            pass
    out = []
    in_container = environment.get("container", {}).get("in_container")
    for idx, pids in sorted(seen.items()):
        others = sorted(pids - own)
        if others:
            note = " (in a container NVML reports host PIDs, so this may be llem itself)" if in_container else ""
            out.append(f"other processes on GPU {idx}: pids {others[:8]} share the GPU and its energy{note}")
    return out


def measurement_warnings(*, meter, bounds: list[float], target: float, durations_s: list[float],
                         cv: Optional[float], cv_threshold: float,
                         throughput_cv: Optional[float] = None) -> list[str]:
    """``cv``: the CV across cycles of energy per token (None when energy was not measured);
    ``throughput_cv``: that of output tokens per second. Either above ``cv_threshold`` is a
    warning: cycles whose speed wanders weaken every per-token number, energy or not."""
    out = []
    if bounds and max(bounds) > target:
        out.append(f"short window: quantisation bound {max(bounds):.2%} exceeds the {target:.2%} target "
                   "(the window stopped at max_repeats_per_cycle passes' worth of calls before its target length)")
    if durations_s and min(durations_s) < MIN_WINDOW_WARN_S:
        out.append(f"short window: the shortest measured window lasted {min(durations_s):.3g} s "
                   f"(< {MIN_WINDOW_WARN_S:g} s)")
    if cv is not None and cv > cv_threshold:
        out.append(f"high CV: energy per token varies {cv:.1%} across cycles (threshold {cv_threshold:.1%})")
    if throughput_cv is not None and throughput_cv > cv_threshold:
        out.append(f"high CV: throughput (output tokens/s) varies {throughput_cv:.1%} across cycles "
                   f"(threshold {cv_threshold:.1%})")
    if len(durations_s) == 1:
        out.append("one cycle: no spread or confidence interval can be estimated (measurement.cycles=1; "
                   "use 2 or more, 5 by default)")
    if meter.estimated:
        out.append(f"estimated meter: {meter.name} does not read a hardware energy counter; its energy is a "
                   "model-based estimate")
    if getattr(meter, "caveat", None):
        out.append(meter.caveat)
    return out


def latency_warnings(latency, tolerance: float) -> list[str]:
    """The latency pass must describe the measured workload: its own throughput (output tokens over
    the summed duration of its timed calls) within ``tolerance`` of the measured windows'."""
    ratio = getattr(latency, "latency_throughput_ratio", None) if latency is not None else None
    if ratio is None or abs(ratio - 1) <= tolerance:
        return []
    lat = latency.output_tokens_per_s
    win = lat / ratio
    return [f"latency pass off the windows' speed: it decoded {lat:.4g} output tokens/s against the measured "
            f"windows' {win:.4g} (latency_throughput_ratio {ratio:.3f}, tolerance +-{tolerance:.0%}), so its "
            f"TTFT, ITL and TPOT describe a {'slower' if ratio < 1 else 'faster'} decode than the windows measured "
            f"({latency.calls} call(s), {latency.requests} request(s))"]
