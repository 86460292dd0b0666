"""A search's judgement, without a sampler: objectives and constraints checked against llem's
metrics, a trial's result.json turned into what the sampler is told, the Pareto front, the
candidates ``--confirm K`` measures again, and the choice of the best (llem/study/search.py).

Results are SYNTHETIC TEST DATA (tests/results/results_fixtures.py): made-up energies on a real
result's structure, to exercise the rules, not to say anything about a backend."""
from __future__ import annotations

import pytest

from llem.errors import ConfigError
from llem.study.search import (DEFAULT_OBJECTIVE, Measure, SearchRecord, SearchSpec, TrialRecord, choose,
                               confirm_candidates, dominates, evaluate, overlaps, pareto_front, parse_constraint,
                               parse_objectives, summary_text)
from tests.results.results_fixtures import real_result, synthetic_result


def spec(objectives=("energy_per_output_token_j",), constraints=(), confirm=0) -> SearchSpec:
    from llem.study.search import direction

    return SearchSpec(objectives=list(objectives), directions=[direction(m) for m in objectives],
                      constraints=[parse_constraint(c).as_dict() for c in constraints], confirm=confirm, n_trials=8,
                      space={"batch": "choice(1,2,4,8)"})


def M(v, half=None) -> Measure:
    return Measure(value=v, ci95_low=None if half is None else v - half, ci95_high=None if half is None else v + half)


def trial(n, state="complete", cfg=None, **values) -> TrialRecord:
    return TrialRecord(number=n, job_id=f"{n:04d}", overrides=[f"batch={n}"], params={"batch": str(n)},
                       config_hash=cfg or f"h{n}", status="completed", state=state,
                       values={k: (v if isinstance(v, Measure) else M(v)) for k, v in values.items()})


# --- objectives and constraints -------------------------------------------------------------

def test_objectives_default_comma_and_repeated():
    assert parse_objectives([]) == [DEFAULT_OBJECTIVE] == ["energy_per_output_token_j"]
    assert parse_objectives(["energy_per_output_token_j,output_tokens_per_s"]) == \
        parse_objectives(["energy_per_output_token_j", "output_tokens_per_s"])
    assert spec(("energy_per_output_token_j", "output_tokens_per_s", "itl_ms_p99")).directions == \
        ["minimize", "maximize", "minimize"]


@pytest.mark.parametrize("bad, needles", [
    ("energy", ["--objective=energy", "not a metric", "allowed: energy_per_output_token_j"]),
    ("output_tokens_per_second", ["did you mean output_tokens_per_s?"]),
    ("batch", ["--objective=batch", "not a metric"]),
])
def test_an_objective_that_is_not_a_metric_is_refused(bad, needles):
    with pytest.raises(ConfigError) as e:
        parse_objectives([bad])
    assert e.value.field == "--objective" and e.value.value == bad
    for n in needles:
        assert n in str(e.value)


def test_an_objective_named_twice_is_refused():
    with pytest.raises(ConfigError, match="named twice"):
        parse_objectives(["output_tokens_per_s,output_tokens_per_s"])


def test_constraints_parse_and_hold():
    c = parse_constraint(" output_tokens_per_s >= 1e3 ")
    assert (c.metric, c.op, c.bound) == ("output_tokens_per_s", ">=", 1000.0)
    assert c.holds(1000.0) and not c.holds(999.9)
    ceiling = parse_constraint("itl_ms_p99<=50")
    assert ceiling.holds(50) and not ceiling.holds(50.5)
    for bad, needle in [("tokens>=3", "not a metric"), ("output_tokens_per_s>1000", "METRIC>=NUMBER"),
                        ("output_tokens_per_s>=fast", "METRIC>=NUMBER"), ("itl_ms_p98<=5", "not a metric")]:
        with pytest.raises(ConfigError, match=needle) as e:
            parse_constraint(bad)
        assert e.value.field == "--constraint" and e.value.value == bad


# --- one trial's outcome ------------------------------------------------------------------

def test_a_measured_result_gives_the_objectives_with_their_ci():
    r = synthetic_result(real_result(), backend="pytorch", batch=4, j_per_token=0.25, tokens_per_s=800.0)
    o = evaluate(r, spec(("energy_per_output_token_j", "output_tokens_per_s")))
    assert o.feasible and o.reason is None
    j = o.values["energy_per_output_token_j"]
    st = r.stats["energy_per_output_token_j"]
    assert j.value == pytest.approx(st.value) and (j.ci95_low, j.ci95_high) == (st.ci95_low, st.ci95_high)
    assert j.ci95_low <= j.value <= j.ci95_high
    assert o.values["output_tokens_per_s"].value == pytest.approx(r.stats["output_tokens_per_s"].value)


