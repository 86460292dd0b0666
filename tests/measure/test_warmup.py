from types import SimpleNamespace

from llem.measure.warmup import WarmupReport, steady_state_claim, warm_up


class Work:
    """A workload whose call time is scripted through a fake clock (no sleeping)."""

    def __init__(self, clock, durations):
        self.clock, self.durations = clock, list(durations)
        self.called = []

    def call(self, k):
        self.called.append(k)
        self.clock.t += self.durations.pop(0)
        return 1


def _cfg(**kw):
    base = dict(warmup_runs=2, warmup_cv_target=None, warmup_max_runs=20, warmup_window=3, warmup_min_s=0.0)
    base.update(kw)
    return SimpleNamespace(**base)


def test_convergence_stops_when_latency_cv_settles(monkeypatch):
    clock = SimpleNamespace(t=0.0)
    monkeypatch.setattr("llem.measure.warmup.time.perf_counter", lambda: clock.t)
    work = Work(clock, [3.0, 2.0, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    rep = warm_up(work, _cfg(warmup_cv_target=0.02), lambda: None)
    assert rep.converged is True and rep.runs == 6 and "CV" in rep.reason


def test_convergence_not_reached_is_said():
    work = SimpleNamespace(call=lambda k: 1)
    rep = warm_up(work, _cfg(warmup_cv_target=1e-12, warmup_max_runs=4), lambda: None)
    assert rep.converged is False and rep.runs == 4 and "within 4 calls" in rep.reason
    ok, text = steady_state_claim(rep)
    assert not ok and text.startswith("not steady state")


def test_steady_state_claims():
    ok, text = steady_state_claim(WarmupReport(runs=0))
    assert ok is False and "warmup_runs=0" in text
    ok, text = steady_state_claim(WarmupReport(runs=2, durations_s=[1, 1], reason="fixed count"))
    assert ok and "2 warm-up generate calls" in text


def test_warm_up_counts_generate_calls_not_passes(monkeypatch):
    """With 8 prompts at batch 1 a pass is 8 calls; warmup_runs=2 is two calls, the rotation's first two."""
    clock = SimpleNamespace(t=0.0)
    monkeypatch.setattr("llem.measure.warmup.time.perf_counter", lambda: clock.t)
    work = Work(clock, [2.0, 1.0, 1.0, 1.0])
    rep = warm_up(work, _cfg(warmup_runs=2), lambda: None)
    assert work.called == [0, 1] and rep.runs == 2 and rep.durations_s == [2.0, 1.0]
    assert rep.output_tokens == [1, 1] and rep.describe()["unit"] == "generate calls"
    assert rep.reason == "fixed count of 2 generate calls"


def test_time_floor_adds_passes_until_those_after_the_first_last_long_enough(monkeypatch):
    clock = SimpleNamespace(t=0.0)
    monkeypatch.setattr("llem.measure.warmup.time.perf_counter", lambda: clock.t)
    # a 20 s first pass (compilation) does not count towards the floor
    work = Work(clock, [20.0] + [0.5] * 40)
    rep = warm_up(work, _cfg(warmup_min_s=4.0), lambda: None)
    assert sum(rep.durations_s[1:]) >= 4.0 > sum(rep.durations_s[1:-1])
    assert rep.runs == 9 and "then 7 more" in rep.reason and rep.reason.startswith("fixed count of 2")
    assert "calls after the first lasted 4 s" in rep.reason
    # already long enough after the count: no extra pass, and the reason says nothing more
    rep = warm_up(Work(clock, [1.0, 5.0, 5.0]), _cfg(warmup_min_s=4.0), lambda: None)
    assert rep.runs == 2 and "more" not in rep.reason


def test_time_floor_follows_convergence_and_never_replaces_warmup_runs_0(monkeypatch):
    clock = SimpleNamespace(t=0.0)
    monkeypatch.setattr("llem.measure.warmup.time.perf_counter", lambda: clock.t)
    work = Work(clock, [3.0, 1.0, 1.0, 1.0] + [1.0] * 10)
    rep = warm_up(work, _cfg(warmup_cv_target=0.02, warmup_min_s=6.0), lambda: None)
    assert rep.converged is True and rep.runs == 7 and "CV" in rep.reason and "then 3 more" in rep.reason
    # warmup_runs=0: no warm-up at all, whatever the floor says
    rep = warm_up(Work(clock, [1.0] * 5), _cfg(warmup_runs=0, warmup_min_s=10.0), lambda: None)
    assert rep.runs == 0 and rep.durations_s == []
