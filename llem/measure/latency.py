"""Per-request latency from per-token timestamps, in a separate pass outside every measured window.

The backend records one host timestamp per generated token (``GenerationOutput.token_times``)
during a timed pass over the same batches; this module turns them into TTFT, ITL, TPOT and
end-to-end latency afterwards, so no aggregation work runs while tokens are being timed.

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


def measure_latency(backend, batches, passes: int = 1) -> Optional[Latency]:
    """One timed pass (or ``passes``) over ``batches``; never inside a measured window."""
    outs = []
    try:
        for _ in range(passes):
            for b in batches:
                backend.synchronize()
                outs.append(backend.generate(b, timing=True))
    except NotImplementedError as err:
        return Latency(method=f"not measured: {err}")
    batching = backend.latency_batching() if hasattr(backend, "latency_batching") else "batching not reported"
    method = (f"{backend.name}: host timestamp per generated token in a separate timed pass after the measured "
              f"windows; {batching}; itl_trimmed drops each request's first and last gap")
    return aggregate(outs, method)
