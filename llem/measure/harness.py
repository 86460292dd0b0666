"""The measurement protocol. One function, ``run``, owns the order of events, one step each
(docs/measurement.md, "Order of events"):

devices and meter -> environment snapshot -> idle baseline -> load model -> warm up -> size the
window -> measured cycles (heap frozen; meter window bracketed by device synchronisation,
sampler beside it) -> latency pass -> phase split -> statistics and warnings -> ``ExperimentResult``.

Nothing runs inside a measured window that a bare generate loop would not run: the window
holds only ``backend.generate`` calls on batches prepared beforehand. Warm-up and windows count
generate calls (one prepared batch each), not whole passes over ``num_prompts``: a window ends
at the first call boundary at which it has lasted its target length.
"""
from __future__ import annotations

import itertools
import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from llem._version import __version__
from llem.backends import backend_class
from llem.config.schema import ExperimentConfig
from llem.devices import DeviceSet, resolve_devices, select_for_job
from llem.measure.device_memory import with_device_peak
from llem.measure.stats import headline_stats
from llem.meters.base import Meter, NoMeter, WindowReading
from llem.meters.select import select_meter
from llem.result import (CycleResult, DeviceEnergy, EnergySummary, ExperimentResult)

log = logging.getLogger("llem")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Workload:
    """The prepared batches. Warm-up and measured windows take generate calls on them in
    rotation (call ``k`` uses batch ``k mod calls_per_pass``); one pass is every batch once."""

    def __init__(self, backend, batches) -> None:
        self.backend = backend
        self.batches = batches
        self.calls_per_pass = len(batches)
        self.input_tokens = sum(b.input_tokens for b in batches)  # of one pass

    def run(self) -> int:
        """One pass: every batch once (benchmarks time passes)."""
        out = 0
        gen = self.backend.generate
        for b in self.batches:
            out += gen(b).output_tokens
        return out

    def call(self, k: int) -> int:
        """The ``k``-th call of the rotation; its output tokens."""
        return self.backend.generate(self.batches[k % self.calls_per_pass]).output_tokens

    def rotation_from(self, k: int) -> list:
        """The batches in call order, starting at call ``k`` of the rotation."""
        i = k % self.calls_per_pass
        return self.batches[i:] + self.batches[:i]

    def input_tokens_of(self, first: int, n: int) -> int:
        """Input tokens of ``n`` calls starting at call ``first`` of the rotation."""
        whole, rest = divmod(n, self.calls_per_pass)
        return whole * self.input_tokens + sum(b.input_tokens for b in self.rotation_from(first)[:rest])


def prepare_batches(config: ExperimentConfig, backend, texts=None) -> list:
    """The batches every measured window feeds the backend: ``num_prompts`` prompts rounded up to
    whole batches of ``batch`` (recycled in order), prepared by the backend. Benchmarks that
    compare against llem's windows build their inputs here too. ``texts``: ``load_texts``'s."""
    from llem.datasets import load_prompts

    b = config.batch
    n = max(1, math.ceil(config.dataset.num_prompts / b)) * b
    prompts = load_prompts(config.dataset, getattr(backend, "tokenizer", None), getattr(backend, "vocab_size", 512),
                           min_count=n, texts=texts)
    return [backend.prepare(p) for p in backend.plan_batches(prompts[:n], b)]


def window_target_s(edge_s: Optional[float], mcfg) -> tuple[float, str]:
    """How long every measured window must last, and what set that length.

    With a counter (``edge_s``: the energy missed or added at the window's edges is at most
    ``edge_s`` x power) the relative bound is ``edge_s / window`` (docs/measurement.md), so the
    window needs ``edge_s / quantisation_target``. ``measurement.min_window_s`` is a floor on every
    window, so that a window is never a few calls of a fraction of a second whose timing noise
    swamps the cycle; a meter without a counter period (CodeCarbon, none, a CPU job) gives only
    that floor to size from."""
    floor = mcfg.min_window_s
    if edge_s:
        q = edge_s / mcfg.quantisation_target
        if q >= floor:
            return q, "counter quantisation bound (edge_uncertainty_s / quantisation_target)"
        return floor, "measurement.min_window_s (longer than the counter quantisation bound needs)"
    return floor, "measurement.min_window_s (the meter has no counter period)"


