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
    settle: dict = field(default_factory=dict)

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
                "cache_path": self.cache_path, "settle": self.settle,
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
    settle = wait_until_idle(devices, getattr(cfg, "settle_max_s", 0.0))
    h = meter.begin()
    time.sleep(cfg.duration_s)
    r = meter.end(h, align=True)
    power = {d.uuid: (d.energy_j / r.duration_s if d.energy_j is not None and r.duration_s > 0 else None)
             for d in r.per_device}
    base = Baseline(power_w=power, duration_s=r.duration_s, measured_at={u: now for u in power}, meter=meter.name,
                    settle=settle)
    # an unsettled baseline is reported (with a warning) but never cached for later runs
    if cfg.cache_ttl_s > 0 and all(v is not None for v in power.values()) and settle.get("settled", True):
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


def wait_until_idle(devices, max_s: float, *, interval_s: float = 0.1, span_s: float = 1.0,
                    tol_w: float = 1.0, tol_frac: float = 0.02) -> dict:
    """Poll instantaneous power until it stops falling: the mean of the last ``span_s`` is within
    max(tol_w, tol_frac) of the mean of the ``span_s`` before it, on every GPU.

    Returns what happened, for the methodology: ``settled`` (None when power is unreadable),
    seconds waited, and the last power seen per GPU.
    """
    gpus = list(devices)
    if max_s <= 0 or not gpus:
        return {"settled": None, "waited_s": 0.0, "reason": "no settle check" if gpus else "no GPU"}
    try:
        from llem.devices.nvml import nvml_module

        nv = nvml_module()
    except Exception as err:  # pragma: no cover - NVML vanished after device resolution
        return {"settled": None, "waited_s": 0.0, "reason": f"NVML unavailable: {err}"}
    n = max(2, int(round(span_s / interval_s)))
    hist: dict = {d.uuid: [] for d in gpus}
    t0 = time.perf_counter()
    while True:
        try:
            for d in gpus:
                hist[d.uuid].append(nv.nvmlDeviceGetPowerUsage(d.handle) / 1000.0)
        except Exception as err:
            return {"settled": None, "waited_s": time.perf_counter() - t0, "reason": f"power unreadable: {err}"}
        waited = time.perf_counter() - t0
        if all(len(v) >= 2 * n for v in hist.values()):
            ok = True
            for v in hist.values():
                prev = sum(v[-2 * n:-n]) / n
                last = sum(v[-n:]) / n
                if prev - last > max(tol_w, tol_frac * prev):
                    ok = False
            if ok:
                return {"settled": True, "waited_s": round(waited, 2),
                        "last_power_w": {u: round(sum(v[-n:]) / n, 2) for u, v in hist.items()}}
        if waited >= max_s:
            return {"settled": False, "waited_s": round(waited, 2),
                    "last_power_w": {u: round(v[-1], 2) for u, v in hist.items()},
                    "reason": f"power still falling after {max_s:g} s"}
        time.sleep(interval_s)
