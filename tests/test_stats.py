import numpy as np
import pytest

from llem.stats import percentiles, summarize


def test_mean_std_cv():
    s = summarize([1.0, 2.0, 3.0, 4.0], samples=500, seed=3)
    assert s.n == 4 and s.mean == pytest.approx(2.5)
    assert s.std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert s.cv == pytest.approx(s.std / 2.5)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    vals = [0.31, 0.30, 0.29, 0.33, 0.30, 0.32]
    a, b = summarize(vals, seed=7), summarize(vals, seed=7)
    assert (a.ci95_low, a.ci95_high) == (b.ci95_low, b.ci95_high)
    assert a.ci95_low < a.mean < a.ci95_high
    assert min(vals) <= a.ci95_low and a.ci95_high <= max(vals)
    c = summarize(vals, seed=8)
    assert (c.ci95_low, c.ci95_high) != (a.ci95_low, a.ci95_high)


def test_missing_value_means_not_measured_not_zero():
    s = summarize([1.0, None, 2.0])
    assert s.n == 3 and s.mean is None and s.ci95_low is None


def test_single_cycle_has_no_spread():
    s = summarize([5.0])
    assert s.std == 0.0 and s.ci95_low == s.ci95_high == 5.0


def test_percentiles_skip_nan():
    p = percentiles([1.0, float("nan"), 3.0])
    assert p.n == 2 and p.p50 == pytest.approx(2.0)
