"""Integrated power: a thread polls ``nvmlDeviceGetPowerUsage`` and integrates it (trapezoid).

For GPUs without the energy counter (pre-Volta). It is *integrated power*, not a counter: the
power reading is itself an average that lags fast changes (on an H100, a 5 s burst read 8% low
against the counter; at steady load they agreed within ~0.7%).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Optional

from llem.devices.nvml import nvml_module
from llem.meters.base import DeviceReading, Meter, MeterUnavailable, WindowReading

#: 20 ms: finer than the ~50 ms at which an H100's power reading changes, so no update is
#: missed, and cheap (one NVML call per GPU per poll, in a thread that mostly sleeps).
DEFAULT_POLL_S = 0.02


def integrate_trapezoid(times_s: list[float], powers_w: list[float]) -> float:
    e = 0.0
    for k in range(1, len(times_s)):
        e += 0.5 * (powers_w[k] + powers_w[k - 1]) * (times_s[k] - times_s[k - 1])
    return e


class _Poller(threading.Thread):
    def __init__(self, read, interval_s: float) -> None:
        super().__init__(name="llem-nvml-power", daemon=True)
        self.read = read
        self.interval_s = interval_s
        self.stop_event = threading.Event()
        self.samples: list[tuple[float, list[float]]] = []

    def run(self) -> None:
        while not self.stop_event.wait(self.interval_s):
            self.samples.append((time.perf_counter(), self.read()))


class NvmlPowerMeter(Meter):
    name = "nvml_power"
    source = "integrated power: nvmlDeviceGetPowerUsage polled by a thread, trapezoid rule (not an energy counter)"
    caveat = ("energy is integrated polled power (nvml_power), not the energy counter: it lags fast power "
              "changes and can read several % low on bursty work")

    def __init__(self, devices, *, interval_s: float = DEFAULT_POLL_S) -> None:
        super().__init__(devices)
        if not devices:
            raise MeterUnavailable(f"no GPU visible ({devices.unavailable_reason or 'none found'})")
        self.nv = nvml_module()
        self.interval_s = interval_s
        for d in devices:
            try:
                self.nv.nvmlDeviceGetPowerUsage(d.handle)
            except Exception as err:
                raise MeterUnavailable(f"GPU {d.index} ({d.name}) reports no power: {type(err).__name__}: {err}") from None

    def _read(self) -> list[float]:
        f = self.nv.nvmlDeviceGetPowerUsage
        return [f(d.handle) / 1e3 for d in self.devices]

    def update_period_s(self) -> Optional[float]:
        return self.interval_s

    def edge_uncertainty_s(self) -> Optional[float]:
        # the first and last samples are taken at the edges, but each reading may be up to one
        # poll interval stale: count one interval per edge
        return 2 * self.interval_s

    def begin(self) -> _Poller:
        poller = _Poller(self._read, self.interval_s)
        poller.samples.append((time.perf_counter(), self._read()))
        poller.start()
        return poller

    def end(self, poller: _Poller, *, align: bool = False) -> WindowReading:
        last = (time.perf_counter(), self._read())
        poller.stop_event.set()
        poller.join()
        samples = [s for s in poller.samples if s[0] <= last[0]] + [last]
        times = [t for t, _ in samples]
        per = []
        for k, d in enumerate(self.devices):
            per.append(DeviceReading(index=d.index, uuid=d.uuid, name=d.name,
                                     energy_j=integrate_trapezoid(times, [p[k] for _, p in samples])))
        return WindowReading(start_time=times[0], end_time=times[-1], per_device=per,
                             extra={"power_samples": len(samples)})

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"integrated_power": True, "poll_interval_s": self.interval_s})
        return d
