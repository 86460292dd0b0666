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


def _cycles(meter, work, n=3, repeats=2):
    out = []
    for c in range(n):
        h = meter.begin()
        toks = sum(work.run() for _ in range(repeats))
        out.append(_cycle(c, repeats, meter.end(h), 0.0, work.input_tokens * repeats, toks, None))
    return out


def test_split_energy_time_tokens_add_up(setup):
    cfg, be, batches, work = setup
    meter = ConstantPowerCounter(NO_GPU)
    cycles = _cycles(meter, work)
    ph = measure_phases(be, work, batches, meter, None, 2, cfg, cycles=cycles)
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
    ph = measure_phases(be, work, batches, meter, None, 1, cfg, cycles=_cycles(meter, work, n=2, repeats=1))
    assert ph.prefill.energy_j is None and ph.decode.energy_j is None and ph.decode_energy_per_output_token_j is None
    assert ph.energy_not_measured_reason == "energy=none" and ph.prefill.duration_s > 0 and ph.decode.tokens == 20


def test_phase_split_can_be_switched_off(setup):
    cfg, be, batches, work = setup
    off = cfg.model_copy(update={"measurement": cfg.measurement.model_copy(update={"phase_split": False})})
    assert measure_phases(be, work, batches, NoMeter(NO_GPU), None, 1, off, cycles=[]) is None
