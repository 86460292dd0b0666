"""Prefill/decode split by subtraction, in extra windows after the measured cycles.

Method: ``measurement.phase_cycles`` meter windows each repeat prefill-only passes
(``generate`` with one new token) over the same batches as the measured cycles. Per workload
pass, prefill = mean prefill-window value / its repeats; full = mean measured-cycle value / its
repeats; decode = full - prefill. Energy, time and tokens are given per phase and per pass.

Error, stated in every result:
- bias: the prefill pass also runs one sampling step and generate()'s fixed costs (input
  checks, cache allocation, logits processors, host overhead); all of it lands in prefill, so
  prefill is overestimated and decode underestimated by about one decode step per batch;
- noise: prefill and full passes run in different windows, so drift between them enters the
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

METHOD = ("subtraction: prefill-only passes (generate with max_new_tokens=1) over the same batches in "
          "{n} separate meter windows; decode = full (measured cycles) - prefill, per workload pass")
ERROR = ("bias: the prefill pass includes one sampling step and generate()'s fixed per-call costs, all counted "
         "as prefill (prefill overestimated, decode underestimated by ~one decode step per batch); noise: "
         "prefill and full passes run in different windows, the standard errors cover window-to-window "
         "scatter only{extra}")


def _mean_se(xs: list[float]) -> tuple[Optional[float], Optional[float]]:
    if not xs:
        return None, None
    m = statistics.fmean(xs)
    return m, (statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else None)


def _diff_se(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return math.sqrt(a * a + b * b) if a is not None and b is not None else None


def measure_phases(backend, work, batches, meter, baseline, repeats, config, cycles=None) -> Optional[Phases]:
    mc = config.measurement
    if not mc.phase_split:
        return None
    if not cycles:
        return Phases(method="not measured: no measured cycles to subtract from", error="n/a")
    try:
        backend.synchronize()
        t = time.perf_counter()
        for b in batches:
            backend.prefill(b)
        backend.synchronize()
        prefill_pass_s = time.perf_counter() - t
    except NotImplementedError:
        return Phases(method=f"not measured: backend {backend.name} has no prefill-only pass", error="n/a")

    # prefill windows sized like the measured ones: by the counter's quantisation target, or by
    # measurement.min_window_s where the meter has no counter period
    from llem.measure.harness import window_target_s

    target_s, _ = window_target_s(meter.edge_uncertainty_s(), mc)
    p_repeats = max(1, min(mc.max_repeats_per_cycle, math.ceil(target_s / max(prefill_pass_s, 1e-9))))

    readings, reps = [], []
    for _ in range(mc.phase_cycles):
        backend.synchronize()
        h = meter.begin()
        n = 0
        t_open = time.perf_counter()
        # as in the measured cycles: the planned passes, then more only if they ran faster than
        # the one timed pass said (that pass is the first, cold one, so it usually overestimates)
        while n < p_repeats or (n < mc.max_repeats_per_cycle and time.perf_counter() - t_open < target_s):
            for b in batches:
                backend.prefill(b)
            n += 1
        backend.synchronize()
        readings.append(meter.end(h))
        reps.append(n)

    base_w = baseline.total_power_w if baseline is not None else None
    full_e = [c.energy_j / c.repeats for c in cycles if c.energy_j is not None]
    full_t = [c.duration_s / c.repeats for c in cycles]
    pre_e = [r.energy_j / n for r, n in zip(readings, reps) if r.energy_j is not None]
    pre_t = [r.duration_s / n for r, n in zip(readings, reps)]
    energy_ok = len(full_e) == len(cycles) and len(pre_e) == len(readings)

    prompts = sum(len(b.prompts) for b in batches)
    out_per_pass = cycles[0].output_tokens // cycles[0].repeats
    decode_tokens = out_per_pass - prompts

    ft, ft_se = _mean_se(full_t)
    pt, pt_se = _mean_se(pre_t)
    prefill = PhaseResult(duration_s=pt, tokens=work.input_tokens)
    decode = PhaseResult(duration_s=ft - pt, tokens=decode_tokens)
    res = dict(prefill_energy_per_prompt_j=None, decode_energy_per_output_token_j=None)
    reason = None
    extra = ""
    if energy_ok:
        fe, fe_se = _mean_se(full_e)
        pe, pe_se = _mean_se(pre_e)
        de, de_se = fe - pe, _diff_se(fe_se, pe_se)
        prefill.energy_j, decode.energy_j = pe, de
        if base_w is not None:
            prefill.energy_adjusted_j = pe - base_w * pt
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
    windows = {"prefill_windows": len(readings), "prefill_repeats_per_window": reps,
               "prefill_window_s": [r.duration_s for r in readings], "full_cycles": len(cycles),
               "prefill_duration_se_s": pt_se, "full_duration_se_s": ft_se, "per": "one workload pass",
               "prompts_per_pass": prompts, "output_tokens_per_pass": out_per_pass,
               "meter": meter.name, "meter_estimated": bool(getattr(meter, "estimated", False))}
    return Phases(method=METHOD.format(n=len(readings)), error=ERROR.format(extra=extra), prefill=prefill,
                  decode=decode, energy_not_measured_reason=reason, windows=windows, **res)
