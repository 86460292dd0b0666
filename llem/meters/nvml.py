"""The NVML total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ, Volta and later).

The counter is published in steps (every ~100 ms on an H100), so a window read at arbitrary
moments can miss up to one step of energy at each edge. This meter detects the step period at
run time and opens each window right after a step (busy-polling the counter, outside the
workload), so only the closing edge is uncertain and the error is one-sided:
bound = period / window at steady power (docs/measurement.md derives it).
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Optional

from llem.devices.nvml import nvml_module
from llem.meters.base import DeviceReading, Meter, MeterUnavailable, WindowReading

#: busy-poll sleep while waiting for a counter step; small against a ~100 ms period, and the
#: wait happens only outside measured work (before a window opens or after an idle window).
POLL_S = 0.0005


def wait_for_step(read, timeout_s: float, poll_s: float = POLL_S) -> tuple[bool, Any, float]:
    """Poll ``read()`` until its value changes. Returns (stepped, new value, perf_counter time)."""
    v0 = read()
    deadline = time.perf_counter() + timeout_s
    while True:
        v = read()
        t = time.perf_counter()
        if v != v0:
            return True, v, t
        if t > deadline:
            return False, v, t
        time.sleep(poll_s)


def detect_period_s(read, steps: int = 4, timeout_s: float = 2.0) -> Optional[float]:
    """Median interval between counter steps, timed by busy-polling (``steps`` intervals).

    Costs about (steps + 1) periods, once per experiment, before the model loads."""
    ok, _, t_prev = wait_for_step(read, timeout_s)
    if not ok:
        return None
    intervals = []
    for _ in range(steps):
        ok, _, t = wait_for_step(read, timeout_s)
        if not ok:
            return None
        intervals.append(t - t_prev)
        t_prev = t
    return statistics.median(intervals)


class NvmlCounterMeter(Meter):
    name = "nvml"
    source = "NVML total energy counter (nvmlDeviceGetTotalEnergyConsumption, mJ)"

    def __init__(self, devices, *, align_edges: bool = True) -> None:
        super().__init__(devices)
        if not devices:
            raise MeterUnavailable(f"no GPU visible ({devices.unavailable_reason or 'none found'})")
        self.nv = nvml_module()
        self.align_edges = align_edges
        for d in devices:
            try:
                self.nv.nvmlDeviceGetTotalEnergyConsumption(d.handle)
            except Exception as err:
                raise MeterUnavailable(f"GPU {d.index} ({d.name}) has no energy counter: "
                                       f"{type(err).__name__}: {err}") from None
        self._period: Optional[float] = None
        self._period_detected = False
        self.aligned_windows = 0
        self.unaligned_windows = 0

    # -- counter ---------------------------------------------------------------------------
    def _read_first(self) -> int:
        return self.nv.nvmlDeviceGetTotalEnergyConsumption(self.devices.gpus[0].handle)

    def _read_all(self) -> list[int]:
        f = self.nv.nvmlDeviceGetTotalEnergyConsumption
        return [f(d.handle) for d in self.devices]

    def update_period_s(self) -> Optional[float]:
        if not self._period_detected:
            self._period = detect_period_s(self._read_first)
            self._period_detected = True
        return self._period

    def edge_uncertainty_s(self) -> Optional[float]:
        # A window read between steps errs by (energy after the last step before the close) -
        # (energy after the last step before the open): within one step either way. Opened
        # just after a step, the second term is ~0, so the error is one-sided (-1 step, 0].
        # Either way the magnitude is at most one period of power (docs/measurement.md).
        return self.update_period_s()

    def resolution_j(self) -> Optional[float]:
        return 1e-3

    def _align(self) -> bool:
        p = self.update_period_s()
        ok, _, _ = wait_for_step(self._read_first, timeout_s=2 * (p or 0.5) + 0.05)
        return ok

    # -- windows ---------------------------------------------------------------------------
    def begin(self) -> tuple[float, list[int]]:
        if self.align_edges:
            if self._align():
                self.aligned_windows += 1
            else:
                self.unaligned_windows += 1
        vals = self._read_all()
        return time.perf_counter(), vals

    def end(self, handle, *, align: bool = False) -> WindowReading:
        if align:
            self._align()
        vals = self._read_all()
        t_end = time.perf_counter()
        t_start, start_vals = handle
        per = [DeviceReading(index=d.index, uuid=d.uuid, name=d.name, energy_j=(v1 - v0) / 1e3)
               for d, v0, v1 in zip(self.devices, start_vals, vals)]
        return WindowReading(start_time=t_start, end_time=t_end, per_device=per)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"opening_edge_aligned_to_counter_step": self.align_edges,
                  "aligned_windows": self.aligned_windows, "unaligned_windows": self.unaligned_windows})
        return d
