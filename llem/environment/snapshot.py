"""Environment snapshot recorded in every result: everything that could change the number.

GPU facts come from NVML for the GPUs the job uses only. Any fact that cannot be read is
``None`` (with the error in ``errors``), never a made-up default.
"""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

PACKAGES = ("torch", "transformers", "vllm", "zeus", "codecarbon", "tensorrt_llm", "nvidia-ml-py")


def _version(pkg: str):
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _str(v):
    return v.decode() if isinstance(v, bytes) else v


def gpu_facts(nv, d, errors: Optional[list] = None) -> dict[str, Any]:
    """NVML facts about one device; each unreadable one is None."""
    h = d.handle
    out: dict[str, Any] = {"index": d.index, "cuda_index": d.cuda_index, "uuid": d.uuid, "name": d.name}

    def get(key, fn, *args, conv=lambda v: v):
        try:
            out[key] = conv(fn(*args))
        except Exception as err:
            out[key] = None
            if errors is not None:
                errors.append(f"gpu {d.index} {key}: {type(err).__name__}")

    get("compute_capability", nv.nvmlDeviceGetCudaComputeCapability, h, conv=lambda v: f"{v[0]}.{v[1]}")
    get("memory_total_mib", nv.nvmlDeviceGetMemoryInfo, h, conv=lambda m: m.total / 2**20)
    get("memory_used_mib", nv.nvmlDeviceGetMemoryInfo, h, conv=lambda m: m.used / 2**20)
    get("power_limit_w", nv.nvmlDeviceGetEnforcedPowerLimit, h, conv=lambda v: v / 1e3)
    get("default_power_limit_w", nv.nvmlDeviceGetPowerManagementDefaultLimit, h, conv=lambda v: v / 1e3)
    get("persistence_mode", nv.nvmlDeviceGetPersistenceMode, h, conv=lambda v: bool(v))
    get("mig_mode", nv.nvmlDeviceGetMigMode, h, conv=lambda v: bool(v[0]))
    get("ecc_mode", nv.nvmlDeviceGetEccMode, h, conv=lambda v: bool(v[0]))
    get("sm_clock_mhz", nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM)
    get("mem_clock_mhz", nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_MEM)
    get("max_sm_clock_mhz", nv.nvmlDeviceGetMaxClockInfo, h, nv.NVML_CLOCK_SM)
    get("temperature_c", nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
    get("power_w", nv.nvmlDeviceGetPowerUsage, h, conv=lambda v: v / 1e3)
    get("energy_counter", nv.nvmlDeviceGetTotalEnergyConsumption, h, conv=lambda v: True)
    if out["energy_counter"] is None:
        out["energy_counter"] = False
    get("processes", nv.nvmlDeviceGetComputeRunningProcesses, h,
        conv=lambda ps: [{"pid": p.pid, "used_memory_mib": (p.usedGpuMemory or 0) / 2**20} for p in ps])
    return out


def boot_id() -> Optional[str]:
    """This boot of this machine: unlike the host name (every VM of a cloud image may be called
    the same), it tells machines apart, and it changes when a machine reboots and reuses pids."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def cpu_model() -> Optional[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _ram_gib() -> Optional[float]:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 2)
    except Exception:
        return None


def container_facts() -> dict[str, Any]:
    cgroup = None
    try:
        cgroup = Path("/proc/1/cgroup").read_text().strip()[:500]
    except OSError:
        pass
    markers = ("docker", "containerd", "kubepods", "libpod", "podman")
    return {
        "dockerenv": Path("/.dockerenv").exists(),
        "containerenv": Path("/run/.containerenv").exists(),
        "cgroup": cgroup,
        "in_container": Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()
        or any(m in (cgroup or "") for m in markers),
    }


def slurm_facts() -> dict[str, Any]:
    try:
        from llem.environment.cluster import slurm_facts as facts

        return facts()
    except Exception:
        # the cluster module may be absent in an older checkout; the env vars carry the same facts
        return {k.lower(): v for k, v in os.environ.items() if k.startswith("SLURM")}


def snapshot(devices) -> dict:
    from llem._version import __version__

    errors: list[str] = []
    gpus: list[dict] = []
    driver = cuda_driver = None
    simulated_nvml = False
    if devices:
        from llem.devices.nvml import nvml_module

        nv = nvml_module()
        try:
            driver = _str(nv.nvmlSystemGetDriverVersion())
        except Exception as err:
            errors.append(f"driver: {type(err).__name__}")
        try:
            v = nv.nvmlSystemGetCudaDriverVersion()
            cuda_driver = f"{v // 1000}.{(v % 1000) // 10}"
        except Exception as err:
            errors.append(f"cuda driver: {type(err).__name__}")
        gpus = [gpu_facts(nv, d, errors) for d in devices]
        if getattr(nv, "is_simulated", False):
            simulated_nvml = True
            errors.append("GPU facts come from llem's simulated NVML (LLEM_SIMULATED_NVML), a test double")
    torch_cuda = None
    if "torch" in sys.modules:  # never import torch just to snapshot (seconds, and CUDA init)
        torch_cuda = getattr(sys.modules["torch"].version, "cuda", None)
    uname = platform.uname()
    return {
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "os": platform.platform(),
        "kernel": uname.release,
        "hostname": uname.node,
        "boot_id": boot_id(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gib": _ram_gib(),
        "packages": {"llem": __version__, **{p: _version(p) for p in PACKAGES}},
        "driver_version": driver,
        "cuda_driver_version": cuda_driver,
        "torch_cuda_version": torch_cuda,
        "gpus": gpus,
        "gpu_unavailable_reason": devices.unavailable_reason,
        # true when the GPU facts and counters came from llem's NVML test double: such results are synthetic
        "simulated_nvml": simulated_nvml,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "container": container_facts(),
        "slurm": slurm_facts(),
        "errors": errors,
    }
