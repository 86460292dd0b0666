import time

import pytest

from llem.devices import DeviceSet, resolve_devices
from llem.meters.base import MeterUnavailable
from llem.meters.nvml import NvmlCounterMeter, detect_period_s
from tests.devices.sim import UUIDS, gpu, use_sim


def test_detects_the_counter_period_at_run_time(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, counter_period_ms=30)])
    m = NvmlCounterMeter(resolve_devices())
    assert m.update_period_s() == pytest.approx(0.030, rel=0.25)
    assert m.edge_uncertainty_s() == m.update_period_s()


def test_detect_period_gives_none_for_a_frozen_counter():
    assert detect_period_s(lambda: 5, steps=2, timeout_s=0.05) is None


def test_window_energy_within_the_quantisation_bound(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=250.0, counter_period_ms=20)])
    m = NvmlCounterMeter(resolve_devices())
    h = m.begin()
    time.sleep(0.3)
    r = m.end(h)
    true_j = 250.0 * r.duration_s
    # aligned opening: the reading can only miss energy, at most one step (plus poll latency)
    assert -250.0 * 0.02 - 0.5 <= r.energy_j - true_j <= 0.5
    assert m.aligned_windows == 1 and m.unaligned_windows == 0


def test_aligned_close_removes_the_closing_edge(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=80.0, counter_period_ms=20)])
    m = NvmlCounterMeter(resolve_devices())
    h = m.begin()
    time.sleep(0.1)
    r = m.end(h, align=True)
    assert r.energy_j / r.duration_s == pytest.approx(80.0, rel=0.02)


def test_only_the_jobs_gpus_are_counted_per_device(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=60.0), gpu(1, power_w=300.0), gpu(2, power_w=150.0)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"2,{UUIDS[1]}")
    m = NvmlCounterMeter(resolve_devices())
    h = m.begin()
    time.sleep(0.2)
    r = m.end(h)
    assert [d.uuid for d in r.per_device] == [UUIDS[2], UUIDS[1]]
    p2, p1 = (d.energy_j / r.duration_s for d in r.per_device)
    assert p2 == pytest.approx(150.0, rel=0.15) and p1 == pytest.approx(300.0, rel=0.15)
    # the idle GPU 0 (60 W) is nowhere in the total
    assert r.energy_j == pytest.approx(sum(d.energy_j for d in r.per_device))


def test_unavailable_without_gpu_or_without_counter(monkeypatch, tmp_path):
    with pytest.raises(MeterUnavailable, match="no GPU"):
        NvmlCounterMeter(DeviceSet(unavailable_reason="device=cpu"))
    use_sim(monkeypatch, tmp_path, [gpu(0, supports_energy_counter=False)])
    with pytest.raises(MeterUnavailable, match="no energy counter"):
        NvmlCounterMeter(resolve_devices())