def phase_window_target_s(edge_s: Optional[float], mcfg) -> tuple[float, str]:
    """How long each prefill-only window of the phase split lasts: the measured windows' target
    scaled by ``quantisation_target / phase_quantisation_target`` (1/5 by default). With a counter
    that is ``edge_s / phase_quantisation_target`` (its bound is that target); without one, the
    same ratio to ``min_window_s``."""
    needed, _ = window_target_s(edge_s, mcfg)
    scale = mcfg.quantisation_target / mcfg.phase_quantisation_target
    return needed * scale, (f"the measured windows' target x quantisation_target / phase_quantisation_target "
                            f"({mcfg.quantisation_target:g} / {mcfg.phase_quantisation_target:g})")


def timed_calls(gen, rotation, t_open: float, needed_s: float, max_calls: int) -> tuple[int, int]:
    """The calls of one window, in ``rotation`` order (cycled), until the window has lasted
    ``needed_s`` since ``t_open`` at a call boundary, or ``max_calls``. Returns (calls, output
    tokens). The clock is the one the backend already stamps each call with (``end_time``), so
    the loop adds no host work per call beyond a comparison; the device is synchronised after the
    last call, so the window lasts at least ``needed_s``."""
    n = out = 0
    for b in itertools.cycle(rotation):
        o = gen(b)
        out += o.output_tokens
        n += 1
        if n >= max_calls or (o.end_time or time.perf_counter()) - t_open >= needed_s:
            return n, out
    return n, out  # an empty rotation: no call at all


def _wants_gpu(config: ExperimentConfig) -> bool:
    return config.device != "cpu"


def run(config: ExperimentConfig, job_dir: Optional[str | Path] = None, *,
        progress: Optional[Callable[[str], None]] = None, observers: Sequence = (),
        between_cycles: Optional[Callable[[int, CycleResult, Any], None]] = None) -> ExperimentResult:
    """Run one experiment. Two hooks exist for validation only:

    - ``observers``: extra meters with ``begin()`` / ``end()``, opened immediately after llem's
      meter opens each measured window and closed immediately before it closes, so they read the
      very same windows;
    - ``between_cycles(index, cycle, backend)``: called after each measured window has closed and
      before the next opens, with the sampler stopped, so a benchmark can interleave its own
      windows with llem's (benchmarks/gpu_validation/gpu_validation.py's bare ``generate`` windows, on the
      backend's own model object)."""
    opened: list = []
    try:
        return _run(config, job_dir, progress, observers, opened, between_cycles)
    except BaseException:
        from llem.measure import gcfreeze

        gcfreeze.release()
        # the job fails with its own error; stopping the backend's processes (tensor-parallel
        # followers, engine cores) is best effort and must not replace that error
        for backend in opened:
            try:
                backend.close()
            except Exception as err:
                log.warning("closing the %s backend after a failure: %s: %s", config.backend, type(err).__name__, err)
            for w in getattr(backend, "shutdown_warnings", []):
                log.warning("closing the %s backend after a failure: %s", config.backend, w)
        raise


