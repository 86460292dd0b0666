import math

import numpy as np
import pytest

from llem.result import CycleResult
from llem.measure.stats import (headline_stats, mean_ci, mean_ci95, percentiles, ratio_ci, ratio_stat, t_quantile)

HEADLINE = ("energy_per_output_token_j", "tokens_per_joule", "output_tokens_per_s",
            "energy_adjusted_per_output_token_j")


def cycles(tokens_per_s, j_per_token, out_tokens=100, adjusted_fraction=0.6):
    """Cycles with the given per-cycle rates (fixed output tokens per cycle, as llem's are)."""
    out = []
    for i, (tps, jpt) in enumerate(zip(tokens_per_s, j_per_token)):
        dur = out_tokens / tps
        e = jpt * out_tokens
        out.append(CycleResult(index=i, repeats=1, start_s=float(i), duration_s=dur, input_tokens=10,
                               output_tokens=out_tokens, energy_j=e, energy_adjusted_j=e * adjusted_fraction,
                               energy_per_output_token_j=jpt, output_tokens_per_s=tps, tokens_per_joule=1 / jpt))
    return out


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


def test_the_point_is_the_ratio_of_totals_and_the_spread_is_of_the_cycles():
    cyc = cycles([100.0, 50.0, 200.0], [0.3, 0.2, 0.4])
    st = headline_stats(cyc)
    total_tok = sum(c.output_tokens for c in cyc)
    total_s = sum(c.duration_s for c in cyc)
    total_e = sum(c.energy_j for c in cyc)
    assert st["output_tokens_per_s"].value == pytest.approx(total_tok / total_s)
    assert st["energy_per_output_token_j"].value == pytest.approx(total_e / total_tok)
    assert st["tokens_per_joule"].value == pytest.approx(total_tok / total_e)
    # the mean of per-cycle rates is a different (larger) number; it describes the cycles only
    tps = st["output_tokens_per_s"]
    assert tps.cycle_mean == pytest.approx(350 / 3) and tps.cycle_mean > tps.value
    assert tps.std == pytest.approx(np.std([100, 50, 200], ddof=1)) and tps.cv == pytest.approx(tps.std / tps.cycle_mean)
    assert "ratio of totals" in tps.method and tps.n == 3


@pytest.mark.parametrize("tps, jpt", [
    # the examples: throughput falling 72 -> 23 tok/s, and a vLLM batch-1 run with one wild cycle
    ([72.0, 60.0, 45.0, 30.0, 23.0], [0.10, 0.12, 0.16, 0.25, 0.31]),
    ([39.0, 64.0, 28.0, 69.0, 888.0], [0.30, 0.20, 0.45, 0.19, 0.014]),
    # two cycles an order of magnitude apart
    ([10.0, 400.0], [2.0, 0.05]),
])
@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_point_inside_its_positive_ci_for_skewed_cycles(tps, jpt, method):
    st = headline_stats(cycles(tps, jpt), method=method, samples=500, seed=3)
    for m in HEADLINE:
        s = st[m]
        assert s.ci95_low is not None, m
        assert 0 < s.ci95_low <= s.value <= s.ci95_high, (m, s)


def test_a_mean_of_cycles_ci_would_have_excluded_the_point():
    # what the issue saw: the t CI of the mean of per-cycle rates misses the ratio of totals
    cyc = cycles([39.0, 64.0, 28.0, 69.0, 888.0], [0.3] * 5)
    point = headline_stats(cyc)["output_tokens_per_s"].value
    lo, hi = mean_ci95(np.array([39.0, 64.0, 28.0, 69.0, 888.0]))
    assert not lo <= point <= hi or lo < 0  # the old interval: the point outside, or a negative bound


def test_reciprocal_metrics_get_reciprocal_intervals():
    st = headline_stats(cycles([80.0, 95.0, 70.0, 90.0], [0.21, 0.18, 0.25, 0.2]))
    e, tpj = st["energy_per_output_token_j"], st["tokens_per_joule"]
    assert tpj.value == pytest.approx(1 / e.value)
    assert (tpj.ci95_low, tpj.ci95_high) == pytest.approx((1 / e.ci95_high, 1 / e.ci95_low))


