"""Prefill/decode split by subtraction, in extra windows after the measured cycles.

Method: ``measurement.phase_cycles`` meter windows each take prefill-only calls (``generate``
with one new token) over the same batches as the measured cycles, in the same rotation, until
the window has lasted its target. Per generate call, prefill = prefill-window value / its calls;
full = measured-cycle value / its calls; decode = full - prefill; the result gives them per
workload pass (x calls per pass). Energy, time and tokens are given per phase and per pass.

Window length: the prefill windows have their own, looser quantisation target
(``measurement.phase_quantisation_target``, default 2.5%: 4 s on a counter with a 100 ms step,
against 20 s for the measured windows at 0.5%), so that they and the latency pass cost about
``measurement.outside_windows_share`` of the measured windows' time. Each window's bound is
recorded.

Error, stated in every result:
- bias: the prefill call also runs one sampling step and generate()'s fixed costs (input
  checks, cache allocation, logits processors, host overhead); all of it lands in prefill, so
  prefill is overestimated and decode underestimated by about one decode step per batch;
- quantisation: each prefill window reads up to its bound low (at most the phase target);
- noise: prefill and full calls run in different windows, so drift between them enters the
  difference; the reported standard errors cover window-to-window scatter only;
- tokens: the first output token of each request is produced by the prefill forward pass, so
  decode tokens = output tokens - requests.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Optional

from llem.result import PhaseResult, Phases

METHOD = ("subtraction: prefill-only generate calls (max_new_tokens=1) over the same batches in "
          "{n} separate meter windows; decode = full (measured cycles) - prefill, per generate call, "
          "given per workload pass")
ERROR = ("bias: the prefill call includes one sampling step and generate()'s fixed per-call costs, all counted "
         "as prefill (prefill overestimated, decode underestimated by ~one decode step per batch); "
         "quantisation: {quant}; noise: prefill and full calls run in different windows, the standard errors "
         "cover window-to-window scatter only{extra}")


def _mean_se(xs: list[float]) -> tuple[Optional[float], Optional[float]]:
    if not xs:
        return None, None
    m = statistics.fmean(xs)
    return m, (statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else None)


def _diff_se(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return math.sqrt(a * a + b * b) if a is not None and b is not None else None


def measure_phases(backend, work, meter, baseline, config, cycles=None, *, window_s: Optional[float] = None,
                   sized_by: str = "") -> Optional[Phases]:
    """``window_s``: how long each prefill window lasts at least (``harness.phase_window_target_s``;
    computed here when not given)."""
    from llem.measure.harness import phase_window_target_s, timed_calls

    mc = config.measurement
    if not mc.phase_split:
        return None
    if not cycles:
        return Phases(method="not measured: no measured cycles to subtract from", error="n/a")
    batches = work.batches
    per_pass = work.calls_per_pass
    try:
        # two timed calls outside every window: the first pays for what a new call shape costs
        call_s = []
        for k in range(2):
            backend.synchronize()
            t = time.perf_counter()
            backend.prefill(batches[k % per_pass])
            backend.synchronize()
            call_s.append(time.perf_counter() - t)
    except NotImplementedError:
        return Phases(method=f"not measured: backend {backend.name} has no prefill-only pass", error="n/a")

    if window_s is None:
        window_s, sized_by = phase_window_target_s(meter.edge_uncertainty_s(), mc)
    max_calls = mc.max_repeats_per_cycle * per_pass
    prefill = backend.prefill
    readings, calls = [], []
    first = 0
    for _ in range(mc.phase_cycles):
        rotation = work.rotation_from(first)
        backend.synchronize()
        h = meter.begin()
        n, _ = timed_calls(prefill, rotation, time.perf_counter(), window_s, max_calls)
        backend.synchronize()
        readings.append(meter.end(h))
        calls.append(n)
        first += n

    base_w = baseline.total_power_w if baseline is not None else None

    def cycle_calls(c) -> float:
        return c.calls if c.calls is not None else c.repeats * per_pass

    # per generate call; x per_pass gives per workload pass (every call has the same shape)
    full_e = [c.energy_j / cycle_calls(c) * per_pass for c in cycles if c.energy_j is not None]
    full_t = [c.duration_s / cycle_calls(c) * per_pass for c in cycles]
    pre_e = [r.energy_j / n * per_pass for r, n in zip(readings, calls) if r.energy_j is not None]
    pre_t = [r.duration_s / n * per_pass for r, n in zip(readings, calls)]
    energy_ok = len(full_e) == len(cycles) and len(pre_e) == len(readings)

    prompts = sum(len(b.prompts) for b in batches)
    out_per_pass = round(sum(c.output_tokens for c in cycles) / sum(cycle_calls(c) for c in cycles) * per_pass)
    decode_tokens = out_per_pass - prompts

    ft, ft_se = _mean_se(full_t)
    pt, pt_se = _mean_se(pre_t)
    prefill_r = PhaseResult(duration_s=pt, tokens=work.input_tokens)
    decode = PhaseResult(duration_s=ft - pt, tokens=decode_tokens)
    res = dict(prefill_energy_per_prompt_j=None, decode_energy_per_output_token_j=None)
    reason = None
    extra = ""
    edge_s = meter.edge_uncertainty_s()
    bounds = [edge_s / r.duration_s for r in readings if edge_s and r.duration_s > 0]
    if bounds:
        quant = (f"each prefill window reads up to {max(bounds):.2%} low (counter bound; "
                 f"measurement.phase_quantisation_target {mc.phase_quantisation_target:.2%}, against "
                 f"{mc.quantisation_target:.2%} for the measured windows), which lands in prefill and, "
                 "subtracted, in decode")
    else:
        quant = "no counter period (no quantisation bound to state); window timing only"
    if energy_ok:
        fe, fe_se = _mean_se(full_e)
        pe, pe_se = _mean_se(pre_e)
        de, de_se = fe - pe, _diff_se(fe_se, pe_se)
        prefill_r.energy_j, decode.energy_j = pe, de
        if base_w is not None:
            prefill_r.energy_adjusted_j = pe - base_w * pt
            decode.energy_adjusted_j = de - base_w * (ft - pt)
        res = dict(
            prefill_energy_per_prompt_j=pe / prompts,
            decode_energy_per_output_token_j=de / decode_tokens if decode_tokens > 0 else None,
            prefill_energy_per_prompt_se_j=pe_se / prompts if pe_se is not None else None,
            decode_energy_per_output_token_se_j=(de_se / decode_tokens) if de_se is not None and decode_tokens > 0 else None,
        )
        if de <= 0:
            extra = "; decode energy came out <= 0: windows too short to resolve the split, lengthen them"
    else:
        reason = getattr(meter, "reason", None) or "the meter returned no energy for the phase windows"
    windows = {"prefill_windows": len(readings), "prefill_calls_per_window": calls,
               "prefill_window_s": [r.duration_s for r in readings], "prefill_call_s": min(call_s),
               "target_window_s": window_s, "sized_by": sized_by,
               "quantisation_target": mc.phase_quantisation_target,
               "quantisation_bound_per_window": bounds or None, "quantisation_bound_max": max(bounds) if bounds else None,
               "full_cycles": len(cycles), "prefill_duration_se_s": pt_se, "full_duration_se_s": ft_se,
               "per": "one workload pass", "calls_per_pass": per_pass,
               "prompts_per_pass": prompts, "output_tokens_per_pass": out_per_pass,
               "meter": meter.name, "meter_estimated": bool(getattr(meter, "estimated", False))}
    return Phases(method=METHOD.format(n=len(readings)), error=ERROR.format(quant=quant, extra=extra),
                  prefill=prefill_r, decode=decode, energy_not_measured_reason=reason, windows=windows, **res)
