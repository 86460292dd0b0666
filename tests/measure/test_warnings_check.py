import os
import subprocess
import sys
from types import SimpleNamespace

from llem.devices import resolve_devices
from llem.measure.warnings_check import (environment_warnings, foreign_process_warnings, latency_warnings,
                                         measurement_warnings, sampler_warnings)
from tests.devices.sim import gpu, use_sim


def _row(t, temp, thr=0, cycle=0):
    return {"gpu_index": 0, "t_s": t, "temperature_c": temp, "throttle_reasons": thr, "cycle": cycle}


def test_temperature_drift_across_window_averages_and_throttling():
    w = sampler_warnings([_row(0, 40, cycle=0), _row(1, 47, 0x40, cycle=1), _row(2, 46, cycle=1)], drift_threshold_c=5)
    assert any(x.startswith("temperature drift: GPU 0's window-average temperature ranged from 40.0 C (window 1) "
                            "to 46.5 C (window 2)") for x in w)
    assert any(x.startswith("throttling: GPU 0 reported hw_thermal in 1 of 3") for x in w)
    assert sampler_warnings([_row(0, 40, 0x1), _row(1, 42)], drift_threshold_c=5) == []


def test_a_spike_in_the_samples_is_not_drift_when_window_averages_are_flat():
    # 0.1 s samples of five windows at 45-46 C with one 51 C sample (the case that warned before):
    # every window averages within a degree of the others
    rows = [_row(c * 10 + k * 0.1, 45 + (k % 2), cycle=c) for c in range(5) for k in range(100)]
    rows[250]["temperature_c"] = 51
    assert max(r["temperature_c"] for r in rows) - min(r["temperature_c"] for r in rows) > 5
    assert not any(x.startswith("temperature drift") for x in sampler_warnings(rows, drift_threshold_c=5))
    # a real shift: the windows' averages climb 2 C per window, 8 C from the first to the last
    shifted = [_row(c * 10 + k * 0.1, 45 + 2 * c + (k % 2), cycle=c) for c in range(5) for k in range(100)]
    (w,) = [x for x in sampler_warnings(shifted, drift_threshold_c=5) if x.startswith("temperature drift")]
    assert "from 45.5 C (window 1) to 53.5 C (window 5)" in w and "threshold" in w
    # samples between windows (cycle -1) never count
    between = rows + [_row(60, 90, cycle=-1)]
    assert not any(x.startswith("temperature drift") for x in sampler_warnings(between, drift_threshold_c=5))


def test_latency_throughput_ratio_warning():
    from llem.result import Latency

    def lat(ratio):
        return Latency(method="m", calls=2, requests=2, output_tokens=256, duration_s=1.0, output_tokens_per_s=256.0,
                       latency_throughput_ratio=ratio)

    assert latency_warnings(lat(0.97), 0.05) == [] and latency_warnings(lat(1.04), 0.05) == []
    assert latency_warnings(None, 0.05) == [] and latency_warnings(lat(None), 0.05) == []
    (w,) = latency_warnings(lat(0.5), 0.05)
    assert w.startswith("latency pass off the windows' speed: it decoded 256 output tokens/s against the measured "
                        "windows' 512 (latency_throughput_ratio 0.500, tolerance +-5%)") and "slower" in w
    assert "faster" in latency_warnings(lat(1.2), 0.05)[0]


def test_power_limit_and_persistence():
    env = {"gpus": [{"index": 0, "power_limit_w": 500.0, "default_power_limit_w": 700.0, "persistence_mode": False}]}
    cfg = SimpleNamespace(measurement=SimpleNamespace(temperature_drift_warn_c=5.0))
    w = environment_warnings(env, None, cfg)
    assert any("non-default power limit" in x and "500" in x for x in w)
    assert any("persistence mode off" in x for x in w)


def test_other_processes_now_or_at_snapshot(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, processes=[{"pid": 999999, "used_memory_mib": 1}])])
    w = foreign_process_warnings({"gpus": []}, resolve_devices(), own_pid=123)
    assert w and "999999" in w[0]
    assert foreign_process_warnings({"gpus": []}, resolve_devices(), own_pid=999999) == []


def test_our_own_child_processes_on_the_gpu_are_not_foreign(monkeypatch, tmp_path):
    """vLLM's EngineCore and tensor-parallel followers are llem's children: their GPU use is the job's."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        use_sim(monkeypatch, tmp_path, [gpu(0, processes=[{"pid": child.pid, "used_memory_mib": 1}])])
        env = {"gpus": [{"index": 0, "processes": [{"pid": os.getpid()}]}]}
        assert foreign_process_warnings(env, resolve_devices()) == []
        use_sim(monkeypatch, tmp_path, [gpu(0, processes=[{"pid": child.pid, "used_memory_mib": 1},
                                                          {"pid": 999999, "used_memory_mib": 1}])])
        w = foreign_process_warnings(env, resolve_devices())
        assert len(w) == 1 and "[999999]" in w[0]
    finally:
        child.kill()
        child.wait()


def test_measurement_warnings():
    est = SimpleNamespace(name="codecarbon", estimated=True, caveat=None)
    w = measurement_warnings(meter=est, bounds=[0.009], target=0.005, durations_s=[0.5], cv=0.2, cv_threshold=0.05)
    text = "\n".join(w)
    for key in ("short window: quantisation bound 0.90%", "shortest measured window", "high CV", "estimated meter",
                "one cycle: no spread or confidence interval"):
        assert key in text
    ok = SimpleNamespace(name="nvml", estimated=False, caveat=None)
    assert measurement_warnings(meter=ok, bounds=[0.004, 0.004], target=0.005, durations_s=[20.0, 20.0], cv=0.01,
                                cv_threshold=0.05, throughput_cv=0.02) == []


def test_high_cv_of_throughput_warns_with_or_without_energy():
    ok = SimpleNamespace(name="none", estimated=False, caveat=None)
    w = measurement_warnings(meter=ok, bounds=[], target=0.005, durations_s=[3.0, 3.0], cv=None, cv_threshold=0.05,
                             throughput_cv=0.47)
    assert w == ["high CV: throughput (output tokens/s) varies 47.0% across cycles (threshold 5.0%)"]
    both = measurement_warnings(meter=ok, bounds=[], target=0.005, durations_s=[3.0, 3.0], cv=0.08,
                                cv_threshold=0.05, throughput_cv=0.06)
    assert [x.split(" varies")[0] for x in both] == ["high CV: energy per token", "high CV: throughput (output tokens/s)"]


def test_an_idle_measured_gpu_is_flagged():
    def row(t, util):
        return dict(_row(t, 40), utilization_gpu_pct=util)

    # torchao int8 left on the CPU by an H100 run: 0% in every window sample
    w = sampler_warnings([row(t, 0) for t in range(5)], drift_threshold_c=5)
    assert any(x.startswith("GPU 0 was nearly idle during the measured windows (mean utilisation 0.0% over 5") for x in w)
    # a real (host-bound) workload: 9-25% on the H100 -> nothing said; too few samples -> nothing said
    assert not any("idle" in x for x in sampler_warnings([row(t, 9) for t in range(5)], drift_threshold_c=5))
    assert not any("idle" in x for x in sampler_warnings([row(0, 0), row(1, 0)], drift_threshold_c=5))
