"""Helpers that switch llem onto its simulated NVML (a test double: no GPU here)."""
from __future__ import annotations

from llem.devices import simulated

UUIDS = [f"GPU-{k}{k}{k}{k}{k}{k}{k}{k}-0000-4000-8000-00000000000{k}" for k in range(1, 5)]


def gpu(k: int = 0, **kw) -> dict:
    spec = {"uuid": UUIDS[k], "name": "Simulated H100 80GB HBM3", "power_w": 100.0, "counter_period_ms": 20}
    spec.update(kw)
    return spec


def use_sim(monkeypatch, tmp_path, gpus: list[dict], **system) -> str:
    """Write a spec, point LLEM_SIMULATED_NVML at it (subprocesses inherit it) and start a
    fresh simulation clock for this test."""
    path = simulated.write_spec(tmp_path / "nvml.json", gpus, **system)
    monkeypatch.setenv("LLEM_SIMULATED_NVML", str(path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    simulated._cache.clear()
    return str(path)


class VirtualClock:
    """A test clock on which time passes only when the code under test sleeps.

    The simulated NVML derives its counter and power from a clock; given this one, and the
    modules under test given it in place of ``time``, a reading depends only on the program's
    own steps, never on how fast the host runs them or how often it is interrupted."""

    def __init__(self, t0: float = 1000.0) -> None:
        self.t = t0

    def perf_counter(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


def use_virtual_clock(monkeypatch, spec_path: str, *modules) -> VirtualClock:
    """Run the simulation of ``spec_path`` (from :func:`use_sim`) and ``modules`` on one
    :class:`VirtualClock`. Wall-clock dates (``time.time``) stay real."""
    import time
    import types

    clock = VirtualClock()
    simulated.load(spec_path).clock = clock.perf_counter
    fake = types.SimpleNamespace(perf_counter=clock.perf_counter, monotonic=clock.perf_counter, sleep=clock.sleep,
                                 time=time.time)
    for m in modules:
        monkeypatch.setattr(m, "time", fake)
    return clock