def _run(config: ExperimentConfig, job_dir, progress, observers, opened: list, between_cycles=None) -> ExperimentResult:
    """The protocol of docs/measurement.md ("Order of events"), one step per call. Each step
    records how it was done in ``methodology`` and what weakens the number in ``warnings``."""
    say = progress or (lambda msg: log.info(msg))
    t0 = time.perf_counter()
    started_at = _now()
    warnings: list[str] = []
    methodology: dict = {}
    job_dir = Path(job_dir) if job_dir else None

    devices, meter = choose_devices_and_meter(config, methodology, warnings)
    environment = record_environment(devices)
    texts = read_dataset(config, say)
    baseline = measure_idle_baseline(config, meter, devices, methodology, say)
    backend, load_reading, load_time_s = load_model(config, devices, meter, opened, warnings, say, methodology)
    batches = prepare_batches(config, backend, texts)
    work = Workload(backend, batches)
    warm = warm_up_backend(config, work, backend, methodology)
    window = size_window(config, meter, work, warm, methodology)
    measured = measure_cycles(config, meter, devices, backend, work, window, baseline, observers, between_cycles,
                              t0, methodology, say)
    latency, phases = measure_latency_and_phases(config, meter, backend, work, baseline, window, measured,
                                                 methodology, say)
    flops, memory = describe_backend(config, backend, devices, methodology, warnings)
    memory = with_device_peak(memory, measured.sampler)
    stats, energy = summarize_cycles(config, meter, measured.cycles, baseline, load_reading)
    warnings.extend(measurement_caveats(config, meter, devices, environment, baseline, window, measured, stats, energy,
                                        latency))
    steady = claim_steady_state(warm, measured.cycles, energy, methodology, warnings)
    quality = evaluate_quality(config, backend, meter, baseline, measured, t0, job_dir, say, stats, energy)
    timeseries_path = write_timeseries(job_dir, measured.sampler)
    result = ExperimentResult(
        llem_version=__version__,
        experiment_id=uuid.uuid4().hex[:12],
        config_hash=config.config_hash,
        started_at=started_at,
        ended_at=_now(),
        config=config.model_dump(mode="json"),
        backend=config.backend,
        backend_version=backend.version(),
        model=config.model.name,
        precision=config.precision,
        batch=config.batch,
        device=backend.device_label(),
        input_tokens=measured.input_tokens,
        output_tokens=measured.output_tokens,
        duration_s=measured.duration_s,
        output_tokens_per_s=measured.output_tokens / measured.duration_s if measured.duration_s > 0 else None,
        load_time_s=load_time_s,
        energy=energy,
        cycles=measured.cycles,
        stats=stats,
        latency=latency,
        phases=phases,
        flops=flops,
        memory=memory,
        steady_state_window=list(measured.span_s) if steady else None,
        measurement_methodology=methodology,
        environment=environment,
        warnings=warnings,
        timeseries_path=timeseries_path,
        quality=quality,
    )
    close_after_measurement(result, backend, meter, opened)
    return result


# --- the protocol's steps, in the order _run calls them ----------------------------------------

def choose_devices_and_meter(config: ExperimentConfig, methodology: dict,
                             warnings: list[str]) -> tuple[DeviceSet, Meter]:
    """1-2. The GPUs the job runs on (by UUID), and the meter that reads them."""
    devices = select_for_job(resolve_devices(), config) if _wants_gpu(config) \
        else DeviceSet(unavailable_reason="device=cpu")
    meter, why = select_meter(config.energy, devices)
    methodology["meter"] = meter.name
    methodology["meter_choice"] = why
    methodology["devices"] = devices.describe()
    if devices.mapping.get("warning"):
        warnings.append(devices.mapping["warning"])
    # the counter's step period is detected here, before the model loads (busy-polls ~0.5 s)
    methodology["meter_details"] = meter.describe()
    return devices, meter


def record_environment(devices: DeviceSet) -> dict:
    """3. The environment snapshot the result carries."""
    from llem.environment.snapshot import snapshot

    return snapshot(devices)


def read_dataset(config: ExperimentConfig, say) -> Any:
    """The dataset's texts, before anything slow: a missing dataset fails here."""
    from llem.datasets import load_texts

    if config.dataset.kind != "synthetic":
        say(f"reading dataset {config.dataset.path or config.dataset.name} ({config.dataset.kind})")
    return load_texts(config.dataset)


def measure_idle_baseline(config: ExperimentConfig, meter: Meter, devices: DeviceSet, methodology: dict, say):
    """4. Idle power per GPU, before the model loads (or why there is none)."""
    baseline = None
    if meter.measures_gpu and config.energy.baseline.enabled:
        from llem.measure.baseline import measure_baseline

        say(f"measuring idle baseline ({config.energy.baseline.duration_s:g} s)")
        baseline = measure_baseline(meter, devices, config.energy.baseline)
        methodology["baseline"] = baseline.describe()
        if baseline.cached and baseline.total_power_w is not None:
            say(f"idle baseline from cache: {baseline.total_power_w:.1f} W")
    elif meter.measures_gpu:
        methodology["baseline"] = {"enabled": False, "reason": "energy.baseline.enabled=false"}
    else:
        methodology["baseline"] = {"enabled": False, "reason": f"meter {meter.name} reads no GPU energy counter "
                                   "(an idle baseline needs one)"}
    return baseline


