"""Idle baseline power per GPU, measured before the model loads."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Baseline:
    power_w: dict = field(default_factory=dict)  # uuid -> W
    duration_s: float = 0.0
    cached: bool = False

    @property
    def total_power_w(self) -> Optional[float]:
        if not self.power_w or any(v is None for v in self.power_w.values()):
            return None
        return sum(self.power_w.values())

    def describe(self) -> dict:
        return {"enabled": True, "power_w": self.power_w, "duration_s": self.duration_s, "cached": self.cached,
                "method": "meter window over an idle period before the model loads"}


def measure_baseline(meter, devices, cfg) -> Baseline:
    h = meter.begin()
    time.sleep(cfg.duration_s)
    r = meter.end(h)
    power = {d.uuid: (d.energy_j / r.duration_s if d.energy_j is not None and r.duration_s > 0 else None)
             for d in r.per_device}
    return Baseline(power_w=power, duration_s=r.duration_s)
