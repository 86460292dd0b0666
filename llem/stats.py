"""Statistics over measured cycles: mean, std, CV and a seeded bootstrap 95% CI."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from llem.result import Percentiles, Stat


def summarize(values: Sequence[Optional[float]], *, samples: int = 2000, seed: int = 0) -> Stat:
    """Stat over cycles. ``None`` values mean "not measured": if any is missing, only n is set."""
    vals = list(values)
    if not vals or any(v is None for v in vals):
        return Stat(n=len(vals))
    x = np.asarray(vals, dtype=float)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    cv = std / mean if mean else None
    if len(x) > 1:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(x), size=(samples, len(x)))
        means = x[idx].mean(axis=1)
        lo, hi = (float(v) for v in np.percentile(means, [2.5, 97.5]))
    else:
        lo = hi = mean
    return Stat(n=len(x), mean=mean, std=std, cv=cv, ci95_low=lo, ci95_high=hi)


def percentiles(values: Sequence[float]) -> Percentiles:
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if x.size == 0:
        return Percentiles(n=0)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(x, [50, 90, 95, 99]))
    return Percentiles(n=int(x.size), mean=float(x.mean()), p50=p50, p90=p90, p95=p95, p99=p99)
