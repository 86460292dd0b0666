"""The steady-state test over cycles (llem/measure/stability.py) and the warnings it and the CV checks give."""
import itertools

import numpy as np
import pytest

from llem.result import CycleResult
from llem.measure.stability import (HALVES_REL_TOL, cycle_stability, grubbs_critical, judge_steady_state, mann_kendall,
                            outliers)
from llem.measure.warnings_check import measurement_warnings

# the issue's examples: throughput fell from 72 to 23 tok/s; vLLM batch-1 cycles with one wild one
FALLING = [72.0, 60.0, 45.0, 30.0, 23.0]
WILD = [39.0, 64.0, 28.0, 69.0, 888.0]


def cyc(tokens_per_s, j_per_token=None, out_tokens=100):
    out = []
    for i, tps in enumerate(tokens_per_s):
        jpt = j_per_token[i] if j_per_token else None
        out.append(CycleResult(index=i, repeats=1, start_s=float(i), duration_s=out_tokens / tps, input_tokens=10,
                               output_tokens=out_tokens, energy_j=jpt * out_tokens if jpt else None,
                               energy_per_output_token_j=jpt, output_tokens_per_s=tps,
                               tokens_per_joule=1 / jpt if jpt else None))
    return out


def test_mann_kendall_exact_p_matches_enumerating_every_order():
    x = [3.1, 1.2, 5.5, 4.0, 2.2, 6.1]
    s, p = mann_kendall(x)

    def s_of(v):
        return sum((v[j] > v[i]) - (v[j] < v[i]) for i in range(len(v)) for j in range(i + 1, len(v)))

    perms = list(itertools.permutations(x))
    assert p == pytest.approx(sum(abs(s_of(v)) >= abs(s) for v in perms) / len(perms))
    # a perfectly monotonic run of 5 is the most extreme of 120 orders each way
    assert mann_kendall(FALLING) == (-10, pytest.approx(2 / 120))
    # 4 values can never reach 5%
    assert mann_kendall([1, 2, 3, 4])[1] > 0.05


def test_grubbs_critical_values_match_the_published_table():
    # two-sided 5%: n=5 1.715, n=10 2.290 (Grubbs 1969 / NIST handbook); 1%: n=5 1.764
    assert grubbs_critical(5, 0.05) == pytest.approx(1.715, abs=1e-3)
    assert grubbs_critical(10, 0.05) == pytest.approx(2.290, abs=1e-3)
    assert grubbs_critical(5, 0.01) == pytest.approx(1.764, abs=1e-3)
    assert outliers(WILD) == [4] and outliers([1.0, 1.01, 0.99, 1.0, 1.02]) == []


def test_falling_throughput_is_not_steady_and_warns():
    v = judge_steady_state(True, "warm-up ran", cyc(FALLING), energy_measured=False)
    assert v.claimed is False and v.text.startswith("not steady state")
    text = "\n".join(v.warnings)
    assert "falling trend" in text and "72, 60, 45, 30, 23 tok/s" in text and "first and second half" in text
    assert v.test["metrics"]["output_tokens_per_s"]["trend"] is True


def test_one_wild_cycle_is_not_steady_and_warns():
    v = judge_steady_state(True, "warm-up ran", cyc(WILD), energy_measured=False)
    assert v.claimed is False
    assert any("outlier cycle: cycle 5 (888 tok/s)" in w for w in v.warnings)
    assert v.test["metrics"]["output_tokens_per_s"]["outlier_cycles"] == [4]


def test_the_issue_examples_warn_high_cv_of_throughput_with_energy_missing():
    from llem.measure.stats import headline_stats

    class Meter:
        estimated, name, caveat = False, "none", None

    for tps in (FALLING, WILD):
        st = headline_stats(cyc(tps))
        w = measurement_warnings(meter=Meter(), bounds=[], target=0.005, durations_s=[5.0] * 5,
                                 cv=st["energy_per_output_token_j"].cv, cv_threshold=0.05,
                                 throughput_cv=st["output_tokens_per_s"].cv)
        assert any(x.startswith("high CV: throughput") for x in w), w


def test_energy_per_token_is_tested_too_when_measured():
    # steady throughput, but energy per token climbing: not steady
    v = judge_steady_state(True, "ok", cyc([100.0, 101.0, 99.0, 100.5, 100.0], [0.10, 0.12, 0.14, 0.16, 0.18]),
                           energy_measured=True)
    assert v.claimed is False and any("energy_per_output_token_j has a rising trend" in w for w in v.warnings)
    assert set(v.test["metrics"]) == {"output_tokens_per_s", "energy_per_output_token_j"}


def test_steady_cycles_are_claimed_and_warm_up_still_decides():
    steady = cyc([100.0, 101.5, 99.2, 100.8, 100.1], [0.2, 0.201, 0.199, 0.2, 0.2005])
    v = judge_steady_state(True, "windows start after 2 warm-up passes", steady, energy_measured=True)
    assert v.claimed is True and v.warnings == [] and v.text == "windows start after 2 warm-up passes"
    no_warmup = judge_steady_state(False, "not steady state: no warm-up pass ran", steady, energy_measured=True)
    assert no_warmup.claimed is False and no_warmup.text.startswith("not steady state: no warm-up")


def test_one_cycle_is_never_claimed():
    v = judge_steady_state(True, "ok", cyc([100.0]), energy_measured=False)
    assert v.claimed is False and v.warnings == []


def test_halves_tolerance_and_two_cycles():
    assert cycle_stability({"m": [100.0, 100.0 * (1 + HALVES_REL_TOL * 0.9)]}).passed is True
    assert cycle_stability({"m": [100.0, 100.0 * (1 + HALVES_REL_TOL * 1.5)]}).passed is False


def test_documented_false_alarm_rates_of_trend_free_normal_cycles():
    # docs/measurement.md and llem/measure/stability.py quote these (seeded, so they are reproducible)
    rng = np.random.default_rng(0)

    def rate(cv, n, runs=2000):
        return sum(not cycle_stability({"m": list(rng.normal(1.0, cv, n))}).passed for _ in range(runs)) / runs

    assert rate(0.01, 5) <= 0.04      # documented: passes ~98%
    assert 0.03 <= rate(0.05, 5) <= 0.11   # ~93%
    assert 0.10 <= rate(0.05, 2) <= 0.22   # two cycles differ by > 10% ~16% of the time
