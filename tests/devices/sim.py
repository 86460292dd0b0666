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
