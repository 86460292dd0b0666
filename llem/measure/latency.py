"""Per-request latency from per-token timestamps, in a separate pass outside every measured window.

The backend records one timestamp per generated token (``GenerationOutput.token_times``, on the
host's ``perf_counter`` clock) during timed generate calls over the same batches, perturbing
decoding as little as it can (the PyTorch backend records a CUDA event per decoding step and
reads them once after the call, so no per-token host synchronisation is added); this module
turns them into TTFT, ITL, TPOT and end-to-end latency afterwards, so no aggregation work runs
while tokens are being timed.

Cost and precision: the pass takes calls in the order of the prepared batches while the time
budget it is given allows the next one (at least one call, at most one pass over the batches),
so at batch 1 on a GPU it is often a single request. ``Latency.precision`` states how many
requests and gaps the percentiles rest on. ``latency_throughput_ratio`` (the pass's output tokens
per second over the measured windows') says whether the timed calls decoded at the windows'
speed; the harness warns when it is off by more than ``measurement.latency_throughput_tolerance``.

Definitions, per request (``t0``: the generate call's start, ``t_i``: token ``i`` on the host):
- ``ttft_ms`` = t_1 - t0 (includes prefill and the first sampling step);
- ``itl_ms`` = every gap t_{i+1} - t_i; ``itl_trimmed_ms`` drops each request's first and last
  gap (the first decode step carries cache growth and allocator warm-up, the last the stop
  check), which is the steady decode rhythm;
- ``tpot_ms`` = (t_N - t_1) / (N - 1), one number per request;
- ``e2e_latency_ms`` = t_N - t0.
"""
from __future__ import annotations

from typing import Optional

from llem.measure.stats import percentiles
from llem.result import Latency


def latencies_from_times(start: float, times: list[float]) -> dict:
    if not times:
        return {}
    ttft = (times[0] - start) * 1e3
    itl = [(b - a) * 1e3 for a, b in zip(times, times[1:])]
    e2e = (times[-1] - start) * 1e3
    tpot = (e2e - ttft) / (len(times) - 1) if len(times) > 1 else None
    return {"ttft_ms": ttft, "itl_ms": itl, "tpot_ms": tpot, "e2e_latency_ms": e2e}


def aggregate(outputs, method: str) -> Latency:
    """Percentiles over all requests of all outputs."""
    ttft, itl, itl_trim, tpot, e2e = [], [], [], [], []
    for o in outputs:
        for times in o.token_times or []:
            d = latencies_from_times(o.start_time, times)
            if not d:
                continue
            ttft.append(d["ttft_ms"])
            itl.extend(d["itl_ms"])
            itl_trim.extend(d["itl_ms"][1:-1])
            if d["tpot_ms"] is not None:
                tpot.append(d["tpot_ms"])
            e2e.append(d["e2e_latency_ms"])
    return Latency(method=method, ttft_ms=percentiles(ttft), itl_ms=percentiles(itl),
                   itl_trimmed_ms=percentiles(itl_trim), tpot_ms=percentiles(tpot), e2e_latency_ms=percentiles(e2e))


def measure_latency(backend, batches, passes: int = 1, *, budget_s: Optional[float] = None,
                    windows_output_tokens_per_s: Optional[float] = None) -> Optional[Latency]:
    """Timed generate calls over ``batches`` (``passes`` times over at most); never inside a
    measured window. With ``budget_s``, the next call starts only while the calls so far plus one
    more at their mean duration stay within it; the first call always runs."""
    outs = []
    spent_s = 0.0
    try:
        for k, b in enumerate(b for _ in range(passes) for b in batches):
            if k and budget_s is not None and spent_s + spent_s / k > budget_s:
                break
            backend.synchronize()
            o = backend.generate(b, timing=True)
            outs.append(o)
            spent_s += (o.end_time - o.start_time) if o.end_time is not None and o.start_time is not None else 0.0
    except NotImplementedError as err:
        return Latency(method=f"not measured: {err}")
    batching = backend.latency_batching() if hasattr(backend, "latency_batching") else "batching not reported"
    path = getattr(backend, "latency_path", None) or "host timestamp per generated token"
    method = (f"{backend.name}: {path}; in a separate timed pass after the measured windows; {batching}; "
              "itl_trimmed drops each request's first and last gap")
    lat = aggregate(outs, method)
    out_tok = sum(o.output_tokens for o in outs)
    tok_s = out_tok / spent_s if spent_s > 0 else None
    lat.calls = len(outs)
    lat.requests = sum(o.num_requests for o in outs)
    lat.output_tokens = out_tok
    lat.duration_s = spent_s
    lat.output_tokens_per_s = tok_s
    if tok_s is not None and windows_output_tokens_per_s:
        lat.latency_throughput_ratio = tok_s / windows_output_tokens_per_s
    lat.precision = (f"{lat.ttft_ms.n} requests (TTFT, TPOT, E2E) and {lat.itl_ms.n} inter-token gaps from "
                     f"{lat.calls} generate call(s) lasting {spent_s:.3g} s"
                     + (f" (time budget {budget_s:.3g} s)" if budget_s is not None else "")
                     + "; percentiles above p50 of fewer than ~20 values are close to the maximum")
    return lat
