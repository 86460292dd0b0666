import json

import pytest

import llem.measure.baseline
import llem.meters.nvml
from llem.config.schema import BaselineConfig
from llem.devices import resolve_devices
from llem.measure.baseline import cache_path, measure_baseline
from llem.meters.nvml import NvmlCounterMeter
from tests.devices.sim import UUIDS, gpu, use_sim, use_virtual_clock


@pytest.fixture
def two_gpus(monkeypatch, tmp_path):
    # the idle window, the settle wait and the simulated counters share one virtual clock:
    # the measured power does not depend on the host's speed or load
    spec = use_sim(monkeypatch, tmp_path, [gpu(0, power_w=72.0), gpu(1, power_w=90.0)])
    use_virtual_clock(monkeypatch, spec, llem.measure.baseline, llem.meters.nvml)
    devs = resolve_devices()
    return devs, NvmlCounterMeter(devs)


def test_measures_idle_power_per_gpu(two_gpus, tmp_path):
    devs, meter = two_gpus
    b = measure_baseline(meter, devs, BaselineConfig(duration_s=0.15, cache_dir=str(tmp_path / "c")))
    assert b.power_w[UUIDS[0]] == pytest.approx(72.0, rel=0.03)
    assert b.power_w[UUIDS[1]] == pytest.approx(90.0, rel=0.03)
    assert b.total_power_w == pytest.approx(162.0, rel=0.03)
    assert not b.cached


def test_cache_hit_within_ttl_and_expiry(two_gpus, tmp_path):
    devs, meter = two_gpus
    cfg = BaselineConfig(duration_s=0.15, cache_ttl_s=100, cache_dir=str(tmp_path / "c"))
    first = measure_baseline(meter, devs, cfg, now=1000.0)
    entries = json.loads(cache_path(cfg.cache_dir).read_text())
    assert set(entries) == {f"nvml:{u}" for u in UUIDS[:2]}
    windows = []
    begin = meter.begin
    meter.begin = lambda: windows.append(1) or begin()
    hit = measure_baseline(meter, devs, cfg, now=1050.0)
    assert hit.cached and hit.power_w == first.power_w
    assert windows == []  # no idle window was measured
    miss = measure_baseline(meter, devs, cfg, now=1101.0)
    assert not miss.cached


def test_ttl_zero_never_caches(two_gpus, tmp_path):
    devs, meter = two_gpus
    cfg = BaselineConfig(duration_s=0.1, cache_ttl_s=0, cache_dir=str(tmp_path / "c"))
    measure_baseline(meter, devs, cfg)
    assert not cache_path(cfg.cache_dir).exists()
    assert not measure_baseline(meter, devs, cfg).cached


def test_default_cache_dir_is_under_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_path(None) == tmp_path / "llem" / "baseline.json"


def test_waits_for_power_to_settle_before_the_idle_window(monkeypatch, tmp_path):
    # A GPU that just worked: 160 W for 1.5 s, then idle at 75 W. Without the settle step the
    # baseline would average in the hot tail.
    use_sim(monkeypatch, tmp_path, [gpu(0, power_profile=[[0, 160.0], [1.5, 75.0]])])
    devs = resolve_devices()
    b = measure_baseline(NvmlCounterMeter(devs), devs,
                         BaselineConfig(duration_s=0.3, settle_max_s=10, cache_dir=str(tmp_path / "c")))
    assert b.settle["settled"] is True and b.settle["waited_s"] >= 1.5
    assert b.total_power_w == pytest.approx(75.0, rel=0.03)


def test_unsettled_baseline_is_reported_and_not_cached(monkeypatch, tmp_path):
    falling = [[0.1 * k, 300.0 - 10.0 * k] for k in range(25)]
    use_sim(monkeypatch, tmp_path, [gpu(0, power_profile=falling)])
    devs = resolve_devices()
    cfg = BaselineConfig(duration_s=0.2, settle_max_s=0.5, cache_dir=str(tmp_path / "c"))
    b = measure_baseline(NvmlCounterMeter(devs), devs, cfg)
    assert b.settle["settled"] is False and "still falling" in b.settle["reason"]
    assert not cache_path(cfg.cache_dir).exists()
