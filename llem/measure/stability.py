"""Whether the measured cycles look like a steady state: a documented test over the per-cycle
values of each headline metric (docs/measurement.md, "Warm-up and steady state").

A metric's cycles pass when all three hold:

1. **no trend**: the Mann-Kendall test (Kendall's S of the values against their order; exact
   permutation distribution, two-sided) does not reject "no monotonic trend" at
   ``TREND_ALPHA`` = 5%. With fewer than 5 cycles no ordering can reach 5%, so the trend part
   cannot fail there (the record says so);
2. **halves agree**: the means of the first and second half of the cycles (the middle cycle of an
   odd count left out) differ by at most ``HALVES_REL_TOL`` = 10% of the mean of all cycles;
3. **no outlier**: Grubbs' test (two-sided, ``OUTLIER_ALPHA`` = 1%) finds no outlying cycle.
   Needs at least 3 cycles. (A median/MAD rule flagged 20-30% of runs of 3-5 normal cycles:
   the MAD of so few values is too often tiny.)

One cycle cannot be tested, so steady state is never claimed from it. In a seeded simulation of
normal, trend-free cycles, all three parts passed in 98% of runs of 5 cycles at 1% CV (the
spread of GPU cycles) and in 93% at 5% CV; with 2 cycles at 5% CV the halves part fails 16% of
the time, since two cycles differ by more than 10% that often (tests/measure/test_stability.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional, Sequence

TREND_ALPHA = 0.05
HALVES_REL_TOL = 0.10
OUTLIER_ALPHA = 0.01
MIN_TREND_CYCLES = 5


@lru_cache(maxsize=64)
def _inversion_counts(n: int) -> tuple[int, ...]:
    """How many permutations of n items have k inversions, k = 0 .. n(n-1)/2 (Mahonian numbers)."""
    counts = [1]
    for m in range(2, n + 1):
        new = [0] * (len(counts) + m - 1)
        for k, c in enumerate(counts):
            for j in range(m):
                new[k + j] += c
        counts = new
    return tuple(counts)


def mann_kendall(values: Sequence[float]) -> tuple[int, float]:
    """Kendall's S of ``values`` against their order and its exact two-sided p-value under "no
    trend" (every order equally likely; ties count 0 in S, which makes the test conservative)."""
    x = list(values)
    n = len(x)
    s = sum((x[j] > x[i]) - (x[j] < x[i]) for i in range(n) for j in range(i + 1, n))
    if n < 2:
        return s, 1.0
    pairs = n * (n - 1) // 2
    counts = _inversion_counts(n)
    # S = pairs - 2 x inversions for an order without ties
    extreme = sum(c for k, c in enumerate(counts) if abs(pairs - 2 * k) >= abs(s))
    return s, min(1.0, extreme / math.factorial(n))


def halves_rel_diff(values: Sequence[float]) -> Optional[float]:
    """(mean of the second half - mean of the first half) / mean of all; the middle cycle of an
    odd count belongs to neither half."""
    x = list(values)
    h = len(x) // 2
    if h == 0:
        return None
    m = sum(x) / len(x)
    if m == 0:
        return None
    return (sum(x[-h:]) / h - sum(x[:h]) / h) / abs(m)


def grubbs_critical(n: int, alpha: float = OUTLIER_ALPHA) -> float:
    """Two-sided critical value of Grubbs' statistic for ``n`` values at level ``alpha``."""
    from llem.measure.stats import t_quantile

    t = t_quantile(1 - alpha / (2 * n), n - 2)
    return (n - 1) / math.sqrt(n) * math.sqrt(t * t / (n - 2 + t * t))


def outliers(values: Sequence[float], alpha: float = OUTLIER_ALPHA) -> list[int]:
    """Index of the cycle that Grubbs' test (two-sided, level ``alpha``) calls an outlier: the
    value farthest from the mean, when ``max |x - mean| / s`` exceeds the critical value. At most
    one (the test is not repeated: with a handful of cycles a second round has no power)."""
    x = list(values)
    n = len(x)
    if n < 3:
        return []
    m = sum(x) / n
    s = math.sqrt(sum((v - m) ** 2 for v in x) / (n - 1))
    if s == 0:
        return []
    i = max(range(n), key=lambda k: abs(x[k] - m))
    return [i] if abs(x[i] - m) / s > grubbs_critical(n, alpha) else []


def _median(x: list[float]) -> float:
    s = sorted(x)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


