"""Warm-up: full-length passes until latency settles (or a fixed number of runs), and for at
least ``warmup_min_s`` seconds after the first pass."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class WarmupReport:
    runs: int = 0
    durations_s: list = field(default_factory=list)
    converged: Optional[bool] = None
    reason: str = ""

    @property
    def last_pass_s(self) -> Optional[float]:
        return self.durations_s[-1] if self.durations_s else None

    def describe(self) -> dict:
        return {"runs": self.runs, "durations_s": self.durations_s, "converged": self.converged, "reason": self.reason}


def warm_up(work, mcfg, sync) -> WarmupReport:
    rep = WarmupReport()

    def one_pass() -> None:
        sync()
        t = time.perf_counter()
        work.run()
        sync()
        rep.durations_s.append(time.perf_counter() - t)
        rep.runs += 1

    target = mcfg.warmup_cv_target
    limit = mcfg.warmup_max_runs if target else mcfg.warmup_runs
    for _ in range(limit):
        one_pass()
        if target and rep.runs >= max(mcfg.warmup_runs, mcfg.warmup_window):
            last = rep.durations_s[-mcfg.warmup_window:]
            cv = statistics.stdev(last) / statistics.mean(last) if statistics.mean(last) else 0.0
            if cv <= target:
                rep.converged = True
                rep.reason = f"latency CV {cv:.2%} <= {target:.2%} over the last {mcfg.warmup_window} passes"
                break
    if target and not rep.converged:
        rep.converged = False
        rep.reason = f"latency CV did not reach {target:.2%} within {limit} passes"
    elif not target:
        rep.reason = f"fixed count of {rep.runs} full-length passes"
    # A time floor on top of the count: what settles after the first pass (clocks, power, the host
    # under sustained load, work torch.compile leaves behind) settles in seconds, not in passes,
    # and a batch-1 pass is a fraction of a second. The first pass pays for compilation and
    # caches, so it does not count. Without a warm-up pass (warmup_runs=0, no CV target) there is
    # no floor either: that still means no warm-up at all.
    floor = mcfg.warmup_min_s
    if floor > 0 and rep.runs:
        counted, after_first = rep.runs, sum(rep.durations_s[1:])
        # a running total: a fast pass (a tiny model, ~1 ms) can need tens of thousands of them
        while after_first < floor:
            one_pass()
            after_first += rep.durations_s[-1]
        if rep.runs > counted:
            rep.reason += f"; then {rep.runs - counted} more, until the passes after the first lasted {floor:g} s"
    return rep


def steady_state_claim(rep: WarmupReport, calibration_pass: bool) -> tuple[bool, str]:
    """Whether the measured windows may be called steady state, and the sentence that says so.

    Never claimed when no full-length pass ran before the first window (its first pass pays
    for caches, allocator growth, kernel selection), nor when convergence was asked for and not
    reached."""
    if rep.runs == 0 and not calibration_pass:
        return False, ("not steady state: no warm-up pass ran, so the first measured window includes the "
                       "first (cold) generate calls")
    if rep.converged is False:
        return False, f"not steady state: {rep.reason}; the windows may include warm-up effects"
    if rep.runs == 0:
        return False, ("not claimed: warmup_runs=0; only the calibration passes that size the window ran before "
                       "the first measured window")
    return True, (f"windows start after {rep.runs} full-length warm-up passes ({rep.reason}); no warm-up, "
                  "loading or latency/phase pass falls inside a measured window")
