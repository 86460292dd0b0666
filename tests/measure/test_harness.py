"""The measurement protocol end to end on the tiny model, with the simulated NVML standing in
for a GPU's counters (a test double: this machine has no GPU). Everything else is real."""
import pandas as pd
import pytest

from llem.config.compose import load_config
from llem.devices import resolve_devices
from llem.devices.nvml import nvml_module
from llem.measure import harness
from tests.conftest import FAST
from tests.devices.sim import UUIDS, gpu, use_sim

pytestmark = pytest.mark.slow


def _cfg(tmp_path, *extra):
    return load_config([*FAST, "energy=nvml", "energy.baseline.duration_s=0.1",
                        f"energy.baseline.cache_dir={tmp_path / 'cache'}", "measurement.quantisation_target=0.05",
                        *extra])


class RawCounter:
    """Validation-style observer: the raw NVML counter on the same windows."""

    def __init__(self) -> None:
        self.nv = nvml_module()
        self.h = resolve_devices().gpus[0].handle
        self.energies_j = []

    def begin(self):
        self.v0 = self.nv.nvmlDeviceGetTotalEnergyConsumption(self.h)

    def end(self):
        self.energies_j.append((self.nv.nvmlDeviceGetTotalEnergyConsumption(self.h) - self.v0) / 1e3)


def test_measured_run_with_baseline_windows_and_timeseries(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=120.0, counter_period_ms=20), gpu(1, power_w=400.0)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    obs = RawCounter()
    # min_window_s (0.1 s) is below what the counter's bound needs (~0.4 s): the bound sizes the window
    r = harness.run(_cfg(tmp_path, "measurement.warmup_runs=1", "measurement.min_window_s=0.1"), tmp_path / "job",
                    observers=[obs])
    m = r.measurement_methodology
    assert r.energy.measured and r.energy.meter == "nvml" and not r.energy.estimated
    # windows sized so the bound stays under the 5% target asked for here
    assert m["window"]["counter_update_period_s"] == pytest.approx(0.02, rel=0.3)
    assert m["quantisation_bound_max"] <= 0.05
    assert m["window"]["target_window_s"] == pytest.approx(m["window"]["edge_uncertainty_s"] / 0.05)
    assert m["window"]["sized_by"].startswith("counter")
    # every window lasted at least its target, ending at a call boundary: whole calls of 1 x 4 tokens
    assert all(c.duration_s >= m["window"]["target_window_s"] for c in r.cycles)
    assert all(c.output_tokens == 4 * c.calls and c.repeats == c.calls / 2 for c in r.cycles)
    assert m["window"]["calls_per_window"] == [c.calls for c in r.cycles]
    assert m["window"]["output_tokens_per_window"] == [c.output_tokens for c in r.cycles]
    # only the visible GPU (120 W), never the 400 W one beside it
    assert [d.uuid for d in r.energy.per_device] == [UUIDS[0]]
    for c in r.cycles:
        assert c.energy_j == pytest.approx(120.0 * c.duration_s, rel=0.06)
        assert c.energy_adjusted_j == pytest.approx(c.energy_j - r.energy.baseline_power_w * c.duration_s)
        assert c.energy_per_output_token_j == pytest.approx(c.energy_j / c.output_tokens)
    assert r.energy.baseline_power_w == pytest.approx(120.0, rel=0.03)
    assert r.energy.energy_j is not None and r.energy.energy_adjusted_j is not None
    # the observer read the very same windows
    assert len(obs.energies_j) == 2
    for c, e in zip(r.cycles, obs.energies_j):
        assert abs(c.energy_j - e) <= 120.0 * 0.02 + 0.01
    s = r.stats["energy_per_output_token_j"]
    assert s.n == 2 and s.ci95_low <= s.value <= s.ci95_high and s.method.startswith("Student t")
    assert s.value == pytest.approx(r.energy.energy_per_output_token_j)
    # claimed exactly when the warm-up ran and the cycles pass the steady-state test
    assert m["steady_state_claimed"] is m["steady_state_test"]["passed"]
    assert set(m["steady_state_test"]["metrics"]) == {"output_tokens_per_s", "energy_per_output_token_j"}
    if m["steady_state_claimed"]:
        assert r.steady_state_window[0] >= m["warmup"]["durations_s"][0]
    else:
        assert r.steady_state_window is None and any(w.startswith("not steady:") for w in r.warnings)
    ts = pd.read_parquet(tmp_path / "job" / r.timeseries_path)
    assert set(ts["cycle"]) >= {0, 1} and set(ts["uuid"]) == {UUIDS[0]}


