"""Statistics over measured cycles: mean, std, CV and a 95% CI of the mean.

The CI is Student's t by default (``measurement.ci_method=t``): a handful of cycles is what an
energy experiment can afford, and at n = 5 a percentile bootstrap of the mean is about 38% too
narrow (it spreads by the plug-in standard error and normal-like quantiles instead of s/sqrt(n)
and t(n-1)), so its "95%" covers the true mean in about 85% of experiments
(tests/measure/test_stats.py). The seeded bootstrap stays available (``ci_method=bootstrap``) for
cycles far from normal and many of them.
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import numpy as np

from llem.result import Percentiles, Stat

CI_METHODS = ("t", "bootstrap")


@functools.lru_cache(maxsize=512)
def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (p > 0.5) of Student's t with ``df`` degrees of freedom: bisection on
    the CDF, whose density is integrated with Simpson's rule (numpy only; error below 1e-6 for the
    quantiles a CI needs)."""
    if not 0.5 < p < 1 or df < 1:
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df >= 1, got p={p}, df={df}")
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(x: float) -> float:
        g = np.linspace(0.0, x, 4001)
        f = c * (1.0 + g * g / df) ** (-(df + 1) / 2)
        return 0.5 + x / 4000 / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def mean_ci95(x: np.ndarray, method: str = "t", samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% CI of the mean of ``x`` (at least two values)."""
    return mean_ci(x, 0.95, method, samples, seed)


def mean_ci(x: np.ndarray, level: float, method: str = "t", samples: int = 2000,
            seed: int = 0) -> tuple[float, float]:
    """CI of the mean of ``x`` (at least two values) at confidence ``level`` (0.5 < level < 1)."""
    q = (1 + level) / 2  # exactly 0.975 at 95%
    mean = float(x.mean())
    if method == "t":
        half = t_quantile(q, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
        return mean - half, mean + half
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, len(x), size=(samples, len(x)))].mean(axis=1)
        lo, hi = np.percentile(means, [100 - 100 * q, 100 * q])
        return float(lo), float(hi)
    raise ValueError(f"ci_method={method!r}: expected one of {CI_METHODS}")


def describe_method(method: str, samples: int) -> str:
    return ("Student t 95% CI of the mean over cycles (n-1 degrees of freedom)" if method == "t"
            else f"seeded percentile bootstrap 95% CI of the mean over cycles ({samples} resamples)")


def ci_kind(description: Optional[str]) -> Optional[str]:
    """The kind of CI a ``Stat.method`` description names ("Student t" or "bootstrap"), so that
    results written by any llem version can be told apart; kept beside ``describe_method``."""
    if not description:
        return None
    if description.startswith("Student t"):
        return "Student t"
    return "bootstrap" if "bootstrap" in description else description


def summarize(values: Sequence[Optional[float]], *, method: str = "t", samples: int = 2000, seed: int = 0) -> Stat:
    """Stat over cycles. ``None`` values mean "not measured": if any is missing, only n is set.
    One cycle has no spread to estimate: std, CV and CI stay unset rather than read as zero."""
    vals = list(values)
    how = describe_method(method, samples)
    if not vals or any(v is None for v in vals):
        return Stat(n=len(vals), method=how)
    x = np.asarray(vals, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return Stat(n=1, mean=mean, method=f"{how}; one cycle: no spread or CI")
    std = float(x.std(ddof=1))
    lo, hi = mean_ci95(x, method, samples, seed)
    return Stat(n=len(x), mean=mean, std=std, cv=std / mean if mean else None, ci95_low=lo, ci95_high=hi, method=how)


def percentiles(values: Sequence[float]) -> Percentiles:
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if x.size == 0:
        return Percentiles(n=0)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(x, [50, 90, 95, 99]))
    return Percentiles(n=int(x.size), mean=float(x.mean()), p50=p50, p90=p90, p95=p95, p99=p99)
