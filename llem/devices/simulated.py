"""Simulated NVML: a *test double* for machines without a GPU.

It stands in for ``pynvml`` (same function names, same units: mW, mJ, bytes, MHz) so the whole
measurement path (device mapping, meters, baseline, sampler, warnings, environment) runs on a
CPU-only machine, also in CLI subprocesses (``LLEM_SIMULATED_NVML=<path to JSON spec>``).

It is deterministic given the clock: power follows a scripted profile in seconds since the
simulation started (``nvmlInit``), and the energy counter is the exact integral of that profile,
published only every ``counter_period_ms`` like the H100's ~100 ms counter. Tests may pass their
own clock to drive time without sleeping.

Spec (JSON), every GPU key optional::

    {"driver_version": "580.159.04", "cuda_driver_version": 13000,
     "gpus": [{"uuid": "GPU-...", "name": "...", "memory_total_mib": 81559,
               "power_w": 75, "power_profile": [[0, 75], [3.0, 300]],
               "counter_period_ms": 100, "counter_phase_ms": 0, "supports_energy_counter": true,
               "power_limit_w": 700, "default_power_limit_w": 700, "persistence": true,
               "mig": false, "ecc": true, "compute_capability": [9, 0],
               "temperature_c": 35, "temperature_slope_c_per_s": 0, "sm_clock_mhz": 1980,
               "max_sm_clock_mhz": 1980, "mem_clock_mhz": 2619, "memory_used_mib": 500,
               "utilization_pct": 0, "throttle_reasons": 0,
               "processes": [{"pid": 1234, "used_memory_mib": 100}]}]}
"""
from __future__ import annotations

import bisect
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

# constants with pynvml's values, so code written against pynvml runs unchanged
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_FEATURE_DISABLED = 0
NVML_FEATURE_ENABLED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_LIBRARY_NOT_FOUND = 12


class NVMLError(Exception):
    def __init__(self, value: int = 999, msg: str = "simulated NVML error") -> None:
        super().__init__(msg)
        self.value = value


class NVMLError_NotSupported(NVMLError):
    def __init__(self, msg: str = "Not Supported") -> None:
        super().__init__(NVML_ERROR_NOT_SUPPORTED, msg)


class NVMLError_LibraryNotFound(NVMLError):
    def __init__(self, msg: str = "NVML Shared Library Not Found") -> None:
        super().__init__(NVML_ERROR_LIBRARY_NOT_FOUND, msg)


@dataclass
class _Memory:
    total: int
    used: int
    free: int


@dataclass
class _Utilization:
    gpu: int
    memory: int


@dataclass
class _Process:
    pid: int
    usedGpuMemory: int


class _Gpu:
    """One simulated GPU. Power is piecewise constant between profile points."""

    def __init__(self, index: int, spec: dict[str, Any]) -> None:
        self.index = index
        self.uuid = spec.get("uuid", f"GPU-00000000-0000-0000-0000-{index:012d}")
        self.name = spec.get("name", "Simulated GPU")
        profile = spec.get("power_profile") or [[0.0, float(spec.get("power_w", 75.0))]]
        profile = sorted((float(t), float(w)) for t, w in profile)
        if profile[0][0] > 0:
            profile.insert(0, (0.0, profile[0][1]))
        self.times_s = [t for t, _ in profile]
        self.powers_w = [w for _, w in profile]
        # cumulative energy at each profile point, for an O(log n) exact integral
        self.cum_j = [0.0]
        for k in range(1, len(profile)):
            self.cum_j.append(self.cum_j[-1] + self.powers_w[k - 1] * (self.times_s[k] - self.times_s[k - 1]))
        self.period_s = float(spec.get("counter_period_ms", 100)) / 1e3
        self.phase_s = float(spec.get("counter_phase_ms", 0)) / 1e3
        self.supports_counter = bool(spec.get("supports_energy_counter", True))
        self.start_energy_mj = int(spec.get("counter_start_mj", 123_456_789))
        self.memory_total_mib = int(spec.get("memory_total_mib", 81559))
        self.memory_used_mib = int(spec.get("memory_used_mib", 500))
        self.power_limit_w = float(spec.get("power_limit_w", 700))
        self.default_power_limit_w = float(spec.get("default_power_limit_w", self.power_limit_w))
        self.persistence = bool(spec.get("persistence", True))
        self.mig = bool(spec.get("mig", False))
        self.ecc = bool(spec.get("ecc", True))
        self.cc = tuple(spec.get("compute_capability", [9, 0]))
        self.temperature_c = float(spec.get("temperature_c", 35))
        self.temp_slope = float(spec.get("temperature_slope_c_per_s", 0.0))
        self.sm_clock_mhz = int(spec.get("sm_clock_mhz", 1980))
        self.max_sm_clock_mhz = int(spec.get("max_sm_clock_mhz", self.sm_clock_mhz))
        self.mem_clock_mhz = int(spec.get("mem_clock_mhz", 2619))
        self.utilization_pct = int(spec.get("utilization_pct", 0))
        self.throttle_reasons = int(spec.get("throttle_reasons", 0))
        self.processes = [_Process(int(p["pid"]), int(p.get("used_memory_mib", 0)) * 2**20)
                          for p in spec.get("processes", [])]

    def power_at(self, t_s: float) -> float:
        k = max(0, bisect.bisect_right(self.times_s, t_s) - 1)
        return self.powers_w[k]

    def energy_at(self, t_s: float) -> float:
        """Exact integral of the profile from 0 to ``t_s`` (J)."""
        if t_s <= 0:
            return 0.0
        k = max(0, bisect.bisect_right(self.times_s, t_s) - 1)
        return self.cum_j[k] + self.powers_w[k] * (t_s - self.times_s[k])

    def counter_mj(self, t_s: float) -> int:
        """The published counter: the integral up to the last update tick."""
        tick = math.floor((t_s - self.phase_s) / self.period_s) * self.period_s + self.phase_s
        return self.start_energy_mj + int(self.energy_at(max(tick, 0.0)) * 1e3)


