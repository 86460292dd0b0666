"""CodeCarbon ``OfflineEmissionsTracker``: estimates, always labelled ``estimated=True``.

Without hardware counters (no RAPL, no GPU) CodeCarbon models CPU power from TDP and CPU load
and RAM as a fixed power (CodeCarbon's documented methodology), so its joules are estimates. On a CPU-only job the reading's
scope is the host (CPU + RAM); its GPU number, when it has one, covers the GPUs given by
``gpu_ids`` as one total. Its tracker start (~3 s) happens when the meter is built.
"""
from __future__ import annotations

import itertools
import logging
import time
from typing import Any

from llem.meters.base import DeviceReading, Meter, MeterUnavailable, WindowReading

KWH_TO_J = 3.6e6


class CodeCarbonMeter(Meter):
    name = "codecarbon"
    source = "CodeCarbon OfflineEmissionsTracker (model-based estimates: TDP x CPU load, fixed RAM power)"
    estimated = True
    measures_gpu = False  # an idle baseline of a TDP model says nothing about this machine

    def __init__(self, devices, *, country_iso_code: str = "USA") -> None:
        super().__init__(devices)
        try:
            import contextlib
            import io

            # codecarbon imports amdsmi, which prints a line about a missing ROCm library on every
            # machine without one: noise in the user's terminal, not a fact about the measurement
            logging.getLogger("codecarbon").setLevel(logging.ERROR)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                from codecarbon import OfflineEmissionsTracker
        except ImportError as err:
            from llem.meters.install import pip_install_hint

            raise MeterUnavailable(f"codecarbon is not installed ({err}); {pip_install_hint('codecarbon')}") from None
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        kw: dict[str, Any] = dict(country_iso_code=country_iso_code, output_methods=[], log_level="error",
                                  allow_multiple_runs=True)
        if devices:
            kw["gpu_ids"] = [d.index for d in devices]
        try:
            self.tracker = OfflineEmissionsTracker(**kw)
            self.tracker.start()
        except Exception as err:
            raise MeterUnavailable(f"CodeCarbon failed to start: {type(err).__name__}: {err}") from None
        self.country_iso_code = country_iso_code
        self._keys = itertools.count()

    def begin(self) -> float:
        self.tracker.start_task(f"llem-{next(self._keys)}")
        return time.perf_counter()

    def end(self, t_start: float, *, align: bool = False) -> WindowReading:
        data = self.tracker.stop_task()
        t_end = time.perf_counter()
        return reading_from_emissions(data, self.devices, t_start, t_end)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["country_iso_code"] = self.country_iso_code
        return d

    def close(self) -> None:
        try:
            self.tracker.stop()
        except Exception:
            pass


def reading_from_emissions(data, devices, t_start: float, t_end: float) -> WindowReading:
    """CodeCarbon ``EmissionsData`` (kWh) -> ``WindowReading`` (J). A GPU-less machine's
    ``gpu_energy == 0`` means "no GPU data", so it becomes None, never 0 J."""
    cpu = data.cpu_energy * KWH_TO_J if data.cpu_energy is not None else None
    ram = data.ram_energy * KWH_TO_J if data.ram_energy is not None else None
    gpu = data.gpu_energy * KWH_TO_J if (devices and data.gpu_energy) else None
    if not devices:
        return WindowReading(start_time=t_start, end_time=t_end, cpu_energy_j=cpu, dram_energy_j=ram, scope="host",
                             extra={"codecarbon_duration_s": data.duration, "ram_is_fixed_power_estimate": True})
    per = [DeviceReading(index=d.index, uuid=d.uuid, name=d.name, energy_j=gpu if len(devices) == 1 else None)
           for d in devices]
    return WindowReading(start_time=t_start, end_time=t_end, per_device=per, cpu_energy_j=cpu, dram_energy_j=ram,
                         gpu_total_j=gpu, extra={"codecarbon_duration_s": data.duration})