def test_equal_token_counts_and_small_spread_match_the_t_interval_of_the_mean():
    vals = [0.31, 0.30, 0.29, 0.33, 0.30, 0.32]
    s = headline_stats(cycles([100.0] * 6, vals))["energy_per_output_token_j"]
    lo, hi = mean_ci95(np.array(vals))
    assert s.value == pytest.approx(np.mean(vals))
    # the log-scale interval is symmetric about the point in ratio (geometric mean of its bounds);
    # at a CV of 4% its bounds are within 0.2% of the t interval's
    assert math.sqrt(s.ci95_low * s.ci95_high) == pytest.approx(s.value)
    assert s.ci95_low == pytest.approx(lo, rel=2e-3) and s.ci95_high == pytest.approx(hi, rel=2e-3)
    assert s.method.startswith("Student t")


def test_ratio_ci_covers_95_percent_where_the_bootstrap_of_five_cycles_does_not():
    # 5 cycles whose throughput is lognormal (CV ~20%), 1000 seeded experiments
    rng = np.random.default_rng(1)
    true = 100.0 * math.exp(-0.02)  # tokens / E[time] for a lognormal rate with sigma 0.2
    hits = {"t": 0, "bootstrap": 0}
    for i in range(1000):
        rate = np.exp(rng.normal(math.log(100.0), 0.2, 5))
        tokens = np.full(5, 1000.0)
        for m in hits:
            lo, hi, _ = ratio_ci(tokens, tokens / rate, m, samples=400, seed=i)
            hits[m] += lo <= true <= hi
    assert 0.93 <= hits["t"] / 1000 <= 0.98
    assert hits["bootstrap"] / 1000 < 0.9


def test_bootstrap_ci_is_seeded():
    cyc = cycles([100.0, 90.0, 110.0, 95.0, 105.0, 99.0], [0.31, 0.30, 0.29, 0.33, 0.30, 0.32])
    a, b = (headline_stats(cyc, method="bootstrap", seed=7)["energy_per_output_token_j"] for _ in range(2))
    assert (a.ci95_low, a.ci95_high) == (b.ci95_low, b.ci95_high)
    assert a.ci95_low < a.value < a.ci95_high
    c = headline_stats(cyc, method="bootstrap", seed=8)["energy_per_output_token_j"]
    assert (c.ci95_low, c.ci95_high) != (a.ci95_low, a.ci95_high)
    assert "bootstrap" in a.method and "2000 resamples" in a.method


def test_a_negative_adjusted_energy_gets_a_linear_interval_that_says_so():
    # adjusted energy below the idle baseline: no log scale, and the method says why
    s = ratio_stat([-1.0, -2.0, 0.5], [10, 10, 10])
    assert s.value == pytest.approx(-2.5 / 30)
    assert s.ci95_low <= s.value <= s.ci95_high and "linear" in s.method


def test_missing_value_means_not_measured_not_zero():
    s = ratio_stat([1.0, None, 2.0], [1, 1, 1])
    assert s.n == 3 and s.value is None and s.cycle_mean is None and s.ci95_low is None


def test_single_cycle_has_no_spread_estimate():
    s = ratio_stat([5.0], [2.0])
    assert s.value == 2.5 and s.std is None and s.cv is None and s.ci95_low is None and s.ci95_high is None
    assert "one cycle" in s.method


def test_results_before_the_ratio_estimator_still_read():
    from llem.result import Stat

    old = Stat.model_validate({"n": 5, "mean": 3.0, "ci95_low": 2.0, "ci95_high": 4.0, "method": "Student t 95% CI "
                               "of the mean over cycles (n-1 degrees of freedom)"})
    assert old.cycle_mean == 3.0 and old.value is None


def test_percentiles_skip_nan():
    p = percentiles([1.0, float("nan"), 3.0])
    assert p.n == 2 and p.p50 == pytest.approx(2.0)


def test_a_stricter_level_widens_the_mean_ci_and_95_percent_is_mean_ci95():
    x = np.array([0.31, 0.30, 0.29, 0.33, 0.30, 0.32])
    for m in ("t", "bootstrap"):
        assert mean_ci(x, 0.95, m, 400, 3) == mean_ci95(x, m, 400, 3)
        lo95, hi95 = mean_ci95(x, m, 400, 3)
        lo99, hi99 = mean_ci(x, 0.99, m, 400, 3)
        assert lo99 < lo95 and hi99 > hi95
    half = t_quantile(0.995, 5) * np.std(x, ddof=1) / math.sqrt(6)
    assert mean_ci(x, 0.99) == pytest.approx((x.mean() - half, x.mean() + half))
