from llem.config.schema import EnergyConfig
from llem.devices import DeviceSet, resolve_devices
from llem.meters.base import NoMeter
from llem.meters.select import select_meter
from tests.devices.sim import gpu, use_sim


def test_auto_takes_the_counter_when_zeus_sees_no_gpu(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0)])
    m, why = select_meter(EnergyConfig(meter="auto"), resolve_devices())
    assert m.name == "nvml"
    assert why.startswith("auto picked nvml") and "zeus:" in why


def test_auto_falls_back_to_integrated_power_without_counter(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, supports_energy_counter=False)])
    m, why = select_meter(EnergyConfig(meter="auto"), resolve_devices())
    assert m.name == "nvml_power" and "no energy counter" in why


def test_requested_meter_unavailable_gives_none_with_reason():
    m, why = select_meter(EnergyConfig(meter="nvml"), DeviceSet(unavailable_reason="device=cpu"))
    assert isinstance(m, NoMeter) and "unavailable" in why and "device=cpu" in m.reason


def test_energy_none():
    m, why = select_meter(EnergyConfig(meter="none"), DeviceSet())
    assert isinstance(m, NoMeter) and why == "energy=none was requested"
    r = m.end(m.begin())
    assert r.energy_j is None  # never 0
