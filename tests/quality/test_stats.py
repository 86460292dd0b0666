"""quality_per_joule and its interval, checked against a simulation (fixed seeds)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from llem.quality.stats import energy_uncertainty, quality_per_joule


def _coverage(p, n, sigma_e, cycles=None, reps=3000, seed=7):
    """Simulate the experiment: k ~ Binomial(n, p) correct answers with lm-eval's closed-form stderr
    (sqrt(p(1-p)/(n-1))), evaluation energy lognormal around the truth with relative sd sigma_e; with
    ``cycles``, sigma_e is estimated from that many cycles (as llem does from the measured cycles)."""
    rng = np.random.default_rng(seed)
    e_true = 500.0
    truth = p * n / e_true
    hits = 0
    for _ in range(reps):
        ph = rng.binomial(n, p) / n
        se = math.sqrt(ph * (1 - ph) / (n - 1))
        e = e_true * math.exp(rng.normal(0.0, sigma_e))
        cv = None
        rel = sigma_e
        if cycles:
            c = np.exp(rng.normal(0.0, sigma_e, cycles))
            rel = cv = float(c.std(ddof=1) / c.mean())
        r = quality_per_joule("acc,none", ph, se, n, e, rel, cycle_cv=cv, cycles=cycles)
        assert r.ci95_low is not None, r.reason
        hits += r.ci95_low <= truth <= r.ci95_high
    return hits / reps


@pytest.mark.parametrize("p, n, sigma_e, cycles", [
    (0.73, 100, 0.02, None),   # SmolLM2 on llem_easy_mc: the accuracy's stderr dominates
    (0.25, 157, 0.02, None),   # chance level
    (0.90, 100, 0.02, None),   # near the ceiling
    (0.73, 100, 0.02, 5),      # energy sd estimated from 5 cycles (llem's default)
    (0.50, 5000, 0.05, 5),     # a large task: the energy's estimated sd dominates (t with Welch df)
    (0.50, 1000, 0.05, 10),
])
def test_interval_covers_the_truth_95_percent_of_the_time(p, n, sigma_e, cycles):
    cov = _coverage(p, n, sigma_e, cycles)
    # 3000 replicates: Monte Carlo sd ~0.004; the method's own error is the rest
    assert 0.93 <= cov <= 0.97, cov


def test_a_normal_quantile_would_undercover_with_five_cycles():
    """Why the quantile is Student's t: the same energy-dominated case with the degrees of freedom
    ignored (cycle_cv not passed: the energy sd taken as known) covers clearly less than 95%."""
    rng = np.random.default_rng(3)
    hits, reps = 0, 3000
    for _ in range(reps):
        ph = rng.binomial(5000, 0.5) / 5000
        c = np.exp(rng.normal(0.0, 0.05, 5))
        cv = float(c.std(ddof=1) / c.mean())
        e = 500.0 * math.exp(rng.normal(0.0, 0.05))
        r = quality_per_joule("acc", ph, math.sqrt(ph * (1 - ph) / 4999), 5000, e, cv)
        hits += r.ci95_low <= 0.5 * 5000 / 500.0 <= r.ci95_high
    assert hits / reps < 0.92


def test_point_value_is_correct_answers_per_joule_and_inside_its_interval():
    r = quality_per_joule("acc,none", 0.75, 0.04, 200, 300.0, 0.01)
    assert r.value == pytest.approx(0.75 * 200 / 300.0)
    assert r.ci95_low < r.value < r.ci95_high and r.ci95_low > 0
    # asymmetric on the linear scale, symmetric on the log scale
    assert math.log(r.value) - math.log(r.ci95_low) == pytest.approx(math.log(r.ci95_high) - math.log(r.value))


def test_missing_parts_carry_reasons_never_zero():
    assert quality_per_joule("bleu,none", 30.0, 1.0, 100, 10.0, 0.01).value is None
    assert "not an accuracy-type metric" in quality_per_joule("bleu", 30.0, 1.0, 100, 10.0, 0.01).reason
    r = quality_per_joule("acc", 0.5, 0.05, 100, None, None, "energy=none was requested")
    assert r.value is None and r.reason == "energy=none was requested"
    assert "too short" in quality_per_joule("acc", 0.5, 0.05, 100, 0.0, 0.01).reason
    r = quality_per_joule("acc", 0.5, None, 100, 10.0, 0.01)
    assert r.value == 5.0 and r.ci95_low is None and "no stderr" in r.reason
    r = quality_per_joule("exact_match", 0.0, 0.0, 100, 10.0, 0.01)
    assert r.value == 0.0 and r.ci95_low is None and "is 0" in r.reason


def test_energy_uncertainty_combines_cycle_cv_and_quantisation():
    u = energy_uncertainty(0.03, 0.012, 5)
    assert u.relative_sd == pytest.approx(math.sqrt(0.03 ** 2 + 0.012 ** 2 / 3))
    assert energy_uncertainty(None, 0.01).relative_sd is None
    assert "cycles" in energy_uncertainty(0.02, None, 1).reason
