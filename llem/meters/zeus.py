"""Zeus ``ZeusMonitor`` (optional extra ``llenergymeasure[zeus]``).

On Volta and later Zeus reads the same NVML energy counter; llem still aligns the opening edge
to a counter step through its own NVML reading, so Zeus windows carry the same bound as the
``nvml`` meter. Zeus without a GPU returns ``gpu_energy={}``: that is "no data", never 0.
Importing ``zeus.monitor`` costs ~0.9 s; it happens when the meter is built, before any window.
"""
from __future__ import annotations

import itertools
import logging
import os
import time
from typing import Any, Optional

from llem.meters.base import DeviceReading, Meter, MeterUnavailable, WindowReading


def reading_from_measurement(m, devices, t_start: float, t_end: float, zeus_indices: list[int]) -> WindowReading:
    """A Zeus ``Measurement`` -> ``WindowReading``; a device missing from ``gpu_energy`` is None."""
    gpu = m.gpu_energy or {}
    per = [DeviceReading(index=d.index, uuid=d.uuid, name=d.name, energy_j=gpu.get(zi))
           for d, zi in zip(devices, zeus_indices)]
    cpu = sum(m.cpu_energy.values()) if m.cpu_energy else None
    dram = sum(m.dram_energy.values()) if m.dram_energy else None
    return WindowReading(start_time=t_start, end_time=t_end, per_device=per, cpu_energy_j=cpu,
                         dram_energy_j=dram, extra={"zeus_time_s": m.time})


class ZeusMeter(Meter):
    name = "zeus"
    source = "Zeus ZeusMonitor (NVML energy counter on Volta and later)"

    def __init__(self, devices) -> None:
        super().__init__(devices)
        if not devices:
            # checked before importing zeus, so `auto` on a GPU-less machine pays nothing
            raise MeterUnavailable(f"no GPU visible ({devices.unavailable_reason or 'none found'})")
        try:
            from zeus.monitor import ZeusMonitor
        except ImportError as err:
            from llem.meters.install import pip_install_hint

            raise MeterUnavailable(f"zeus is not installed ({err}); {pip_install_hint('zeus')}") from None
        logging.getLogger("zeus").setLevel(logging.WARNING)
        # Zeus reads CUDA_VISIBLE_DEVICES as integer indices only (no UUIDs, and CUDA's order);
        # give it the NVML indices llem resolved, so both count exactly the same GPUs.
        old = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(d.index) for d in devices)
        try:
            self.monitor = ZeusMonitor(gpu_indices=list(range(len(devices))))
        except Exception as err:
            raise MeterUnavailable(f"Zeus sees no usable GPU: ZeusMonitor raised {type(err).__name__}: {err}") from None
        finally:
            if old is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = old
        if len(self.monitor.gpus) == 0:
            raise MeterUnavailable("Zeus sees no usable GPU (its windows would return gpu_energy={}: no data)")
        self._check_uuids()
        self.zeus_indices = list(range(len(devices)))
        self._keys = itertools.count()
        self._counter = None
        try:
            from llem.meters.nvml import NvmlCounterMeter

            # used only to align the opening edge to a counter step (Zeus itself does not)
            self._counter = NvmlCounterMeter(devices)
        except MeterUnavailable:
            pass

    def _check_uuids(self) -> None:
        try:
            import pynvml

            theirs = [pynvml.nvmlDeviceGetUUID(g.handle) for g in self.monitor.gpus.gpus]
        except Exception:
            return
        theirs = [u.decode() if isinstance(u, bytes) else u for u in theirs]
        ours = [d.uuid for d in self.devices]
        if theirs != ours:
            raise MeterUnavailable(f"Zeus maps different GPUs ({theirs}) than llem ({ours})")

    def update_period_s(self) -> Optional[float]:
        return self._counter.update_period_s() if self._counter else None

    def edge_uncertainty_s(self) -> Optional[float]:
        return self._counter.edge_uncertainty_s() if self._counter else None

    def resolution_j(self) -> Optional[float]:
        return 1e-3

    def begin(self) -> tuple[str, float]:
        if self._counter is not None:
            self._counter._align()
        key = f"llem-{next(self._keys)}"
        # the harness synchronises the device at both edges; Zeus's own sync would add a
        # second torch call inside the window
        self.monitor.begin_window(key, sync_execution=False)
        return key, time.perf_counter()

    def end(self, handle, *, align: bool = False) -> WindowReading:
        if align and self._counter is not None:
            self._counter._align()
        key, t_start = handle
        m = self.monitor.end_window(key, sync_execution=False)
        return reading_from_measurement(m, self.devices, t_start, time.perf_counter(), self.zeus_indices)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["opening_edge_aligned_to_counter_step"] = self._counter is not None
        return d