def load_model(config: ExperimentConfig, devices: DeviceSet, meter: Meter, opened: list, warnings: list[str], say,
               methodology: dict):
    """5. Load the model in its own meter window: its energy is never mixed into inference.
    Returns the backend, that window's reading (None without a meter) and the load time."""
    backend = backend_class(config.backend)(config, devices)
    opened.append(backend)
    say(f"loading {config.model.name} ({config.backend}, {config.precision})")
    ts = time.perf_counter()
    backend.start()
    startup_s = time.perf_counter() - ts
    tl = time.perf_counter()
    lh = meter.begin() if not isinstance(meter, NoMeter) else None
    backend.load()
    backend.synchronize()
    load_reading = meter.end(lh) if lh is not None else None
    load_time_s = time.perf_counter() - tl
    methodology["load"] = {
        "startup_s": startup_s, "load_time_s": load_time_s,
        "startup": "importing the backend's framework and model code and creating the CUDA context, before the "
                   "load's window (a fresh process pays it once; a script loading in a warm process does not)",
        **({"steps_s": dict(backend.load_steps_s)} if getattr(backend, "load_steps_s", None) else {}),
    }
    warnings.extend(getattr(backend, "load_warnings", []))
    return backend, load_reading, load_time_s


def warm_up_backend(config: ExperimentConfig, work: Workload, backend, methodology: dict):
    """6. Generate calls until latency settles (or ``measurement.warmup_runs`` of them), and for at
    least ``measurement.warmup_min_s`` seconds after the first."""
    from llem.measure.warmup import warm_up

    warm = warm_up(work, config.measurement, backend.synchronize)
    methodology["warmup"] = warm.describe()
    return warm


@dataclass
class Window:
    """How long each measured window is, and from what. A window takes generate calls until it
    has lasted ``needed_s`` (at a call boundary), or ``max_calls``."""

    needed_s: float               # every window lasts at least this (quantisation bound, min_window_s)
    edge_s: Optional[float]       # the meter's edge uncertainty (one counter period)
    target: float                 # measurement.quantisation_target
    max_calls: int                # max_repeats_per_cycle x calls per pass
    calls_per_pass: int
    call_s: Optional[float]       # one generate call: the faster of the last two warm-up calls
    expected_calls: Optional[int]  # calls a window should take at call_s (for the record)


def size_window(config: ExperimentConfig, meter: Meter, work: Workload, warm, methodology: dict) -> Window:
    """7. The window's target length: the counter's quantisation bound, and at least
    ``measurement.min_window_s``. Each window then ends at the first call boundary past it, so
    nothing is planned here beyond the record: the calls and tokens a window should take at the
    warm-up's call time."""
    mc = config.measurement
    period = meter.update_period_s()
    edge_s = meter.edge_uncertainty_s()
    needed_s, sized_by = window_target_s(edge_s, mc)
    timed = list(warm.durations_s)
    call_s = min(timed[-2:]) if timed else None
    tokens_per_call = warm.output_tokens[-1] if warm.output_tokens else None
    max_calls = mc.max_repeats_per_cycle * work.calls_per_pass
    expected = (max(1, min(max_calls, math.ceil(needed_s / call_s))) if call_s and call_s > 0 else None)
    methodology["window"] = {
        "unit": "generate calls (one prepared batch each), in rotation over the batches of a pass",
        "rule": "a window takes calls until it has lasted target_window_s, ending at that call boundary "
                "(or at max_calls_per_window)",
        "target_window_s": needed_s, "sized_by": sized_by, "min_window_s": mc.min_window_s,
        "counter_update_period_s": period, "edge_uncertainty_s": edge_s, "quantisation_target": mc.quantisation_target,
        "call_s": call_s, "call_s_from": "the faster of the last two warm-up calls" if call_s else None,
        "output_tokens_per_call": tokens_per_call,
        "expected_calls_per_window": expected,
        "expected_output_tokens_per_window": expected * tokens_per_call if expected and tokens_per_call else None,
        "max_calls_per_window": max_calls,
        "calls_per_pass": work.calls_per_pass, "batches_per_pass": work.calls_per_pass,
        "prompts_per_pass": sum(len(x.prompts) for x in work.batches),
        "bound_formula": "edge_uncertainty_s / window_duration_s (opening edge aligned to a counter step: "
                         "edge_uncertainty_s = one counter period)",
    }
    return Window(needed_s=needed_s, edge_s=edge_s, target=mc.quantisation_target, max_calls=max_calls,
                  calls_per_pass=work.calls_per_pass, call_s=call_s, expected_calls=expected)


