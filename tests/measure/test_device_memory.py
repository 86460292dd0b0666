"""Peak device memory from the sampler's NVML readings, recorded for every backend."""
import pytest

from llem.config.compose import load_config
from llem.measure import harness
from llem.measure.device_memory import MIB, device_peak, with_device_peak
from tests.conftest import FAST
from tests.devices.sim import gpu, use_sim


class Rows:
    def __init__(self, rows, interval_s=0.1):
        self.rows, self.interval_s = rows, interval_s


def test_peak_per_gpu_and_their_sum():
    rows = [{"gpu_index": 0, "memory_used_mib": 4000.0}, {"gpu_index": 0, "memory_used_mib": 4096.0},
            {"gpu_index": 1, "memory_used_mib": 1000.0}, {"gpu_index": 1, "memory_used_mib": None}]
    out = device_peak(Rows(rows))
    assert out["device_peak_per_gpu"] == [{"gpu_index": 0, "peak_used_bytes": 4096 * MIB},
                                          {"gpu_index": 1, "peak_used_bytes": 1000 * MIB}]
    assert out["device_peak_used_bytes"] == (4096 + 1000) * MIB
    assert "every 0.1 s" in out["device_peak_method"] and "CUDA context" in out["device_peak_method"]


def test_missing_is_missing_with_a_reason_never_zero():
    none = device_peak(Rows([]))
    assert none["device_peak_used_bytes"] is None and "no GPU sampler" in none["device_peak_not_measured_reason"]
    blind = device_peak(Rows([{"gpu_index": 0, "memory_used_mib": None}]))
    assert blind["device_peak_used_bytes"] is None and "did not report" in blind["device_peak_not_measured_reason"]
    # the backend's own fields are kept beside it
    merged = with_device_peak({"kv_cache_blocks": 10}, Rows([]))
    assert merged["kv_cache_blocks"] == 10 and merged["device_peak_used_bytes"] is None


@pytest.mark.slow
def test_a_measured_job_records_the_device_peak(monkeypatch, tmp_path):
    # simulated NVML (a test double: no GPU here) reporting 3,500 MiB used on the job's GPU
    use_sim(monkeypatch, tmp_path, [gpu(0, memory_used_mib=3500)])
    r = harness.run(load_config([*FAST, "energy=nvml", "energy.baseline.duration_s=0.1",
                                 f"energy.baseline.cache_dir={tmp_path / 'cache'}",
                                 "measurement.quantisation_target=0.05"]), tmp_path / "job")
    assert r.memory["device_peak_used_bytes"] == 3500 * MIB
    assert r.memory["device_peak_per_gpu"][0]["gpu_index"] == 0
    # the PyTorch backend's own counters stay (None on CPU, with their reason)
    assert "peak_not_measured_reason" in r.memory
