"""CodeCarbon offline, as it behaves here (no GPU, no RAPL): estimates, labelled so."""
from types import SimpleNamespace

import pytest

from llem.devices import DeviceSet, resolve_devices
from llem.meters.codecarbon import KWH_TO_J, reading_from_emissions
from tests.devices.sim import gpu, use_sim


def test_gpu_energy_zero_from_codecarbon_means_no_data(monkeypatch, tmp_path):
    data = SimpleNamespace(cpu_energy=1e-6, ram_energy=2e-6, gpu_energy=0.0, duration=0.5)
    use_sim(monkeypatch, tmp_path, [gpu(0)])
    r = reading_from_emissions(data, resolve_devices(), 0.0, 0.5)
    assert r.per_device[0].energy_j is None and r.energy_j is None
    host = reading_from_emissions(data, DeviceSet(), 0.0, 0.5)
    assert host.scope == "host"
    assert host.energy_j == pytest.approx(3e-6 * KWH_TO_J)


@pytest.mark.slow
def test_offline_tracker_windows_are_estimates():
    pytest.importorskip("codecarbon")
    from llem.meters.codecarbon import CodeCarbonMeter

    m = CodeCarbonMeter(DeviceSet(unavailable_reason="device=cpu"), country_iso_code="FRA")
    try:
        assert m.estimated is True and m.measures_gpu is False
        h = m.begin()
        sum(range(200_000))
        r = m.end(h)
    finally:
        m.close()
    assert r.scope == "host" and r.per_device == []
    assert r.cpu_energy_j is not None and r.cpu_energy_j > 0
    assert r.energy_j == pytest.approx(r.cpu_energy_j + r.dram_energy_j)
    assert m.describe()["country_iso_code"] == "FRA"
