"""Prefill/decode split by subtraction, on the real tiny model."""
from __future__ import annotations

import time

import pytest

from llem.backends.pytorch import PyTorchBackend
from llem.measure.harness import Workload, _cycle
from llem.measure.phases import measure_phases
from llem.meters.base import DeviceReading, Meter, NoMeter, WindowReading
from tests.backends.pytorch.test_backend import NO_GPU, make

POWER_W = 150.0


class ConstantPowerCounter(Meter):
    """Test double for a GPU energy counter (none exists on this CPU machine): energy is a
    constant power times the window's wall time, so every expected value follows from timings."""

    name = "constant-power-double"

    def begin(self):
        return time.perf_counter()

    def end(self, h):
        t = time.perf_counter()
        return WindowReading(start_time=h, end_time=t,
                             per_device=[DeviceReading(index=0, uuid="GPU-double", name="double", energy_j=POWER_W * (t - h))])


@pytest.fixture(scope="module")
def setup():
    cfg = make(output_len=6, batch=2, dataset={"num_prompts": 4, "input_len": 8},
               measurement={"phase_cycles": 3, "min_window_s": 0})
    be = PyTorchBackend(cfg, NO_GPU)
    be.load()
    batches = [be.prepare([[5 + i, 6, 7, 8, 9, 10, 11, 12 + i], [20, 21, 22, 23, 24, 25, 26, 27 + i]]) for i in range(2)]
    return cfg, be, batches, Workload(be, batches)


def _cycles(meter, work, n=3, calls=3):
    """Measured windows of ``calls`` generate calls each: 3 calls over 2 batches end inside a pass."""
    out = []
    for c in range(n):
        h = meter.begin()
        toks = sum(work.call(k) for k in range(calls))
        out.append(_cycle(c, meter.end(h), 0.0, work.input_tokens_of(0, calls), toks, None, calls=calls,
                          calls_per_pass=work.calls_per_pass))
    return out


def test_split_energy_time_tokens_add_up(setup):
    cfg, be, batches, work = setup
    meter = ConstantPowerCounter(NO_GPU)
    cycles = _cycles(meter, work)
    assert all(c.calls == 3 and c.repeats == 1.5 for c in cycles)
    ph = measure_phases(be, work, meter, None, cfg, cycles=cycles)
    # per workload pass (2 calls here), from per-call values of windows that end inside a pass
    full_t = sum(c.duration_s / c.repeats for c in cycles) / len(cycles)
    assert ph.prefill.duration_s + ph.decode.duration_s == pytest.approx(full_t)
    assert 0 < ph.prefill.duration_s < full_t
    assert ph.prefill.energy_j == pytest.approx(POWER_W * ph.prefill.duration_s)
    assert ph.decode.energy_j == pytest.approx(POWER_W * ph.decode.duration_s)
    assert ph.prefill.tokens == 4 * 8 and ph.decode.tokens == 4 * 6 - 4
    assert ph.prefill_energy_per_prompt_j == pytest.approx(ph.prefill.energy_j / 4)
    assert ph.decode_energy_per_output_token_j == pytest.approx(ph.decode.energy_j / 20)
    assert ph.decode_energy_per_output_token_se_j is not None and ph.windows["prefill_windows"] == 3
    assert "max_new_tokens=1" in ph.method and "sampling step" in ph.error


def test_without_energy_only_time_and_tokens_with_reason(setup):
    cfg, be, batches, work = setup
    meter = NoMeter(NO_GPU, reason="energy=none")
    ph = measure_phases(be, work, meter, None, cfg, cycles=_cycles(meter, work, n=2, calls=1))
    assert ph.prefill.energy_j is None and ph.decode.energy_j is None and ph.decode_energy_per_output_token_j is None
    assert ph.energy_not_measured_reason == "energy=none" and ph.prefill.duration_s > 0 and ph.decode.tokens == 20


def test_phase_split_can_be_switched_off(setup):
    cfg, be, batches, work = setup
    off = cfg.model_copy(update={"measurement": cfg.measurement.model_copy(update={"phase_split": False})})
    assert measure_phases(be, work, NoMeter(NO_GPU), None, off, cycles=[]) is None


class EdgedCounter(ConstantPowerCounter):
    """The constant-power double with a counter period, so windows have a quantisation bound."""

    def edge_uncertainty_s(self):
        return 0.001


def test_prefill_windows_in_calls_meet_their_own_looser_target(setup):
    cfg, be, batches, work = setup
    cfg = cfg.model_copy(update={"measurement": cfg.measurement.model_copy(
        update={"quantisation_target": 0.005, "phase_quantisation_target": 0.02})})
    meter = EdgedCounter(NO_GPU)
    ph = measure_phases(be, work, meter, None, cfg, cycles=_cycles(meter, work))
    w = ph.windows
    # each window: edge / phase target = 0.05 s (the measured windows' 0.2 s x 0.005 / 0.02), ended
    # at the first call boundary past it, so its bound is within the phase target
    assert w["target_window_s"] == pytest.approx(0.001 / 0.02) and w["quantisation_target"] == 0.02
    assert all(d >= w["target_window_s"] for d in w["prefill_window_s"])
    assert all(n >= 1 for n in w["prefill_calls_per_window"]) and len(w["prefill_calls_per_window"]) == 3
    assert w["quantisation_bound_max"] <= 0.02
    assert w["quantisation_bound_per_window"] == pytest.approx([0.001 / d for d in w["prefill_window_s"]])
    assert "measurement.phase_quantisation_target 2.00%" in ph.error