@dataclass
class MeasuredCycles:
    """What the measured cycles left: one CycleResult and meter reading per window, the sampler
    that ran beside them, the frozen heap and the span from the first opening to the last closing."""

    cycles: list[CycleResult]
    readings: list[WindowReading]
    sampler: Any
    heap: Any
    span_s: tuple[float, float]  # seconds from the experiment's start
    bounds: list[float]          # the quantisation bound of each window

    @property
    def input_tokens(self) -> int:
        return sum(c.input_tokens for c in self.cycles)

    @property
    def output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.cycles)

    @property
    def duration_s(self) -> float:
        return sum(c.duration_s for c in self.cycles)


def measure_cycles(config: ExperimentConfig, meter: Meter, devices: DeviceSet, backend, work: Workload, window: Window,
                   baseline, observers, between_cycles, t0: float, methodology: dict, say) -> MeasuredCycles:
    """7-8. The heap frozen, then the measured cycles: each one meter window bracketed by device
    synchronisation, holding only the workload's ``generate`` calls, with the sampler beside it."""
    from llem.measure.sampler import make_sampler

    sampler = make_sampler(config.energy.sampler, devices, config.energy.sample_interval_s, t0=t0)
    from llem.measure import gcfreeze

    # outside every window: the one full collection, then the warm heap frozen (llem/measure/gcfreeze.py)
    heap = gcfreeze.FrozenHeap(config.measurement.gc_freeze)
    heap.freeze()
    if heap.enabled:
        heap.workers = backend.freeze_workers_heap()
    max_calls, needed_s = window.max_calls, window.needed_s
    gen = backend.generate
    cycles: list[CycleResult] = []
    readings: list[WindowReading] = []
    say(f"measuring {config.measurement.cycles} cycles of >= {needed_s:.3g} s"
        + (f" (~{window.expected_calls} calls each)" if window.expected_calls else ""))
    sampler.start()
    steady_start = time.perf_counter() - t0
    first = 0  # where in the rotation of batches the next window starts: every batch gets its share
    try:
        for c in range(config.measurement.cycles):
            rotation = work.rotation_from(first)  # prepared before the window opens
            backend.synchronize()
            h = meter.begin()
            for o in observers:
                o.begin()
            t_open = time.perf_counter()
            n, out_tokens = timed_calls(gen, rotation, t_open, needed_s, max_calls)
            backend.synchronize()
            for o in reversed(observers):
                o.end()
            reading = meter.end(h)
            readings.append(reading)
            cycles.append(_cycle(c, reading, t0, work.input_tokens_of(first, n), out_tokens, baseline,
                                 calls=n, calls_per_pass=work.calls_per_pass))
            first += n
            say(f"cycle {c + 1}/{config.measurement.cycles}: {cycles[-1].output_tokens_per_s:.1f} tok/s"
                + (f", {cycles[-1].energy_per_output_token_j:.4g} J/token" if cycles[-1].energy_per_output_token_j else ""))
            if between_cycles is not None:
                sampler.stop()
                between_cycles(c, cycles[-1], backend)
                sampler.start()
    finally:
        steady_end = time.perf_counter() - t0
        heap.mark_end()
        sampler.stop()
    edge_s = window.edge_s
    methodology["cycles"] = config.measurement.cycles
    methodology["window_bracketing"] = "device synchronize before meter.begin() and before meter.end()"
    # from the first window opening to the last closing, in seconds from the experiment start
    methodology["measured_span_s"] = [steady_start, steady_end]
    methodology["window"]["calls_per_window"] = [c.calls for c in cycles]
    methodology["window"]["output_tokens_per_window"] = [c.output_tokens for c in cycles]
    methodology["window"]["windows_at_max_calls"] = sum(c.calls >= max_calls for c in cycles)
    bounds = [edge_s / r.duration_s for r in readings if edge_s and r.duration_s > 0]
    methodology["quantisation_bound_per_cycle"] = bounds or None
    methodology["quantisation_bound_max"] = max(bounds) if bounds else None
    methodology["meter_details"] = meter.describe()
    sampler.tag_windows([(k, r.start_time - t0, r.end_time - t0) for k, r in enumerate(readings)])
    methodology["sampler"] = sampler.describe()
    return MeasuredCycles(cycles=cycles, readings=readings, sampler=sampler, heap=heap,
                          span_s=(steady_start, steady_end), bounds=bounds)