def test_warnings_for_a_degraded_gpu(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_limit_w=450, default_power_limit_w=700, persistence=False,
                                        temperature_c=40, temperature_slope_c_per_s=40.0, throttle_reasons=0x20,
                                        processes=[{"pid": 999999, "used_memory_mib": 1000}])])
    r = harness.run(_cfg(tmp_path, "measurement.warmup_runs=0", "energy.baseline.enabled=false"), tmp_path / "j")
    text = "\n".join(r.warnings)
    for key in ("non-default power limit", "persistence mode off", "temperature drift", "throttling: GPU 0",
                "other processes on GPU 0"):
        assert key in text, key
    # no warm-up: steady state is not claimed, and the adjusted energy says why it is missing
    assert r.steady_state_window is None and not r.measurement_methodology["steady_state_claimed"]
    assert r.energy.energy_adjusted_j is None and "baseline" in r.energy.energy_adjusted_reason


def test_no_meter_is_not_measured_never_zero(monkeypatch, tmp_path):
    monkeypatch.delenv("LLEM_SIMULATED_NVML", raising=False)
    r = harness.run(load_config([*FAST, "energy=none"]), tmp_path / "j")
    assert r.energy.measured is False and r.energy.not_measured_reason
    assert r.energy.energy_j is None and all(c.energy_j is None for c in r.cycles)
    assert r.stats["energy_per_output_token_j"].value is None
    assert r.stats["output_tokens_per_s"].value == pytest.approx(r.output_tokens_per_s)
    assert r.output_tokens > 0


def test_warmup_time_floor_reaches_the_run_and_its_record(tmp_path):
    r = harness.run(load_config([*FAST, "energy=none", "measurement.warmup_runs=1", "measurement.warmup_min_s=0.3"]),
                    tmp_path / "j")
    w = r.measurement_methodology["warmup"]
    # the calls after the first reach the floor; the one before the last did not
    assert sum(w["durations_s"][1:]) >= 0.3 > sum(w["durations_s"][1:-1])
    assert w["runs"] == len(w["durations_s"]) >= 2 and "until the calls after the first lasted 0.3 s" in w["reason"]
    m = r.measurement_methodology
    assert m["steady_state_claimed"] is m["steady_state_test"]["passed"]
    assert ("windows start after" in m["steady_state"]) is m["steady_state_claimed"]


def test_bootstrap_ci_when_asked(tmp_path):
    r = harness.run(load_config([*FAST, "energy=none", "measurement.ci_method=bootstrap",
                                 "measurement.bootstrap_samples=300"]), tmp_path / "j")
    s = r.stats["output_tokens_per_s"]
    assert "bootstrap" in s.method and "300 resamples" in s.method and s.ci95_low <= s.value <= s.ci95_high


def test_without_a_counter_min_window_s_sizes_the_window(tmp_path):
    from llem.config.schema import ExperimentConfig

    # the default is a few seconds (FAST sets 0 to keep the suite quick)
    assert ExperimentConfig().measurement.min_window_s == 2.0
    r = harness.run(load_config([*FAST, "energy=none", "measurement.min_window_s=0.3"]), tmp_path / "j")
    w = r.measurement_methodology["window"]
    assert w["target_window_s"] == 0.3 and w["sized_by"].startswith("measurement.min_window_s")
    assert all(c.duration_s >= 0.3 for c in r.cycles)
    # the prefill-only windows of the phase split: the same rule scaled by the two targets (0.005 / 0.025)
    ph = r.phases.windows
    assert ph["target_window_s"] == pytest.approx(0.3 * 0.005 / 0.025)
    assert all(d >= ph["target_window_s"] for d in ph["prefill_window_s"])


