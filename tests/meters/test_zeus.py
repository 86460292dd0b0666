"""Zeus as it behaves without a GPU: no error, empty gpu_energy = no data."""
import pytest

from llem.devices import DeviceSet, resolve_devices
from llem.meters.base import MeterUnavailable
from llem.meters.zeus import ZeusMeter, reading_from_measurement
from tests.devices.sim import gpu, use_sim

zeus = pytest.importorskip("zeus.monitor")


def test_no_gpu_is_unavailable_before_importing_zeus():
    with pytest.raises(MeterUnavailable, match="no GPU visible"):
        ZeusMeter(DeviceSet(unavailable_reason="device=cpu"))


def test_zeus_cannot_see_simulated_gpus(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0)])
    with pytest.raises(MeterUnavailable, match="Zeus sees no usable GPU"):
        ZeusMeter(resolve_devices())


def test_empty_gpu_energy_is_no_data_never_zero(monkeypatch, tmp_path):
    mon = zeus.ZeusMonitor()  # a real monitor on this GPU-less machine
    mon.begin_window("w", sync_execution=False)
    m = mon.end_window("w", sync_execution=False)
    assert m.gpu_energy == {}
    use_sim(monkeypatch, tmp_path, [gpu(0)])
    r = reading_from_measurement(m, resolve_devices(), 0.0, 1.0, [0])
    assert r.per_device[0].energy_j is None
    assert r.energy_j is None and r.cpu_energy_j is None
