"""Per-request latency from per-token timestamps, measured in a separate timed pass."""
from __future__ import annotations

from llem.result import Latency
from llem.stats import percentiles


def latencies_from_times(start: float, times: list[float]) -> dict:
    if not times:
        return {}
    ttft = (times[0] - start) * 1e3
    itl = [(b - a) * 1e3 for a, b in zip(times, times[1:])]
    e2e = (times[-1] - start) * 1e3
    tpot = (e2e - ttft) / (len(times) - 1) if len(times) > 1 else None
    return {"ttft_ms": ttft, "itl_ms": itl, "tpot_ms": tpot, "e2e_latency_ms": e2e}


def measure_latency(backend, batches) -> Latency | None:
    try:
        outs = [backend.generate(b, timing=True) for b in batches]
    except NotImplementedError:
        return None
    ttft, itl, itl_trim, tpot, e2e = [], [], [], [], []
    for o in outs:
        for times in o.token_times or []:
            d = latencies_from_times(o.start_time, times)
            if not d:
                continue
            ttft.append(d["ttft_ms"])
            itl.extend(d["itl_ms"])
            itl_trim.extend(d["itl_ms"][1:-1] if len(d["itl_ms"]) > 2 else d["itl_ms"])
            if d["tpot_ms"] is not None:
                tpot.append(d["tpot_ms"])
            e2e.append(d["e2e_latency_ms"])
    return Latency(method=f"{backend.name}: per-token host timestamps in a separate pass (not inside measured windows)",
                   ttft_ms=percentiles(ttft), itl_ms=percentiles(itl), itl_trimmed_ms=percentiles(itl_trim),
                   tpot_ms=percentiles(tpot), e2e_latency_ms=percentiles(e2e))