def test_a_broken_constraint_makes_the_trial_infeasible_not_failed():
    r = synthetic_result(real_result(), backend="pytorch", batch=4, j_per_token=0.25, tokens_per_s=800.0)
    tps = r.stats["output_tokens_per_s"].value
    ok = evaluate(r, spec(constraints=[f"output_tokens_per_s>={tps * 0.5}"]))
    assert ok.feasible and ok.constraints["output_tokens_per_s"] == pytest.approx(tps)
    o = evaluate(r, spec(constraints=[f"output_tokens_per_s>={tps * 2}"]))
    assert not o.feasible and o.reason is None and "energy_per_output_token_j" in o.values
    assert len(o.violations) == 1 and "output_tokens_per_s" in o.violations[0] and ">=" in o.violations[0]


def test_energy_not_measured_or_a_failed_job_gives_no_value_with_the_reason():
    r = real_result()  # energy was not measured on the machine that wrote it
    assert r.energy.measured is False
    o = evaluate(r, spec())
    assert not o.feasible and o.values == {} and "not measured: energy_per_output_token_j" in o.reason
    assert r.energy.not_measured_reason and r.energy.not_measured_reason[:40] in o.reason
    # throughput was measured even so: a throughput search has its value
    assert evaluate(r, spec(("output_tokens_per_s",))).feasible
    # a constraint on a latency the job did not measure cannot be judged: no value
    r2 = r.model_copy(update={"latency": None})
    o = evaluate(r2, spec(("output_tokens_per_s",), constraints=["itl_ms_p99<=50"]))
    assert not o.feasible and "itl_ms_p99" in o.reason
    failed = r.model_copy(update={"status": "failed", "error_type": "OutOfMemoryError", "error_message": "CUDA OOM"})
    o = evaluate(failed, spec(("output_tokens_per_s",)))
    assert not o.feasible and "OutOfMemoryError: CUDA OOM" in o.reason
    assert "JobKilled" in evaluate(None, spec(), failure="JobKilled: SIGKILL").reason


# --- the front, the candidates, the choice -----------------------------------------------------

def test_dominance_and_pareto_front():
    s = spec(("energy_per_output_token_j", "output_tokens_per_s"))
    pts = [trial(1, energy_per_output_token_j=1.0, output_tokens_per_s=10),
           trial(2, energy_per_output_token_j=0.5, output_tokens_per_s=20),   # dominates 1
           trial(3, energy_per_output_token_j=0.2, output_tokens_per_s=5),    # least energy
           trial(4, energy_per_output_token_j=0.9, output_tokens_per_s=40),   # fastest
           trial(5, energy_per_output_token_j=0.5, output_tokens_per_s=20)]   # equal to 2: neither dominates
    assert dominates(pts[1].values, pts[0].values, s) and not dominates(pts[0].values, pts[1].values, s)
    assert not dominates(pts[1].values, pts[4].values, s)
    front = pareto_front(pts, s)
    assert [t.number for t in front] == [3, 2, 5, 4]  # ordered by the primary objective
    for p in front:
        assert not any(dominates(q.values, p.values, s) for q in pts)
    for p in [t for t in pts if t not in front]:
        assert any(dominates(q.values, p.values, s) for q in front)


def test_confirm_candidates_are_the_best_distinct_feasible_configs():
    s = spec(confirm=2)
    ts = [trial(1, energy_per_output_token_j=0.3), trial(2, energy_per_output_token_j=0.1),
          trial(3, cfg="h2", energy_per_output_token_j=0.15),       # configuration of trial 2 again
          trial(4, state="infeasible", energy_per_output_token_j=0.01),
          trial(5, state="failed"), trial(6, energy_per_output_token_j=0.2)]
    assert [t.number for t in confirm_candidates(ts, s)] == [2, 6]
    assert confirm_candidates(ts, spec(confirm=0)) == []
    multi = spec(("energy_per_output_token_j", "output_tokens_per_s"), confirm=5)
    mt = [trial(1, energy_per_output_token_j=0.3, output_tokens_per_s=50),
          trial(2, energy_per_output_token_j=0.1, output_tokens_per_s=20),
          trial(3, energy_per_output_token_j=0.4, output_tokens_per_s=10)]  # dominated by 1
    assert [t.number for t in confirm_candidates(mt, multi)] == [2, 1]


