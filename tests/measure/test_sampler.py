import time

import pandas as pd

from llem.devices import DeviceSet, resolve_devices
from llem.measure.sampler import COLUMNS, Sampler, throttle_names
from tests.conftest import wait_for
from tests.devices.sim import gpu, use_sim

# The samplers are waited on until they have taken samples, never for a fixed time: counts in
# a time span would depend on the host's speed and load. What can be asserted whatever the
# load: the loop never samples faster than its interval (Event.wait never returns early).


def _loop_gaps(rows: list[dict]) -> list[float]:
    """Gaps between the loop's samples (the first and last rows are start()'s and stop()'s)."""
    ts = [r["t_s"] for r in rows[1:-1]]
    return [b - a for a, b in zip(ts, ts[1:])]


def test_samples_every_interval_and_writes_parquet(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=210.0, temperature_c=40, sm_clock_mhz=1755,
                                        utilization_pct=97, throttle_reasons=0x4, memory_used_mib=2048),
                                    gpu(1)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    t0 = time.perf_counter()
    s = Sampler(resolve_devices(), 0.02, t0=t0)
    s.start()
    assert wait_for(lambda: s.loop_samples >= 5)
    s.stop()
    elapsed = time.perf_counter() - t0
    # one GPU only: one row per sample, start()'s and stop()'s included
    assert len(s.rows) == s.loop_samples + 2 >= 7
    # never faster than every 20 ms
    assert min(_loop_gaps(s.rows)) >= 0.02 * 0.99 and len(s.rows) <= elapsed / 0.02 + 2
    r = s.rows[0]
    assert (r["power_w"], r["temperature_c"], r["sm_clock_mhz"], r["utilization_gpu_pct"],
            r["throttle_reasons"], r["memory_used_mib"]) == (210.0, 40, 1755, 97, 4, 2048)
    times = [x["t_s"] for x in s.rows]
    assert times == sorted(times)
    s.tag_windows([(0, times[2], times[4])])
    assert [x["cycle"] for x in s.rows[:6]] == [-1, -1, 0, 0, 0, -1]
    d = s.describe()
    assert d["cpu_s_per_sample"] is not None and 0 < d["share_of_one_core"] < 1
    df = pd.read_parquet(s.write_parquet(tmp_path / "ts" / "timeseries.parquet"))
    assert list(df.columns) == COLUMNS and len(df) == len(s.rows)


def test_no_gpu_no_thread_no_data():
    s = Sampler(DeviceSet(unavailable_reason="device=cpu"), 0.1, t0=0.0)
    s.start()
    s.stop()
    assert not s.enabled and not s.has_data()


def test_throttle_names_ignore_idle_and_app_clock_bits():
    assert throttle_names(0x1 | 0x2) == []
    assert throttle_names(0x4 | 0x40) == ["sw_power_cap", "hw_thermal"]


def test_a_stopped_sampler_starts_again(monkeypatch, tmp_path):
    # benchmarks/gpu_validation/gpu_validation.py stops it while its bare windows run between llem's
    use_sim(monkeypatch, tmp_path, [gpu(0)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    s = Sampler(resolve_devices(), 0.01, t0=time.perf_counter())
    s.start()
    assert wait_for(lambda: s.loop_samples >= 1)
    s.stop()
    first, rows = s.loop_samples, len(s.rows)
    s.start()
    assert wait_for(lambda: s.loop_samples - first >= 3)
    s.stop()
    assert s.loop_samples - first >= 3 and len(s.rows) == rows + (s.loop_samples - first) + 2


def test_process_sampler_reads_the_same_gpus_from_a_child_process(monkeypatch, tmp_path):
    import os

    from llem.measure.sampler import ProcessSampler, make_sampler

    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=150.0), gpu(1, power_w=320.0, temperature_c=55)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    t0 = time.perf_counter()
    s = make_sampler("process", resolve_devices(), 0.02, t0=t0)
    assert isinstance(s, ProcessSampler)
    before = time.perf_counter() - t0
    # the child's count comes back only at stop(): run it in rounds until it has sampled in its
    # loop (a loaded host takes more rounds, a fast one fewer)
    for _ in range(200):
        s.start()  # returns once the child has taken its first sample
        time.sleep(0.1)
        s.stop()
        if s.loop_samples >= 5:
            break
    after = time.perf_counter() - t0
    assert not s.errors and s.loop_samples >= 5
    # only the job's GPU (CUDA 1 -> NVML 1), with its readings, timestamps on the parent's clock
    assert {r["gpu_index"] for r in s.rows} == {1} and {r["power_w"] for r in s.rows} == {320.0}
    ts = [r["t_s"] for r in s.rows]
    assert ts == sorted(ts) and before <= ts[0] <= ts[-1] <= after
    assert s.describe()["mode"] == "process" and s.describe()["cpu_s_per_sample"] is not None
    # restartable like the thread sampler (start() and stop() each take a sample), and no child left behind
    n = len(s.rows)
    s.start()
    s.stop()
    assert len(s.rows) >= n + 2 and s._proc is None
    assert not [p for p in __import__("multiprocessing").active_children() if p.name == "llem-sampler"]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
