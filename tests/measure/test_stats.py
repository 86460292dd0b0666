import math

import numpy as np
import pytest

from llem.measure.stats import mean_ci95, percentiles, summarize, t_quantile


def test_mean_std_cv():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s.n == 4 and s.mean == pytest.approx(2.5)
    assert s.std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert s.cv == pytest.approx(s.std / 2.5)


def test_t_quantile_inverts_the_t_cdf():
    # df = 1 is the Cauchy distribution, df = 2 has a closed form, large df tends to the normal
    assert t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * (0.975 - 0.5)), rel=1e-9)
    p = 0.975
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    from statistics import NormalDist
    assert t_quantile(p, 100000) == pytest.approx(NormalDist().inv_cdf(p), rel=1e-4)
    assert t_quantile(p, 4) > t_quantile(p, 9) > t_quantile(p, 30)
    with pytest.raises(ValueError, match="0.5 < p < 1"):
        t_quantile(0.4, 3)


def test_default_ci_is_student_t_of_the_mean():
    vals = [0.31, 0.30, 0.29, 0.33, 0.30, 0.32]
    s = summarize(vals)
    half = t_quantile(0.975, 5) * np.std(vals, ddof=1) / math.sqrt(6)
    assert (s.ci95_low, s.ci95_high) == pytest.approx((np.mean(vals) - half, np.mean(vals) + half))
    assert s.method.startswith("Student t")


def test_t_ci_covers_95_percent_where_the_bootstrap_of_five_cycles_does_not():
    # 5 normal cycles, 1000 experiments: what the default of 5 cycles faces
    rng = np.random.default_rng(1)
    hits = {"t": 0, "bootstrap": 0}
    for i in range(1000):
        x = rng.normal(1.0, 0.05, 5)
        for m in hits:
            lo, hi = mean_ci95(x, m, samples=400, seed=i)
            hits[m] += lo <= 1.0 <= hi
    assert 0.93 <= hits["t"] / 1000 <= 0.97
    assert hits["bootstrap"] / 1000 < 0.9


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    vals = [0.31, 0.30, 0.29, 0.33, 0.30, 0.32]
    a, b = summarize(vals, method="bootstrap", seed=7), summarize(vals, method="bootstrap", seed=7)
    assert (a.ci95_low, a.ci95_high) == (b.ci95_low, b.ci95_high)
    assert a.ci95_low < a.mean < a.ci95_high
    assert min(vals) <= a.ci95_low and a.ci95_high <= max(vals)
    c = summarize(vals, method="bootstrap", seed=8)
    assert (c.ci95_low, c.ci95_high) != (a.ci95_low, a.ci95_high)
    assert "bootstrap" in a.method and "2000 resamples" in a.method


def test_missing_value_means_not_measured_not_zero():
    s = summarize([1.0, None, 2.0])
    assert s.n == 3 and s.mean is None and s.ci95_low is None


def test_single_cycle_has_no_spread_estimate():
    s = summarize([5.0])
    assert s.mean == 5.0 and s.std is None and s.cv is None and s.ci95_low is None and s.ci95_high is None
    assert "one cycle" in s.method


def test_percentiles_skip_nan():
    p = percentiles([1.0, float("nan"), 3.0])
    assert p.n == 2 and p.p50 == pytest.approx(2.0)


def test_a_stricter_level_widens_the_ci_and_95_percent_is_mean_ci95():
    from llem.measure.stats import mean_ci

    x = np.array([0.31, 0.30, 0.29, 0.33, 0.30, 0.32])
    for m in ("t", "bootstrap"):
        assert mean_ci(x, 0.95, m, 400, 3) == mean_ci95(x, m, 400, 3)
        lo95, hi95 = mean_ci95(x, m, 400, 3)
        lo99, hi99 = mean_ci(x, 0.99, m, 400, 3)
        assert lo99 < lo95 and hi99 > hi95
    half = t_quantile(0.995, 5) * np.std(x, ddof=1) / math.sqrt(6)
    assert mean_ci(x, 0.99) == pytest.approx((x.mean() - half, x.mean() + half))
