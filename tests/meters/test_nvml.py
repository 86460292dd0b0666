import pytest

import llem.meters.nvml
from llem.devices import DeviceSet, resolve_devices
from llem.meters.base import MeterUnavailable
from llem.meters.nvml import NvmlCounterMeter, detect_period_s
from tests.devices.sim import UUIDS, gpu, use_sim, use_virtual_clock

# The simulated counter and the meter share a virtual clock: energies and periods follow the
# meter's own polling steps, so no reading depends on the host's speed or load.


def _sim(monkeypatch, tmp_path, gpus):
    return use_virtual_clock(monkeypatch, use_sim(monkeypatch, tmp_path, gpus), llem.meters.nvml)


def test_detects_the_counter_period_at_run_time(monkeypatch, tmp_path):
    _sim(monkeypatch, tmp_path, [gpu(0, counter_period_ms=30)])
    m = NvmlCounterMeter(resolve_devices())
    # busy-polling in 0.5 ms steps finds each step within one poll
    assert m.update_period_s() == pytest.approx(0.030, abs=0.0005)
    assert m.edge_uncertainty_s() == m.update_period_s()


def test_detect_period_gives_none_for_a_frozen_counter():
    assert detect_period_s(lambda: 5, steps=2, timeout_s=0.05) is None


def test_window_energy_within_the_quantisation_bound(monkeypatch, tmp_path):
    clock = _sim(monkeypatch, tmp_path, [gpu(0, power_w=250.0, counter_period_ms=20)])
    m = NvmlCounterMeter(resolve_devices())
    h = m.begin()
    clock.sleep(0.31)
    r = m.end(h)
    true_j = 250.0 * r.duration_s
    # aligned opening: the reading can only miss energy, at most one step (plus one poll)
    assert -250.0 * 0.02 - 250.0 * 0.0005 <= r.energy_j - true_j <= 250.0 * 0.0005
    # 0.31 s after an aligned opening, the counter stepped 0.30 s in: the window misses 0.01 s
    assert r.energy_j - true_j < -250.0 * 0.005
    assert m.aligned_windows == 1 and m.unaligned_windows == 0


def test_aligned_close_removes_the_closing_edge(monkeypatch, tmp_path):
    clock = _sim(monkeypatch, tmp_path, [gpu(0, power_w=80.0, counter_period_ms=20)])
    m = NvmlCounterMeter(resolve_devices())
    h = m.begin()
    clock.sleep(0.11)
    r = m.end(h, align=True)
    # both edges on a step: only the polls' 0.5 ms granularity is left
    assert r.energy_j / r.duration_s == pytest.approx(80.0, rel=0.01)


def test_only_the_jobs_gpus_are_counted_per_device(monkeypatch, tmp_path):
    clock = _sim(monkeypatch, tmp_path, [gpu(0, power_w=60.0), gpu(1, power_w=300.0), gpu(2, power_w=150.0)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"2,{UUIDS[1]}")
    m = NvmlCounterMeter(resolve_devices())
    h = m.begin()
    clock.sleep(0.2)
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
