"""Idle baseline power per GPU, measured before the model loads, cached per GPU UUID.

The baseline window is idle, so both of its edges can wait for a counter step: the opening
edge as in every window, the closing edge too (``meter.end(align=True)``), which leaves no
quantisation in the baseline at all. ``energy_adjusted_j = energy_j - baseline_power_w x duration``
is always reported beside ``energy_j``, never alone.

Cache: one JSON file (``<cache_dir>/baseline.json``, default ``~/.cache/llem``) maps
``<meter>:<GPU UUID>`` to the power, when and how long it was measured. An entry is reused for
``cache_ttl_s`` seconds (0 disables the cache). Idle power drifts with temperature and with
other tenants, so the TTL is an hour by default, not forever.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

CACHE_FILE = "baseline.json"


@dataclass
class Baseline:
    power_w: dict = field(default_factory=dict)  # uuid -> W
    duration_s: float = 0.0
    cached: bool = False
    measured_at: dict = field(default_factory=dict)  # uuid -> unix time of the measurement
    cache_path: Optional[str] = None
    meter: str = ""

    @property
    def total_power_w(self) -> Optional[float]:
        if not self.power_w or any(v is None for v in self.power_w.values()):
            return None
        return sum(self.power_w.values())

    def describe(self) -> dict:
        now = time.time()
        return {"enabled": True, "power_w": self.power_w, "total_power_w": self.total_power_w,
                "duration_s": self.duration_s, "cached": self.cached, "meter": self.meter,
                "age_s": {u: round(now - t, 1) for u, t in self.measured_at.items()},
                "cache_path": self.cache_path,
                "method": "meter window over an idle period before the model loads, both edges aligned "
                          "to counter steps where the meter has them"}


def cache_path(cache_dir: Optional[str]) -> Path:
    base = Path(cache_dir).expanduser() if cache_dir else Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "llem"
    return base / CACHE_FILE


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _lock(path: Path):
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=30)


def measure_baseline(meter, devices, cfg, *, now: Optional[float] = None) -> Baseline:
    """Per-GPU idle power from the cache when every GPU has a fresh entry, else measured."""
    now = time.time() if now is None else now
    path = cache_path(cfg.cache_dir)
    keys = {d.uuid: f"{meter.name}:{d.uuid}" for d in devices}
    if cfg.cache_ttl_s > 0:
        entries = _load(path)
        hits = {u: entries.get(k) for u, k in keys.items()}
        if hits and all(e and now - e["measured_at"] <= cfg.cache_ttl_s and e.get("power_w") is not None
                        for e in hits.values()):
            return Baseline(power_w={u: e["power_w"] for u, e in hits.items()},
                            duration_s=min(e["duration_s"] for e in hits.values()), cached=True,
                            measured_at={u: e["measured_at"] for u, e in hits.items()}, cache_path=str(path),
                            meter=meter.name)
    h = meter.begin()
    time.sleep(cfg.duration_s)
    r = meter.end(h, align=True)
    power = {d.uuid: (d.energy_j / r.duration_s if d.energy_j is not None and r.duration_s > 0 else None)
             for d in r.per_device}
    base = Baseline(power_w=power, duration_s=r.duration_s, measured_at={u: now for u in power}, meter=meter.name)
    if cfg.cache_ttl_s > 0 and all(v is not None for v in power.values()):
        try:
            with _lock(path):
                entries = _load(path)
                for u, p in power.items():
                    entries[keys[u]] = {"power_w": p, "measured_at": now, "duration_s": r.duration_s}
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(entries, indent=2))
                os.replace(tmp, path)
            base.cache_path = str(path)
        except OSError:
            pass  # a read-only home must not fail the measurement; the next run measures again
    return base