def test_a_configuration_measured_twice_with_equal_primary_values_keeps_its_better_trial():
    # a counter that publishes in steps gives two trials of one configuration the same energy:
    # the tie goes to the better on the next objective, then to the earlier trial, so the trial
    # kept is never dominated by another of its configuration (keeping the first one found put
    # 0001 in place of 0002 below, and configuration h1 dropped off the front, 0003 dominating it)
    s = spec(("energy_per_output_token_j", "output_tokens_per_s"))
    ts = [trial(1, cfg="h1", energy_per_output_token_j=0.5, output_tokens_per_s=10),
          trial(2, cfg="h1", energy_per_output_token_j=0.5, output_tokens_per_s=20),
          trial(3, energy_per_output_token_j=0.4, output_tokens_per_s=15),
          trial(4, cfg="h4", energy_per_output_token_j=0.3, output_tokens_per_s=5),
          trial(5, cfg="h4", energy_per_output_token_j=0.3, output_tokens_per_s=5)]   # equal to 4 on both
    _, best, front, _ = choose(ts, {}, s)
    assert [c.job_id for c in front] == ["0004", "0003", "0002"] and best.job_id == "0004"
    for c in front:
        assert not any(dominates(t.values, c.values, s) for t in ts if t.config_hash == c.config_hash)
    # one objective: the earlier of two equal trials, whichever order the trials come in
    one = spec(confirm=2)
    ties = [trial(1, cfg="h1", energy_per_output_token_j=0.2), trial(2, cfg="h1", energy_per_output_token_j=0.2),
            trial(3, energy_per_output_token_j=0.1)]
    assert [t.number for t in confirm_candidates(ties, one)] == [3, 1]
    assert [t.number for t in confirm_candidates(ties[::-1], one)] == [3, 1]


def test_without_confirmation_the_best_is_the_searchs_and_ties_are_named():
    s = spec()
    ts = [trial(1, energy_per_output_token_j=M(0.30, 0.01)), trial(2, energy_per_output_token_j=M(0.20, 0.05)),
          trial(3, energy_per_output_token_j=M(0.22, 0.01)), trial(4, state="infeasible", energy_per_output_token_j=0.01)]
    cands, best, front, notes = choose(ts, {}, s)
    assert best.job_id == "0002" and best.values_from == "search" and front is None
    assert best.tied_with == ["0003"] and "cannot tell them apart" in notes[0]
    assert overlaps(M(0.2, 0.05), M(0.22, 0.01)) and not overlaps(M(0.3, 0.01), M(0.2, 0.05))


def test_confirmation_values_decide_and_a_confirmation_that_breaks_a_constraint_drops_the_candidate():
    s = spec(constraints=["output_tokens_per_s>=100"], confirm=3)
    ts = [trial(1, energy_per_output_token_j=M(0.10, 0.01)), trial(2, energy_per_output_token_j=M(0.11, 0.01)),
          trial(3, energy_per_output_token_j=M(0.12, 0.01)), trial(4, energy_per_output_token_j=M(0.5, 0.01))]
    conf = {1: trial(1, state="infeasible", energy_per_output_token_j=M(0.09, 0.01)),
            2: trial(2, energy_per_output_token_j=M(0.14, 0.005)),    # lucky in the search
            3: trial(3, energy_per_output_token_j=M(0.12, 0.005))}
    conf[1].violations = ["output_tokens_per_s=90 breaks output_tokens_per_s>=100"]
    for n, c in conf.items():
        c.job_id = f"{n:04d}_c1"
    cands, best, front, notes = choose(ts, conf, s)
    assert [c.job_id for c in cands] == ["0001", "0002", "0003"]
    assert best.job_id == "0003" and best.values_from == "confirmation" and best.confirm_job_id == "0003_c1"
    assert best.values["energy_per_output_token_j"].value == 0.12
    assert best.search_values["energy_per_output_token_j"].value == 0.12 and best.tied_with == []
    assert any("0001" in n and "breaks output_tokens_per_s>=100" in n for n in notes)
    rec = SearchRecord(study_name="s", study_dir="/tmp/s", spec=s, trials=ts, candidates=cands, best=best, notes=notes)
    text = summary_text(rec)
    assert "best: 0003 batch=3" in text and "0.1200 [0.1150, 0.1250]" in text and "confirmation 0003_c1" in text
    assert "search (confirmation infeasible)" in text


def test_multi_objective_names_the_front_and_its_best_on_the_first_objective():
    s = spec(("energy_per_output_token_j", "output_tokens_per_s"))
    ts = [trial(1, energy_per_output_token_j=0.3, output_tokens_per_s=M(50, 1)),
          trial(2, energy_per_output_token_j=M(0.1, 0.01), output_tokens_per_s=20),
          trial(3, energy_per_output_token_j=0.4, output_tokens_per_s=10)]
    cands, best, front, notes = choose(ts, {}, s)
    assert [c.job_id for c in front] == ["0002", "0001"] and best.job_id == "0002"
    rec = SearchRecord(study_name="s", study_dir="/tmp/s", spec=s, trials=ts, candidates=cands, best=best,
                       pareto_front=front)
    assert "Pareto front" in summary_text(rec) and "50.00 [49.00, 51.00]" in summary_text(rec)


def test_no_feasible_trial_names_nothing():
    cands, best, front, _ = choose([trial(1, state="failed"), trial(2, state="infeasible")], {}, spec())
    assert cands == [] and best is None and front is None
