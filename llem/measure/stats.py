"""Statistics over measured cycles.

Every headline metric is a ratio of two totals over the measured cycles (llem's one estimator):

- ``energy_per_output_token_j`` = total energy / total output tokens,
- ``energy_adjusted_per_output_token_j`` = total adjusted energy / total output tokens,
- ``tokens_per_joule`` = total output tokens / total energy (the reciprocal of the first),
- ``output_tokens_per_s`` = total output tokens / total duration of the windows.

That is the quantity a reader means (joules actually spent per token actually produced), and it
weights a cycle by its share of the work: a short cycle that ran fast does not pull the point as
far as it pulls a mean of per-cycle rates. ``Stat.value`` is this point, and the 95% CI is an
interval *for that point*, so the point always lies inside its own interval.

The CI (``measurement.ci_method``):

- ``t`` (default): the delta-method standard error of a ratio of means (the ratio estimator of
  survey sampling), taken on the log scale with Student's t quantile on n - 1 degrees of freedom:
  ``R x exp(-/+ t(0.975, n-1) x se(R) / R)``. On the log scale a positive quantity keeps a
  positive interval (never a negative energy or throughput bound however few and noisy the
  cycles), and the reciprocal metric gets exactly the reciprocal interval. With equal token counts
  per cycle (the usual case) ``se(R)`` is the plain standard error of the per-cycle values, so
  for steady cycles the interval matches the Student t interval of the mean it replaces.
- ``bootstrap``: a seeded percentile bootstrap of the ratio of sums over resampled cycles; too
  narrow below about 20 cycles (tests/measure/test_stats.py), kept for many cycles far from normal.

``cycle_mean``/``std``/``cv`` describe the per-cycle values (the spread the warnings look at); they are
not the estimate. ``mean_ci``/``mean_ci95`` (the t or bootstrap CI of a plain mean) stay for the
validation scripts in ``benchmarks/``.
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import numpy as np

from llem.result import Percentiles, Stat

CI_METHODS = ("t", "bootstrap")
LEVEL = 0.95


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
    """The ``Stat.method`` text of a headline metric: the estimator, then how its CI was made."""
    if method == "t":
        return ("Student t 95% CI of the ratio of totals over cycles (delta method on the log scale, "
                "n-1 degrees of freedom)")
    if method == "bootstrap":
        return f"seeded percentile bootstrap 95% CI of the ratio of totals over cycles ({samples} resamples)"
    raise ValueError(f"ci_method={method!r}: expected one of {CI_METHODS}")


def ci_kind(description: Optional[str]) -> Optional[str]:
    """The kind of CI a ``Stat.method`` description names, so that results written by any llem
    version can be told apart: "Student t (ratio)", "bootstrap (ratio)", or for results written
    before the ratio estimator "Student t" / "bootstrap" (a CI of the mean of per-cycle values)."""
    if not description:
        return None
    ratio = " (ratio)" if "ratio of totals" in description else ""
    if description.startswith("Student t"):
        return "Student t" + ratio
    return ("bootstrap" + ratio) if "bootstrap" in description else description


def ratio_ci(num: np.ndarray, den: np.ndarray, method: str = "t", samples: int = 2000, seed: int = 0,
             level: float = LEVEL) -> tuple[float, float, str]:
    """CI at ``level`` of ``num.sum() / den.sum()`` from at least two cycles, and a note ("" when
    the interval is the documented one). The point is always inside the interval."""
    n = len(num)
    r = float(num.sum() / den.sum())
    q = (1 + level) / 2
    if method == "t":
        # delta method for a ratio of means: the residuals num_i - R den_i carry its variance
        d = num - r * den
        se = float(np.sqrt((d @ d) / (n - 1)) / (math.sqrt(n) * abs(den.mean())))
        t = t_quantile(q, n - 1)
        if r > 0:
            f = math.exp(t * se / r)
            return r / f, r * f, ""
        # a ratio that is not positive (adjusted energy below the idle baseline) has no log scale
        return r - t * se, r + t * se, "; the estimate is not positive, so the interval is linear"
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(samples, n))
        ratios = num[idx].sum(axis=1) / den[idx].sum(axis=1)
        lo, hi = (float(v) for v in np.percentile(ratios, [100 - 100 * q, 100 * q]))
        if not lo <= r <= hi:
            # a very skewed handful of cycles can leave the point outside the percentiles
            return min(lo, r), max(hi, r), "; widened to contain the point"
        return lo, hi, ""
    raise ValueError(f"ci_method={method!r}: expected one of {CI_METHODS}")


def ratio_stat(num: Sequence[Optional[float]], den: Sequence[Optional[float]], *, method: str = "t",
               samples: int = 2000, seed: int = 0) -> Stat:
    """Stat of ``sum(num) / sum(den)`` over cycles: the point (``value``), its CI, and the mean,
    std and CV of the per-cycle ratios ``num_i / den_i``. ``None`` anywhere means "not measured":
    only n is set. One cycle has no spread: std, CV and CI stay unset rather than read as zero."""
    num, den = list(num), list(den)
    how = describe_method(method, samples)
    if not num or len(num) != len(den) or any(v is None for v in num + den):
        return Stat(n=len(num), method=how)
    x, y = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if y.sum() == 0 or np.any(y == 0):
        return Stat(n=len(num), method=f"{how}; a cycle has a zero denominator")
    per = x / y
    value = float(x.sum() / y.sum())
    if len(x) < 2:
        return Stat(n=1, value=value, cycle_mean=float(per[0]), method=f"{how}; one cycle: no spread or CI")
    mean = float(per.mean())
    std = float(per.std(ddof=1))
    lo, hi, note = ratio_ci(x, y, method, samples, seed)
    return Stat(n=len(x), value=value, ci95_low=lo, ci95_high=hi, cycle_mean=mean, std=std,
                cv=std / abs(mean) if mean else None, method=how + note)


def headline_stats(cycles, *, method: str = "t", samples: int = 2000, seed: int = 0) -> dict[str, Stat]:
    """The ``stats`` of a result: each headline metric as a ratio of totals over ``cycles``
    (``CycleResult``s), with its CI. Used by the harness and, for results written before the ratio
    estimator, by the results table, so every table, export and plot shows one estimator."""
    how = {"method": method, "samples": samples, "seed": seed}
    energy = [c.energy_j for c in cycles]
    adjusted = [c.energy_adjusted_j for c in cycles]
    tokens = [c.output_tokens for c in cycles]
    return {
        "energy_per_output_token_j": ratio_stat(energy, tokens, **how),
        "tokens_per_joule": ratio_stat(tokens, energy, **how),
        "output_tokens_per_s": ratio_stat(tokens, [c.duration_s for c in cycles], **how),
        "energy_adjusted_per_output_token_j": ratio_stat(adjusted, tokens, **how),
    }


def percentiles(values: Sequence[float]) -> Percentiles:
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if x.size == 0:
        return Percentiles(n=0)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(x, [50, 90, 95, 99]))
    return Percentiles(n=int(x.size), mean=float(x.mean()), p50=p50, p90=p90, p95=p95, p99=p99)