def measure_latency_and_phases(config: ExperimentConfig, meter: Meter, backend, work: Workload, baseline,
                               window: Window, measured: MeasuredCycles, methodology: dict, say=None):
    """9. Latency pass and prefill/decode split: separate passes, outside the measured windows,
    costing together about ``measurement.outside_windows_share`` of the measured windows' time.
    The phase windows are sized by their own quantisation target; the latency pass takes what the
    budget leaves (at least one call, at most one pass). The heap stays frozen through them and
    is released after."""
    from llem.measure.latency import measure_latency
    from llem.measure.phases import measure_phases

    mc = config.measurement
    measured_s = measured.duration_s
    windows_tok_s = measured.output_tokens / measured_s if measured_s > 0 else None
    budget_s = mc.outside_windows_share * measured_s
    phase_s, phase_sized_by = phase_window_target_s(window.edge_s, mc)
    phase_planned_s = mc.phase_cycles * phase_s if mc.phase_split else 0.0
    latency_budget_s = max(0.0, budget_s - phase_planned_s)
    if say is not None:
        say("latency pass" + (f" and phase split ({mc.phase_cycles} prefill windows of >= {phase_s:.3g} s)"
                              if mc.phase_split else ""))
    t = time.perf_counter()
    latency = measure_latency(backend, work.batches, budget_s=latency_budget_s, windows_output_tokens_per_s=windows_tok_s)
    latency_s = time.perf_counter() - t
    t = time.perf_counter()
    phases = measure_phases(backend, work, meter, baseline, config, cycles=measured.cycles,
                            window_s=phase_s, sized_by=phase_sized_by)
    phases_s = time.perf_counter() - t
    from llem.measure import gcfreeze

    gcfreeze.release()
    methodology["gc"] = measured.heap.describe()
    methodology["outside_windows"] = {
        "share_target": mc.outside_windows_share, "measured_windows_s": measured_s, "budget_s": budget_s,
        "phase_windows_planned_s": phase_planned_s, "latency_budget_s": latency_budget_s,
        "latency_pass_s": latency_s, "phase_split_s": phases_s,
        "share_of_measured_windows": (latency_s + phases_s) / measured_s if measured_s > 0 else None,
        "rule": "phase windows sized by measurement.phase_quantisation_target; the latency pass takes calls while "
                "the budget left after the planned phase windows allows the next one (at least one call, at most "
                "one pass over the prepared batches)",
    }
    return latency, phases


def describe_backend(config: ExperimentConfig, backend, devices: DeviceSet, methodology: dict, warnings: list[str]):
    """What the backend reports about the run: its settings, FLOPs, memory and the GPUs it used."""
    methodology["backend"] = backend.describe()
    flops = backend.flops(config.dataset.input_len, config.output_len, config.batch)
    memory = backend.memory()
    used = backend.devices_used() if hasattr(backend, "devices_used") else None
    if used is not None and devices and len(used) != len(devices):
        warnings.append(f"energy sums all {len(devices)} GPUs visible to the job but the model occupies "
                        f"{len(used)} (cuda {used}); set CUDA_VISIBLE_DEVICES to exactly those GPUs")
    return flops, memory