class SimulatedNvml:
    """The module-like object ``llem.devices.nvml.nvml_module()`` returns under simulation."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_CLOCK_GRAPHICS = NVML_CLOCK_GRAPHICS
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_CLOCK_MEM = NVML_CLOCK_MEM
    NVML_FEATURE_ENABLED = NVML_FEATURE_ENABLED
    NVML_FEATURE_DISABLED = NVML_FEATURE_DISABLED
    is_simulated = True

    def __init__(self, spec: dict[str, Any], clock: Callable[[], float] = time.perf_counter) -> None:
        self.spec = spec
        self.clock = clock
        self.gpus = [_Gpu(i, g) for i, g in enumerate(spec.get("gpus", []))]
        self.driver_version = spec.get("driver_version", "580.159.04")
        self.cuda_driver_version = int(spec.get("cuda_driver_version", 13000))
        self.fail_init = bool(spec.get("fail_init", False))
        self._t0: Optional[float] = None

    # -- time --------------------------------------------------------------------------------
    def now_s(self) -> float:
        """Seconds since the simulation started (first nvmlInit)."""
        if self._t0 is None:
            self._t0 = self.clock()
        return self.clock() - self._t0

    # -- pynvml surface ------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        if self.fail_init:
            raise NVMLError_LibraryNotFound()
        self.now_s()

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self.cuda_driver_version

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> _Gpu:
        if not 0 <= i < len(self.gpus):
            raise NVMLError(2, "Invalid Argument")
        return self.gpus[i]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> _Gpu:
        for g in self.gpus:
            if g.uuid == uuid:
                return g
        raise NVMLError(6, "Not Found")

    def nvmlDeviceGetIndex(self, h: _Gpu) -> int:
        return h.index

    def nvmlDeviceGetUUID(self, h: _Gpu) -> str:
        return h.uuid

    def nvmlDeviceGetName(self, h: _Gpu) -> str:
        return h.name

    def nvmlDeviceGetTotalEnergyConsumption(self, h: _Gpu) -> int:
        if not h.supports_counter:
            raise NVMLError_NotSupported()
        return h.counter_mj(self.now_s())

    def nvmlDeviceGetPowerUsage(self, h: _Gpu) -> int:
        return int(round(h.power_at(self.now_s()) * 1e3))

    def nvmlDeviceGetEnforcedPowerLimit(self, h: _Gpu) -> int:
        return int(h.power_limit_w * 1e3)

    def nvmlDeviceGetPowerManagementLimit(self, h: _Gpu) -> int:
        return int(h.power_limit_w * 1e3)

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h: _Gpu) -> int:
        return int(h.default_power_limit_w * 1e3)

    def nvmlDeviceGetPersistenceMode(self, h: _Gpu) -> int:
        return NVML_FEATURE_ENABLED if h.persistence else NVML_FEATURE_DISABLED

    def nvmlDeviceGetMigMode(self, h: _Gpu) -> tuple[int, int]:
        m = NVML_FEATURE_ENABLED if h.mig else NVML_FEATURE_DISABLED
        return m, m

    def nvmlDeviceGetEccMode(self, h: _Gpu) -> tuple[int, int]:
        m = NVML_FEATURE_ENABLED if h.ecc else NVML_FEATURE_DISABLED
        return m, m

    def nvmlDeviceGetCudaComputeCapability(self, h: _Gpu) -> tuple[int, int]:
        return int(h.cc[0]), int(h.cc[1])

    def nvmlDeviceGetMemoryInfo(self, h: _Gpu) -> _Memory:
        total, used = h.memory_total_mib * 2**20, h.memory_used_mib * 2**20
        return _Memory(total=total, used=used, free=total - used)

    def nvmlDeviceGetTemperature(self, h: _Gpu, sensor: int = NVML_TEMPERATURE_GPU) -> int:
        return int(round(h.temperature_c + h.temp_slope * self.now_s()))

    def nvmlDeviceGetClockInfo(self, h: _Gpu, clock_type: int) -> int:
        return h.mem_clock_mhz if clock_type == NVML_CLOCK_MEM else h.sm_clock_mhz

    def nvmlDeviceGetMaxClockInfo(self, h: _Gpu, clock_type: int) -> int:
        return h.mem_clock_mhz if clock_type == NVML_CLOCK_MEM else h.max_sm_clock_mhz

    def nvmlDeviceGetUtilizationRates(self, h: _Gpu) -> _Utilization:
        return _Utilization(gpu=h.utilization_pct, memory=h.utilization_pct // 2)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: _Gpu) -> int:
        return h.throttle_reasons

    nvmlDeviceGetCurrentClocksThrottleReasons = nvmlDeviceGetCurrentClocksEventReasons

    def nvmlDeviceGetComputeRunningProcesses(self, h: _Gpu) -> list[_Process]:
        return list(h.processes)


_cache: dict[str, SimulatedNvml] = {}


def load(path: str) -> SimulatedNvml:
    """One simulation per spec file and process, so every caller sees the same clock origin."""
    key = str(Path(path).expanduser().resolve())
    if key not in _cache:
        _cache[key] = SimulatedNvml(json.loads(Path(key).read_text()))
    return _cache[key]


def write_spec(path: str | Path, gpus: list[dict[str, Any]], **system: Any) -> Path:
    """Write a spec file (for tests and benchmarks)."""
    path = Path(path)
    path.write_text(json.dumps({**system, "gpus": gpus}, indent=2))
    return path
