import pytest

from llem.devices.simulated import SimulatedNvml


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _sim(gpu_spec, clock):
    nv = SimulatedNvml({"gpus": [gpu_spec]}, clock=clock)
    nv.nvmlInit()
    return nv, nv.nvmlDeviceGetHandleByIndex(0)


def test_counter_publishes_exact_integral_only_at_steps():
    clock = FakeClock()
    nv, h = _sim({"power_profile": [[0, 100.0], [1.0, 300.0]], "counter_period_ms": 100}, clock)
    start = nv.nvmlDeviceGetTotalEnergyConsumption(h)
    clock.t += 0.05  # before the first step: nothing published yet
    assert nv.nvmlDeviceGetTotalEnergyConsumption(h) == start
    clock.t += 0.06  # t = 0.11: the step at 0.1 s published 100 W x 0.1 s
    assert nv.nvmlDeviceGetTotalEnergyConsumption(h) - start == 10_000
    clock.t = 1000.0 + 1.55  # step at 1.5 s: 100 J + 300 W x 0.5 s
    assert nv.nvmlDeviceGetTotalEnergyConsumption(h) - start == pytest.approx(250_000, abs=1)
    assert nv.nvmlDeviceGetPowerUsage(h) == 300_000


def test_counter_error_bounded_by_one_step_and_one_sided_when_aligned():
    """docs/measurement.md: with steady power P and step T, a window read at free moments errs
    within (-P*T, +P*T); opened just after a step it errs within (-P*T, 0]."""
    import random

    clock = FakeClock()
    nv, h = _sim({"power_w": 200.0, "counter_period_ms": 100}, clock)
    g = nv.gpus[0]
    rnd = random.Random(1)
    free_errs, aligned_errs = [], []
    for _ in range(300):
        a = rnd.uniform(0, 5)
        b = a + rnd.uniform(1, 3)
        free_errs.append((g.counter_mj(b) - g.counter_mj(a)) / 1e3 - 200.0 * (b - a))
        a_step = (int(a / 0.1) + 1) * 0.1 + 1e-9  # window opened just after a step
        aligned_errs.append((g.counter_mj(b) - g.counter_mj(a_step)) / 1e3 - 200.0 * (b - a_step))
    step_j = 200.0 * 0.1
    assert max(abs(e) for e in free_errs) <= step_j + 1e-3
    assert min(free_errs) < -1 and max(free_errs) > 1  # both signs
    assert all(-step_j - 1e-3 <= e <= 1e-3 for e in aligned_errs)


def test_unsupported_counter_and_devices_and_failures():
    clock = FakeClock()
    nv, h = _sim({"supports_energy_counter": False, "power_limit_w": 500, "default_power_limit_w": 700,
                  "persistence": False, "processes": [{"pid": 42, "used_memory_mib": 10}]}, clock)
    with pytest.raises(nv.NVMLError_NotSupported):
        nv.nvmlDeviceGetTotalEnergyConsumption(h)
    assert nv.nvmlDeviceGetEnforcedPowerLimit(h) == 500_000
    assert nv.nvmlDeviceGetPowerManagementDefaultLimit(h) == 700_000
    assert nv.nvmlDeviceGetPersistenceMode(h) == 0
    assert [p.pid for p in nv.nvmlDeviceGetComputeRunningProcesses(h)] == [42]
    assert nv.nvmlDeviceGetHandleByUUID(h.uuid) is h
    with pytest.raises(nv.NVMLError):
        nv.nvmlDeviceGetHandleByUUID("GPU-nope")
    broken = SimulatedNvml({"fail_init": True, "gpus": []})
    with pytest.raises(broken.NVMLError_LibraryNotFound):
        broken.nvmlInit()