def summarize_cycles(config: ExperimentConfig, meter: Meter, cycles: list[CycleResult], baseline, load_reading):
    """10. Statistics over the cycles, and the energy totals."""
    # one estimator for every headline number: the ratio of totals over the cycles, with its CI
    stats = headline_stats(cycles, method=config.measurement.ci_method,
                           samples=config.measurement.bootstrap_samples, seed=config.seed)
    energy = _energy_summary(meter, cycles, baseline, load_reading)
    return stats, energy


def measurement_caveats(config: ExperimentConfig, meter: Meter, devices: DeviceSet, environment: dict, baseline,
                        window: Window, measured: MeasuredCycles, stats: dict, energy: EnergySummary,
                        latency=None) -> list[str]:
    """10. Warnings for anything that weakens the number."""
    from llem.measure.warnings_check import (environment_warnings, foreign_process_warnings, latency_warnings,
                                             measurement_warnings)

    warnings: list[str] = []
    warnings.extend(measurement_warnings(
        meter=meter, bounds=measured.bounds, target=window.target, durations_s=[c.duration_s for c in measured.cycles],
        cv=stats["energy_per_output_token_j"].cv if energy.measured else None,
        cv_threshold=config.measurement.cv_warn_threshold, throughput_cv=stats["output_tokens_per_s"].cv))
    warnings.extend(environment_warnings(environment, measured.sampler, config))
    warnings.extend(foreign_process_warnings(environment, devices))
    warnings.extend(latency_warnings(latency, config.measurement.latency_throughput_tolerance))
    if baseline is not None and baseline.settle.get("settled") is False:
        warnings.append(f"unsettled baseline: GPU power was still falling after {baseline.settle.get('waited_s')} s "
                        "of waiting, so baseline_power_w may be too high and energy_adjusted_j too low "
                        "(raise energy.baseline.settle_max_s)")
    if energy.measured and meter.measures_gpu and not window.edge_s:
        warnings.append(f"quantisation bound unknown: the {meter.name} meter's counter period could not be "
                        "detected (counter not advancing?), so windows were not sized for it")
    return warnings


def claim_steady_state(warm, cycles: list[CycleResult], energy: EnergySummary, methodology: dict,
                       warnings: list[str]) -> bool:
    """Whether the measured span may be called steady state (``steady_state_window``), and why:
    the warm-up must have settled and the cycles must pass the tests of ``stability.py``."""
    from llem.measure.stability import judge_steady_state
    from llem.measure.warmup import steady_state_claim

    verdict = judge_steady_state(*steady_state_claim(warm), cycles, energy.measured)
    warnings.extend(verdict.warnings)
    methodology["steady_state"] = verdict.text
    methodology["steady_state_claimed"] = verdict.claimed
    methodology["steady_state_test"] = verdict.test
    return verdict.claimed


def evaluate_quality(config: ExperimentConfig, backend, meter: Meter, baseline, measured, t0: float,
                     job_dir: Optional[Path], say, stats: dict, energy: EnergySummary):
    """quality=lm_eval (docs/quality.md): lm-eval on this same backend object, in its own meter
    windows, after every measured window and pass above (so it cannot touch their numbers); the
    sampler's rows inside those windows are tagged ``phase`` = "quality". None when quality=none."""
    from llem.quality import run_quality

    return run_quality(config, backend, meter, baseline, measured.sampler, t0, job_dir=job_dir, say=say,
                       stats=stats, energy=energy)


def write_timeseries(job_dir: Optional[Path], sampler) -> Optional[str]:
    """The sampler's power/temperature/clock series beside result.json, when it has any."""
    if job_dir is not None and sampler.has_data():
        return str(sampler.write_parquet(job_dir / "timeseries.parquet").name)
    return None


