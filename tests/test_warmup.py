from types import SimpleNamespace

from llem.warmup import WarmupReport, steady_state_claim, warm_up


class Work:
    """A workload whose pass time is scripted through a fake clock (no sleeping)."""

    def __init__(self, clock, durations):
        self.clock, self.durations = clock, list(durations)

    def run(self):
        self.clock.t += self.durations.pop(0)
        return 1


def _cfg(**kw):
    base = dict(warmup_runs=2, warmup_cv_target=None, warmup_max_runs=20, warmup_window=3)
    base.update(kw)
    return SimpleNamespace(**base)


def test_convergence_stops_when_latency_cv_settles(monkeypatch):
    clock = SimpleNamespace(t=0.0)
    monkeypatch.setattr("llem.warmup.time.perf_counter", lambda: clock.t)
    work = Work(clock, [3.0, 2.0, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    rep = warm_up(work, _cfg(warmup_cv_target=0.02), lambda: None)
    assert rep.converged is True and rep.runs == 6 and "CV" in rep.reason


def test_convergence_not_reached_is_said():
    work = SimpleNamespace(run=lambda: 1)
    rep = warm_up(work, _cfg(warmup_cv_target=1e-12, warmup_max_runs=4), lambda: None)
    assert rep.converged is False and rep.runs == 4
    ok, text = steady_state_claim(rep, calibration_pass=False)
    assert not ok and text.startswith("not steady state")


def test_steady_state_claims():
    assert steady_state_claim(WarmupReport(runs=0), calibration_pass=True)[0] is False
    assert steady_state_claim(WarmupReport(runs=0), calibration_pass=False)[0] is False
    ok, text = steady_state_claim(WarmupReport(runs=2, durations_s=[1, 1], reason="fixed count"), False)
    assert ok and "2 full-length warm-up passes" in text
