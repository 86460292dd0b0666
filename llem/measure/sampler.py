"""Power / temperature / clock sampler: a thread (or, with ``energy.sampler=process``, a child
process) beside the measured windows.

Every ``interval_s`` (default 0.1 s, the H100 counter's step) it reads, per GPU the job uses:
power, temperature, SM clock, memory used, utilisation and throttle reasons. The rows go to
``timeseries.parquet`` next to result.json, each tagged with the measured cycle it fell in
(``cycle`` = -1 between windows); rows inside the quality evaluation's windows carry
``phase`` = "quality" (null elsewhere). The thread only reads NVML; it never touches the workload.
Its cost to the workload is measured by ``benchmarks/cpu_micro/overhead.py``.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Optional

from llem.devices.nvml import nvml_module

COLUMNS = ["t_s", "cycle", "gpu_index", "uuid", "power_w", "temperature_c", "sm_clock_mhz", "memory_used_mib",
           "utilization_gpu_pct", "utilization_memory_pct", "throttle_reasons", "phase"]

# nvmlClocksEventReason* bits that mean the clocks were held down by power or heat; the idle
# (0x1), application-clock (0x2), sync-boost (0x10) and display (0x100) bits are not throttling.
THROTTLE_BITS = {0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal", 0x40: "hw_thermal",
                 0x80: "hw_power_brake"}


def throttle_names(mask: int) -> list[str]:
    return [n for b, n in THROTTLE_BITS.items() if mask & b]


class Sampler:
    mode = "thread"

    def __init__(self, devices, interval_s: Optional[float], t0: float) -> None:
        self.devices = devices
        self.interval_s = interval_s
        self.t0 = t0
        self.rows: list[dict] = []
        self.errors: list[str] = []
        self.cpu_s = 0.0
        self.loop_samples = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.nv = None
        if devices and interval_s:
            try:
                self.nv = nvml_module()
            except Exception as err:
                self.errors.append(f"{type(err).__name__}: {err}")

    @property
    def enabled(self) -> bool:
        return self.nv is not None

    def _safe(self, fn, *args):
        try:
            return fn(*args)
        except Exception:
            return None

    def sample(self) -> None:
        nv = self.nv
        reasons = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
            getattr(nv, "nvmlDeviceGetCurrentClocksThrottleReasons")
        t = time.perf_counter() - self.t0
        for d in self.devices:
            h = d.handle
            p = self._safe(nv.nvmlDeviceGetPowerUsage, h)
            mem = self._safe(nv.nvmlDeviceGetMemoryInfo, h)
            util = self._safe(nv.nvmlDeviceGetUtilizationRates, h)
            self.rows.append({
                "t_s": t, "cycle": -1, "gpu_index": d.index, "uuid": d.uuid,
                "power_w": p / 1e3 if p is not None else None,
                "temperature_c": self._safe(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
                "sm_clock_mhz": self._safe(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
                "memory_used_mib": mem.used / 2**20 if mem is not None else None,
                "utilization_gpu_pct": util.gpu if util is not None else None,
                "utilization_memory_pct": util.memory if util is not None else None,
                "throttle_reasons": self._safe(reasons, h),
                "phase": None,
            })

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            c0 = time.thread_time()
            try:
                self.sample()
            except Exception as err:  # a sampler failure must never abort the measurement
                self.errors.append(f"{type(err).__name__}: {err}")
                return
            # the thread's own CPU time: its cost to the workload, independent of host load
            self.cpu_s += time.thread_time() - c0
            self.loop_samples += 1

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._stop.clear()  # restartable: a stopped sampler may be started again
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="llem-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.sample()

    def has_data(self) -> bool:
        return bool(self.rows)

    def tag_windows(self, windows: list[tuple[int, float, float]]) -> None:
        """Mark rows inside each (cycle index, start_s, end_s) window, times from t0."""
        for r in self.rows:
            for idx, a, b in windows:
                if a <= r["t_s"] <= b:
                    r["cycle"] = idx
                    break

    def tag_phase(self, phase: str, spans: list[tuple[float, float]]) -> None:
        """Mark rows inside any (start_s, end_s) span, times from t0, with ``phase`` (e.g. "quality")."""
        for r in self.rows:
            if any(a <= r["t_s"] <= b for a, b in spans):
                r["phase"] = phase

    def in_windows(self) -> list[dict]:
        return [r for r in self.rows if r["cycle"] >= 0]

    def describe(self) -> dict:
        per = self.cpu_s / self.loop_samples if self.loop_samples else None
        return {"interval_s": self.interval_s, "mode": self.mode, "enabled": self.enabled, "rows": len(self.rows),
                "errors": self.errors[:5], "columns": COLUMNS, "thread_cpu_s": self.cpu_s,
                "cpu_s_per_sample": per,
                "share_of_one_core": per / self.interval_s if per is not None and self.interval_s else None}

    def write_parquet(self, path):
        import pandas as pd

        from llem.fsio import write_file_atomic

        # atomic like result.json: a job killed mid-write leaves no half-written timeseries
        df = pd.DataFrame(self.rows, columns=COLUMNS)
        return write_file_atomic(Path(path), lambda tmp: df.to_parquet(tmp))


class ProcessSampler(Sampler):
    """The same readings, taken by a child process (``energy.sampler=process``).

    A sampler thread shares the interpreter lock with the workload's Python thread: HF
    ``generate`` runs Python for every decode step, and each NVML call hands the lock back and
    forth. A child process cannot touch that lock; it costs a process start (outside the
    windows) and one pipe transfer at ``stop()``. ``time.perf_counter`` is the system-wide
    monotonic clock on Linux, so the child's timestamps share the parent's ``t0``.
    """

    mode = "process"

    def __init__(self, devices, interval_s: Optional[float], t0: float) -> None:
        super().__init__(devices, interval_s, t0)
        self._proc = None
        self._conn = None
        self._stop_evt = None

    def start(self) -> None:
        if not self.enabled or self._proc is not None:
            return
        import multiprocessing as mp

        # spawn, not fork: the parent holds CUDA state and torch's threads
        ctx = mp.get_context("spawn")
        self._stop_evt, ready = ctx.Event(), ctx.Event()
        self._conn, child_conn = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_sample_in_child, name="llem-sampler", daemon=True,
                                 args=([d.uuid for d in self.devices], self.interval_s, self.t0,
                                       self._stop_evt, ready, child_conn))
        self._proc.start()
        child_conn.close()
        # the first window must not open before the first sample is taken
        if not ready.wait(START_TIMEOUT_S):
            self.errors.append(f"sampler process not ready after {START_TIMEOUT_S:g} s")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._stop_evt.set()
        try:
            if self._conn.poll(START_TIMEOUT_S):
                rows, errors, cpu_s, n = self._conn.recv()
                self.rows.extend(rows)
                self.errors.extend(errors)
                self.cpu_s += cpu_s
                self.loop_samples += n
            else:
                self.errors.append("sampler process sent no rows")
        except (EOFError, OSError) as err:
            self.errors.append(f"sampler process: {type(err).__name__}: {err}")
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
        self._proc = self._conn = None
        self.rows.sort(key=lambda r: r["t_s"])


#: how long a sampler process may take to start and to hand over its rows
START_TIMEOUT_S = 60.0


def _sample_in_child(uuids, interval_s, t0, stop_evt, ready, conn) -> None:
    rows: list = []
    errors: list = []
    cpu_s, n = 0.0, 0
    try:
        from llem.devices import DeviceSet, resolve_devices

        # the child inherits the environment (CUDA_VISIBLE_DEVICES, a simulated NVML's spec), so
        # it finds the same GPUs; it keeps those the parent measures, by UUID
        found = {d.uuid: d for d in resolve_devices()}
        missing = [u for u in uuids if u not in found]
        if missing:
            errors.append(f"sampler process cannot see GPU(s) {', '.join(missing)}")
        s = Sampler(DeviceSet(gpus=[found[u] for u in uuids if u in found], mapping={}), interval_s, t0)
        if s.enabled:
            # the thread sampler's own loop, run by this process's main thread until the parent's stop
            s._stop = stop_evt
            s.sample()
            ready.set()
            s._loop()
            s.sample()
        rows, cpu_s, n = s.rows, s.cpu_s, s.loop_samples
        errors.extend(s.errors)
    except Exception as err:  # reported to the parent, which records it; never a crash there
        errors.append(f"{type(err).__name__}: {err}")
    finally:
        ready.set()
        conn.send((rows, errors, cpu_s, n))
        conn.close()


def make_sampler(mode: str, devices, interval_s: Optional[float], t0: float) -> Sampler:
    return (ProcessSampler if mode == "process" else Sampler)(devices, interval_s, t0)