def close_after_measurement(result: ExperimentResult, backend, meter: Meter, opened: list) -> None:
    """The measurement is complete: a shutdown problem (a tensor-parallel follower that had to be
    killed) becomes a warning, never a failed job."""
    opened.clear()
    try:
        backend.close()
    except Exception as err:
        result.warnings.append(f"backend shutdown after the measurement failed: {type(err).__name__}: {err}")
    result.warnings.extend(f"after the measurement completed: {w}" for w in getattr(backend, "shutdown_warnings", []))
    meter.close()


def _cycle(index, r: WindowReading, t0, in_tok, out_tok, baseline, *, calls: int, calls_per_pass: int) -> CycleResult:
    dur = r.duration_s
    e = r.energy_j
    adj = None
    per_dev = []
    for d in r.per_device:
        bw = baseline.power_w.get(d.uuid) if baseline else None
        per_dev.append(DeviceEnergy(index=d.index, uuid=d.uuid, name=d.name, energy_j=d.energy_j, baseline_power_w=bw))
    if e is not None and baseline is not None and baseline.total_power_w is not None:
        adj = e - baseline.total_power_w * dur
    return CycleResult(
        index=index, calls=calls, repeats=calls / calls_per_pass, start_s=r.start_time - t0, duration_s=dur,
        input_tokens=in_tok, output_tokens=out_tok, energy_j=e, energy_adjusted_j=adj,
        cpu_energy_j=r.cpu_energy_j, dram_energy_j=r.dram_energy_j, per_device=per_dev,
        energy_per_output_token_j=(e / out_tok) if e is not None and out_tok else None,
        output_tokens_per_s=out_tok / dur if dur > 0 else 0.0,
        tokens_per_joule=(out_tok / e) if e else None,
    )


def _energy_summary(meter: Meter, cycles: list[CycleResult], baseline, load_reading) -> EnergySummary:
    if isinstance(meter, NoMeter) or not cycles or any(c.energy_j is None for c in cycles):
        reason = getattr(meter, "reason", None) or "the meter returned no energy for the measured windows"
        return EnergySummary(measured=False, not_measured_reason=reason, meter=meter.name, source=meter.source or None,
                             estimated=meter.estimated)
    e = sum(c.energy_j for c in cycles)
    out = sum(c.output_tokens for c in cycles)
    adj = sum(c.energy_adjusted_j for c in cycles) if all(c.energy_adjusted_j is not None for c in cycles) else None
    per_dev: dict = {}
    for c in cycles:
        for d in c.per_device:
            cur = per_dev.setdefault(d.uuid or d.index, DeviceEnergy(index=d.index, uuid=d.uuid, name=d.name, energy_j=0.0,
                                                                     baseline_power_w=d.baseline_power_w))
            cur.energy_j = (cur.energy_j or 0.0) + (d.energy_j or 0.0)
    cpu = [c.cpu_energy_j for c in cycles]
    dram = [c.dram_energy_j for c in cycles]
    adj_reason = None
    if adj is None:
        adj_reason = ("no idle baseline: " + (
            "energy.baseline.enabled=false" if meter.measures_gpu and baseline is None else
            f"meter {meter.name} reads no GPU energy counter" if not meter.measures_gpu else
            "the baseline window returned no energy"))
    return EnergySummary(
        measured=True, meter=meter.name, source=meter.source, estimated=meter.estimated,
        scope=getattr(meter, "scope", None) or ("gpu" if cycles[0].per_device else "host"),
        energy_j=e, energy_adjusted_j=adj, energy_adjusted_reason=adj_reason,
        baseline_power_w=baseline.total_power_w if baseline else None,
        energy_per_output_token_j=e / out if out else None,
        energy_adjusted_per_output_token_j=(adj / out) if adj is not None and out else None,
        tokens_per_joule=out / e if e else None,
        cpu_energy_j=sum(cpu) if all(v is not None for v in cpu) else None,
        dram_energy_j=sum(dram) if all(v is not None for v in dram) else None,
        per_device=list(per_dev.values()),
        load_energy_j=load_reading.energy_j if load_reading is not None else None,
    )
