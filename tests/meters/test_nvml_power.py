import pytest

from llem.devices import resolve_devices
from llem.meters.nvml_power import NvmlPowerMeter, integrate_trapezoid
from tests.conftest import wait_for
from tests.devices.sim import gpu, use_sim


def test_trapezoid():
    assert integrate_trapezoid([0, 1, 3], [100, 200, 200]) == pytest.approx(150 + 400)
    assert integrate_trapezoid([0.0], [100.0]) == 0.0


def test_integrates_polled_power_of_the_gpu(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=150.0, supports_energy_counter=False)])
    m = NvmlPowerMeter(resolve_devices(), interval_s=0.01)
    h = m.begin()
    # waited on until the thread has polled, not for a fixed time (the count would depend on load)
    assert wait_for(lambda: len(h.samples) >= 4)
    r = m.end(h)
    assert r.energy_j == pytest.approx(150.0 * r.duration_s, rel=0.01)
    assert r.extra["power_samples"] >= 5
    assert m.caveat and "integrated" in m.caveat
    assert m.describe()["integrated_power"] is True
