"""The meter interface: ``begin()`` / ``end()`` windows, nothing about models.

A meter returns energy per GPU (and CPU/DRAM where it can read them), says where the number
came from (``source``), how fine it is (``resolution_j``, ``update_period_s``) and whether it is
an estimate. A meter that cannot read energy returns ``None`` values, never 0.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Optional


class MeterUnavailable(Exception):
    """The meter cannot run on this machine; the message says why."""


@dataclass
class DeviceReading:
    index: int
    uuid: Optional[str]
    name: Optional[str]
    energy_j: Optional[float]


@dataclass
class WindowReading:
    start_time: float  # time.perf_counter() at begin
    end_time: float
    per_device: list[DeviceReading] = field(default_factory=list)
    cpu_energy_j: Optional[float] = None
    dram_energy_j: Optional[float] = None
    #: a GPU total from a meter that cannot split it per device (CodeCarbon)
    gpu_total_j: Optional[float] = None
    #: "gpu": energy_j is the GPUs the job uses; "host": CPU + RAM (a CPU-only run's estimate)
    scope: str = "gpu"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.end_time - self.start_time

    @property
    def energy_j(self) -> Optional[float]:
        """GPU energy summed over the devices the job uses; None if any device is unread.

        A reading with ``scope == "host"`` (no GPU in the job) reports CPU + RAM instead."""
        if self.scope == "host":
            if self.cpu_energy_j is None:
                return None
            return self.cpu_energy_j + (self.dram_energy_j or 0.0)
        if self.per_device and all(d.energy_j is not None for d in self.per_device):
            return sum(d.energy_j for d in self.per_device)
        return self.gpu_total_j


class Meter(ABC):
    """Base class for energy meters. Subclasses never see models or backends."""

    name: str = "meter"
    source: str = ""
    estimated: bool = False
    #: Whether the meter reads GPU energy (idle baseline is only meaningful then).
    measures_gpu: bool = True
    #: A limitation every result measured with this meter must carry as a warning.
    caveat: Optional[str] = None

    def __init__(self, devices) -> None:
        self.devices = devices

    @abstractmethod
    def begin(self) -> Any:
        """Open a window and return its handle. Called outside the measured work."""

    @abstractmethod
    def end(self, handle: Any, *, align: bool = False) -> WindowReading:
        """Close the window opened by ``begin`` and return its energy.

        ``align=True`` lets a counter meter wait for the next counter update before closing,
        which removes the closing edge's quantisation; only for idle windows (the baseline),
        since the wait would add idle time to a measured workload window."""

    def update_period_s(self) -> Optional[float]:
        """How often the underlying reading changes (seconds), if known."""
        return None

    def edge_uncertainty_s(self) -> Optional[float]:
        """Seconds of energy the window edges may miss or add, in total (both edges).

        The relative quantisation bound of a window is ``edge_uncertainty_s / duration``
        when power is steady (docs/measurement.md derives it). None: not applicable."""
        return None

    def resolution_j(self) -> Optional[float]:
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "meter": self.name,
            "source": self.source,
            "estimated": self.estimated,
            "update_period_s": self.update_period_s(),
            "edge_uncertainty_s": self.edge_uncertainty_s(),
            "resolution_j": self.resolution_j(),
        }

    def close(self) -> None:
        pass


class NoMeter(Meter):
    """The null meter: time only, energy not measured."""

    name = "none"
    source = "none"
    measures_gpu = False

    def __init__(self, devices=None, reason: str = "no energy meter selected (energy=none)") -> None:
        super().__init__(devices)
        self.reason = reason

    def begin(self) -> float:
        return time.perf_counter()

    def end(self, handle: float, *, align: bool = False) -> WindowReading:
        return WindowReading(start_time=handle, end_time=time.perf_counter())