@dataclass
class MetricCheck:
    metric: str
    values: list
    trend_s: int = 0
    trend_p: float = 1.0
    halves_rel_diff: Optional[float] = None
    outliers: list = field(default_factory=list)

    @property
    def trend(self) -> bool:
        return self.trend_p < TREND_ALPHA

    @property
    def halves_disagree(self) -> bool:
        return self.halves_rel_diff is not None and abs(self.halves_rel_diff) > HALVES_REL_TOL

    @property
    def passed(self) -> bool:
        return len(self.values) >= 2 and not (self.trend or self.halves_disagree or self.outliers)

    def problems(self, unit: str = "") -> list[str]:
        """One sentence per failed part, naming the values seen and the threshold."""
        vals = ", ".join(f"{v:.4g}" for v in self.values)
        out = []
        if self.trend:
            direction = "rising" if self.trend_s > 0 else "falling"
            out.append(f"{self.metric} has a {direction} trend across cycles ({vals}{unit}; Mann-Kendall "
                       f"p={self.trend_p:.3f} < {TREND_ALPHA:g})")
        if self.halves_disagree:
            out.append(f"{self.metric} differs by {self.halves_rel_diff:+.1%} between the first and second half "
                       f"of the cycles ({vals}{unit}; tolerance {HALVES_REL_TOL:.0%})")
        if self.outliers:
            cyc = ", ".join(f"cycle {i + 1} ({self.values[i]:.4g}{unit})" for i in self.outliers)
            out.append(f"{self.metric} has an outlier cycle: {cyc} (Grubbs' test, two-sided at "
                       f"{OUTLIER_ALPHA:.0%}; median of all cycles {_median(list(self.values)):.4g}{unit})")
        return out

    def describe(self) -> dict:
        return {"values": self.values, "mann_kendall_s": self.trend_s, "mann_kendall_p": self.trend_p,
                "trend": self.trend, "halves_rel_diff": self.halves_rel_diff,
                "halves_disagree": self.halves_disagree, "outlier_cycles": self.outliers, "passed": self.passed}


def check_metric(metric: str, values: Sequence[float]) -> MetricCheck:
    x = [float(v) for v in values]
    s, p = mann_kendall(x)
    return MetricCheck(metric=metric, values=x, trend_s=s, trend_p=p, halves_rel_diff=halves_rel_diff(x),
                       outliers=outliers(x))


@dataclass
class CycleStability:
    checks: list
    n_cycles: int

    @property
    def passed(self) -> bool:
        return self.n_cycles >= 2 and all(c.passed for c in self.checks)

    def problems(self) -> list[str]:
        units = {"output_tokens_per_s": " tok/s", "energy_per_output_token_j": " J/token"}
        return [p for c in self.checks for p in c.problems(units.get(c.metric, ""))]

    def describe(self) -> dict:
        return {
            "rule": (f"per metric: no Mann-Kendall trend at {TREND_ALPHA:g} (two-sided, exact), first- and "
                     f"second-half means within {HALVES_REL_TOL:.0%} of the mean, no outlier cycle by "
                     f"Grubbs' test at {OUTLIER_ALPHA:g} (two-sided)"),
            "trend_test_can_reject": self.n_cycles >= MIN_TREND_CYCLES,
            "passed": self.passed,
            "metrics": {c.metric: c.describe() for c in self.checks},
        }


def cycle_stability(series: dict[str, Sequence[Optional[float]]]) -> CycleStability:
    """Check each metric whose every cycle has a value (``series``: metric -> per-cycle values)."""
    n = max((len(v) for v in series.values()), default=0)
    checks = [check_metric(m, v) for m, v in series.items() if v and all(x is not None for x in v)]
    return CycleStability(checks=checks, n_cycles=n)


@dataclass
class SteadyStateVerdict:
    claimed: bool
    text: str                 # measurement_methodology.steady_state
    test: dict                # measurement_methodology.steady_state_test
    warnings: list            # one per failed part of the test


def judge_steady_state(warmup_ok: bool, warmup_text: str, cycles, energy_measured: bool) -> SteadyStateVerdict:
    """Steady state is claimed only when the warm-up allows it (``llem.measure.warmup.steady_state_claim``)
    *and* the cycles' throughput and (when measured) energy per token pass the test above. A
    failed test is a warning whatever the warm-up did: the cycles themselves drift or jump."""
    stability = cycle_stability({
        "output_tokens_per_s": [c.output_tokens_per_s for c in cycles],
        "energy_per_output_token_j": [c.energy_per_output_token_j for c in cycles] if energy_measured else []})
    problems = stability.problems()
    text = warmup_text
    if warmup_ok and not stability.passed:
        why = "; ".join(problems) or f"{len(cycles)} cycle: nothing to test"
        text = f"not steady state: the warm-up ran, but the cycles fail the steady-state test ({why})"
    return SteadyStateVerdict(claimed=warmup_ok and stability.passed, text=text, test=stability.describe(),
                              warnings=[f"not steady: {p}" for p in problems])
