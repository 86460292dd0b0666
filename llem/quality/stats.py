"""``quality_per_joule``: correct answers per joule of the evaluation, and its 95% interval.

    quality_per_joule = metric x samples / evaluation energy_j

for accuracy-type metrics (a per-sample 0/1 score averaged over the samples: ``acc``,
``acc_norm``, ``exact_match`` ...), where metric x samples is the number of correct answers. For
any other metric (BLEU, perplexity, F1 ...) the product is not a count of anything, so the value is
missing with that reason.

Interval (docs/quality.md): a delta method on the log scale, where the product of the two
uncertain factors becomes a sum,

    log q = log metric + log samples - log energy_j
    sd(log q) ~ sqrt((stderr / metric)^2 + sigma_E^2)
    95% interval = q x exp(-/+ t(0.975, df) sd(log q))

with ``stderr`` lm-eval's standard error of the metric (sampling of questions) and ``sigma_E`` the
relative uncertainty of the evaluation's energy: the cycle-to-cycle coefficient of variation of the
same job's measured energy per output token (how much one window's energy varies on this engine and
machine) combined with the counter quantisation bound of the evaluation's windows, taken as a
uniform error (sd = bound / sqrt(3)). Both variances are estimates (from the samples, from a few
cycles), so the quantile is Student's t with Welch-Satterthwaite degrees of freedom (samples - 1
for the metric's part, cycles - 1 for the energy's part): with 5 cycles and an energy-dominated
interval a normal quantile would cover ~89% instead of 95%. The interval is asymmetric, always
positive, and contains the point value. tests/quality/test_stats.py checks its coverage against a
simulation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

Z95 = 1.959963984540054

#: per-sample 0/1 metrics, averaged: metric x samples counts correct answers
ACCURACY_METRICS = ("acc", "acc_norm", "acc_mutual_info", "exact_match", "em", "acc_all")

METHOD = ("delta method on the log scale: sd(log q) = sqrt((stderr/metric)^2 + sigma_E^2); 95% interval "
          "q x exp(-/+ t(0.975, df) sd(log q)), df by Welch-Satterthwaite (samples - 1, cycles - 1); "
          "sigma_E = sqrt(cv_cycles^2 + (quantisation_bound/sqrt(3))^2)")


def is_accuracy_metric(metric: str) -> bool:
    return metric.split(",")[0] in ACCURACY_METRICS


@dataclass
class EnergyUncertainty:
    relative_sd: Optional[float]
    cycle_cv: Optional[float]
    quantisation_bound: Optional[float]
    reason: Optional[str] = None  # why relative_sd is missing
    cycles: Optional[int] = None  # cycles behind cycle_cv (its degrees of freedom + 1)

    def describe(self) -> dict:
        return {"relative_sd": self.relative_sd, "cycle_cv": self.cycle_cv, "cycles": self.cycles,
                "quantisation_bound": self.quantisation_bound, "reason": self.reason,
                "method": "sqrt(cycle_cv^2 + (quantisation_bound/sqrt(3))^2): the measured cycles' coefficient of "
                          "variation of energy per output token stands for the window-to-window variation of the "
                          "evaluation's energy; the counter quantisation bound is a uniform error"}


def energy_uncertainty(cycle_cv: Optional[float], quantisation_bound: Optional[float],
                       cycles: Optional[int] = None) -> EnergyUncertainty:
    if cycle_cv is None or (isinstance(cycle_cv, float) and math.isnan(cycle_cv)) or (cycles is not None and cycles < 2):
        return EnergyUncertainty(None, None, quantisation_bound,
                                 "the measured cycles give no coefficient of variation (needs measured energy in "
                                 ">= 2 cycles), so the evaluation's energy uncertainty is unknown", cycles)
    q = quantisation_bound or 0.0
    return EnergyUncertainty(math.sqrt(cycle_cv ** 2 + (q / math.sqrt(3)) ** 2), cycle_cv, quantisation_bound,
                             None, cycles)


def welch_df(parts: list[tuple[float, Optional[int]]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of variance estimates (variance, df);
    df None means known exactly (infinite degrees of freedom)."""
    total = sum(v for v, _ in parts)
    denom = sum(v * v / df for v, df in parts if df)
    return math.inf if denom == 0 else total * total / denom


def t95(df: float) -> float:
    if not math.isfinite(df) or df > 1000:
        return Z95
    # scipy comes with lm-eval (through scikit-learn), which every quality evaluation needs; the
    # protocol's own t quantile (llem.measure.stats) is out of reach: llem.quality never imports measure
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.975, max(1, int(df))))


@dataclass
class QualityPerJoule:
    value: Optional[float] = None
    ci95_low: Optional[float] = None
    ci95_high: Optional[float] = None
    method: Optional[str] = None
    reason: Optional[str] = None  # why value (or its interval) is missing


def quality_per_joule(metric_name: str, metric: Optional[float], stderr: Optional[float], samples: int,
                      energy_j: Optional[float], relative_sd: Optional[float],
                      energy_reason: Optional[str] = None, *, cycle_cv: Optional[float] = None,
                      cycles: Optional[int] = None) -> QualityPerJoule:
    """``cycle_cv``/``cycles``: the estimated part of ``relative_sd`` and the cycles behind it, for the
    degrees of freedom (without them ``relative_sd`` counts as known exactly)."""
    """Point value and 95% interval; missing parts carry the reason."""
    name = metric_name.split(",")[0]
    if not is_accuracy_metric(name):
        return QualityPerJoule(reason=f"{name} is not an accuracy-type metric (a per-sample 0/1 score), so "
                                      f"{name} x samples counts nothing; quality_per_joule is defined for "
                                      f"{', '.join(ACCURACY_METRICS)}")
    if metric is None:
        return QualityPerJoule(reason=f"no value of {name}")
    if energy_j is None:
        return QualityPerJoule(reason=energy_reason or "the evaluation's energy was not measured")
    if energy_j <= 0:
        return QualityPerJoule(reason=f"the evaluation's measured energy is {energy_j:g} J: its windows were too short "
                                      "for the meter's resolution")
    value = metric * samples / energy_j
    out = QualityPerJoule(value=value, method=METHOD)
    if stderr is None:
        out.reason = f"no interval: lm-eval gave no stderr for {name} (quality.bootstrap_iters=0?)"
    elif relative_sd is None:
        out.reason = "no interval: " + (energy_reason or "the evaluation's energy uncertainty is unknown")
    elif metric <= 0:
        out.reason = f"no interval: {name} is 0, where the log-scale interval is undefined"
    else:
        a = (stderr / metric) ** 2
        b = cycle_cv ** 2 if cycle_cv is not None and cycles else 0.0
        known = max(0.0, relative_sd ** 2 - b)  # the quantisation part
        df = welch_df([(a, max(1, samples - 1)), (b, (cycles - 1) if cycles else None), (known, None)])
        sd = math.sqrt(a + relative_sd ** 2)
        t = t95(df)
        out.ci95_low, out.ci95_high = value * math.exp(-t * sd), value * math.exp(t * sd)
    return out
