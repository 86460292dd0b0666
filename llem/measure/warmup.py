"""Warm-up: generate calls of the workload (one prepared batch each) until latency settles (or a
fixed number of calls), and for at least ``warmup_min_s`` seconds after the first call.

Calls, not whole passes over ``num_prompts``: at batch 1 a pass of 8 prompts is 8 sequential
calls, and warming up by passes spent tens of seconds on what settles in a few calls.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class WarmupReport:
    runs: int = 0                                   # generate calls
    durations_s: list = field(default_factory=list)  # one per call, bracketed by device synchronisation
    output_tokens: list = field(default_factory=list)  # one per call
    converged: Optional[bool] = None
    reason: str = ""

    @property
    def last_call_s(self) -> Optional[float]:
        return self.durations_s[-1] if self.durations_s else None

    def describe(self) -> dict:
        return {"unit": "generate calls", "runs": self.runs, "durations_s": self.durations_s,
                "seconds": sum(self.durations_s), "converged": self.converged, "reason": self.reason}


def warm_up(work, mcfg, sync) -> WarmupReport:
    """``work.call(k)`` runs the k-th generate call of the workload (batches in rotation) and
    returns its output tokens; ``sync`` waits for the device. Each call is timed on its own
    (outside every window, so the synchronisation around it costs nothing measured)."""
    rep = WarmupReport()

    def one_call() -> None:
        sync()
        t = time.perf_counter()
        tokens = work.call(rep.runs)
        sync()
        rep.durations_s.append(time.perf_counter() - t)
        rep.output_tokens.append(tokens)
        rep.runs += 1

    target = mcfg.warmup_cv_target
    limit = mcfg.warmup_max_runs if target else mcfg.warmup_runs
    for _ in range(limit):
        one_call()
        if target and rep.runs >= max(mcfg.warmup_runs, mcfg.warmup_window):
            last = rep.durations_s[-mcfg.warmup_window:]
            cv = statistics.stdev(last) / statistics.mean(last) if statistics.mean(last) else 0.0
            if cv <= target:
                rep.converged = True
                rep.reason = f"latency CV {cv:.2%} <= {target:.2%} over the last {mcfg.warmup_window} calls"
                break
    if target and not rep.converged:
        rep.converged = False
        rep.reason = f"latency CV did not reach {target:.2%} within {limit} calls"
    elif not target:
        rep.reason = f"fixed count of {rep.runs} generate calls"
    # A time floor on top of the count: what settles after the first call (clocks, power, the host
    # under sustained load, work torch.compile leaves behind) settles in seconds, not in calls,
    # and a short call is a fraction of a second. The first call pays for compilation and
    # caches, so it does not count. Without a warm-up call (warmup_runs=0, no CV target) there is
    # no floor either: that still means no warm-up at all.
    floor = mcfg.warmup_min_s
    if floor > 0 and rep.runs:
        counted, after_first = rep.runs, sum(rep.durations_s[1:])
        # a running total: a fast call (a tiny model, ~1 ms) can need thousands of them
        while after_first < floor:
            one_call()
            after_first += rep.durations_s[-1]
        if rep.runs > counted:
            rep.reason += f"; then {rep.runs - counted} more, until the calls after the first lasted {floor:g} s"
    return rep


def steady_state_claim(rep: WarmupReport) -> tuple[bool, str]:
    """Whether the measured windows may be called steady state, and the sentence that says so.

    Never claimed when no warm-up call ran before the first window (its first call pays for
    caches, allocator growth, kernel selection), nor when convergence was asked for and not
    reached."""
    if rep.runs == 0:
        return False, ("not steady state: no warm-up call ran (warmup_runs=0), so the first measured window "
                       "includes the first (cold) generate calls")
    if rep.converged is False:
        return False, f"not steady state: {rep.reason}; the windows may include warm-up effects"
    return True, (f"windows start after {rep.runs} warm-up generate calls ({sum(rep.durations_s):.3g} s; "
                  f"{rep.reason}); no warm-up, loading or latency/phase pass falls inside a measured window")