def test_min_window_s_is_a_floor_under_the_counter_bound_too(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=120.0, counter_period_ms=20)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    # the bound needs ~0.4 s at 5%; min_window_s=0.6 asks for more, and every window lasts that
    r = harness.run(_cfg(tmp_path, "measurement.min_window_s=0.6", "measurement.phase_split=false"), tmp_path / "j")
    w = r.measurement_methodology["window"]
    assert w["target_window_s"] == 0.6 and w["sized_by"].startswith("measurement.min_window_s")
    assert all(c.duration_s >= 0.6 for c in r.cycles) and r.measurement_methodology["quantisation_bound_max"] < 0.05


def test_sampler_in_a_child_process_fills_the_same_time_series(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=120.0, counter_period_ms=20, utilization_pct=80)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    r = harness.run(_cfg(tmp_path, "measurement.warmup_runs=1", "energy.sampler=process",
                         "energy.sample_interval_s=0.02"), tmp_path / "job")
    s = r.measurement_methodology["sampler"]
    assert s["mode"] == "process" and s["enabled"] and not s["errors"] and s["rows"] > 0
    ts = pd.read_parquet(tmp_path / "job" / r.timeseries_path)
    # rows inside both windows, on the parent's clock, and the in-window checks ran on them
    assert set(ts["cycle"]) >= {0, 1} and set(ts["uuid"]) == {UUIDS[0]} and set(ts["power_w"]) == {120.0}
    assert not any("nearly idle" in w for w in r.warnings)


def test_warm_up_and_windows_count_calls_not_passes(tmp_path):
    # 8 prompts at batch 1: a pass is 8 sequential calls; warm-up is 2 calls, not 2 passes (16)
    r = harness.run(load_config([*FAST, "energy=none", "dataset.num_prompts=8", "measurement.warmup_runs=2",
                                 "measurement.warmup_min_s=0", "measurement.min_window_s=0.05"]), tmp_path / "j")
    m = r.measurement_methodology
    assert m["warmup"]["unit"] == "generate calls" and m["warmup"]["runs"] == 2 and len(m["warmup"]["durations_s"]) == 2
    w = m["window"]
    assert w["calls_per_pass"] == 8 and w["call_s"] == min(m["warmup"]["durations_s"])
    assert w["output_tokens_per_call"] == 4 and w["expected_calls_per_window"] >= 1
    # windows end at call boundaries: whole calls, each window at least its target
    assert all(c.output_tokens == 4 * c.calls and c.input_tokens == 32 * c.calls for c in r.cycles)
    assert all(c.duration_s >= 0.05 for c in r.cycles) and all(c.repeats == c.calls / 8 for c in r.cycles)
    assert r.output_tokens == 4 * sum(w["calls_per_window"])


def test_latency_throughput_ratio_recorded_and_a_forced_mismatch_warns(monkeypatch, tmp_path):
    from llem.backends.pytorch import PyTorchBackend

    cfg = load_config([*FAST, "energy=none", "measurement.min_window_s=0.05", "measurement.phase_split=false"])
    r = harness.run(cfg, tmp_path / "a")
    lat = r.latency
    assert lat.calls >= 1 and lat.requests == lat.calls and lat.output_tokens == 4 * lat.calls
    assert lat.output_tokens_per_s == pytest.approx(lat.output_tokens / lat.duration_s)
    assert lat.latency_throughput_ratio == pytest.approx(lat.output_tokens_per_s / r.output_tokens_per_s)
    assert lat.precision.startswith(f"{lat.calls} requests")
    o = r.measurement_methodology["outside_windows"]
    assert o["share_target"] == 0.1 and o["measured_windows_s"] == pytest.approx(r.duration_s)

    # test double for the latency pass's clock: every timed call reports 10x its duration, so its
    # throughput reads a tenth of the windows' whatever this machine's speed
    orig = PyTorchBackend.generate

    def slow_clock(self, batch, *, timing=False):
        out = orig(self, batch, timing=timing)
        if timing:
            out.end_time = out.start_time + 10 * (out.end_time - out.start_time)
        return out

    monkeypatch.setattr(PyTorchBackend, "generate", slow_clock)
    r = harness.run(cfg, tmp_path / "b")
    ratio = r.latency.latency_throughput_ratio
    assert ratio < 0.95
    (w,) = [x for x in r.warnings if x.startswith("latency pass off the windows' speed")]
    assert f"latency_throughput_ratio {ratio:.3f}" in w and f"{r.latency.output_tokens_per_s:.4g}" in w
