"""Garbage collections inside a gpu_validation.py run: which calls they landed in, and how long.

    python benchmarks/overhead/gc_pauses.py --out DIR [--slow-factor 3] -- GPU_VALIDATION_ARGS...

Runs ``benchmarks/gpu_validation/gpu_validation.py`` (its own ``--out``, given after ``--``) in this process
with call_path.py's ``gc.callbacks`` hook timing every collection, gpu_validation.py's
``--per-call`` wrapper stamping every llem call, and llem's meter wrapped to stamp every window
it opens (the load window first when the meter reads energy, then the measured cycles; the bare
arm's windows are not llem's). Writes ``gc_pauses.json`` into DIR: llem's windows, every collection of the oldest
generation (start, duration, objects collected, the llem window it fell in), every llem call
slower than ``slow-factor`` times the median with its window and the collections inside it,
and the tracked-object count at the end.

A diagnostic, not a comparison: the hook and the wrapper run inside the windows (microseconds
per call and per collection), so its run's llem-vs-bare figures are not to be pooled.
"""
from __future__ import annotations

import argparse
import gc
import json
import runpy
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
GPU_VALIDATION = REPO / "benchmarks" / "gpu_validation" / "gpu_validation.py"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("gc_pauses: give gpu_validation.py's arguments after --", file=sys.stderr)
        return 2
    cut = argv.index("--")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for gc_pauses.json")
    ap.add_argument("--slow-factor", type=float, default=3.0, help="a call this many times the median is slow")
    a = ap.parse_args(argv[:cut])
    if a.slow_factor <= 1:
        print(f"gc_pauses: --slow-factor must be above 1, not {a.slow_factor}", file=sys.stderr)
        return 2

    from benchmarks.overhead.call_path import GcClock
    from benchmarks.gpu_validation.gpu_validation import CallTimes
    from llem.backends import backend_class

    t0 = time.perf_counter()
    clock = GcClock()
    timer = CallTimes(backend_class("pytorch"))
    from llem.measure import harness

    windows: list[list[float]] = []
    select = harness.select_meter

    def stamped_meter(*args, **kw):
        meter, why = select(*args, **kw)
        begin, end = meter.begin, meter.end

        def b(*a_, **k_):
            h = begin(*a_, **k_)
            windows.append([time.perf_counter() - t0, None])
            return h

        def e(*a_, **k_):
            r = end(*a_, **k_)
            windows[-1][1] = time.perf_counter() - t0
            return r

        meter.begin, meter.end = b, e
        return meter, why

    harness.select_meter = stamped_meter
    gc.callbacks.append(clock)
    saved = sys.argv
    sys.argv = [str(GPU_VALIDATION), *argv[cut + 1:]]
    rc = 0
    try:
        runpy.run_path(str(GPU_VALIDATION), run_name="__main__")
    except SystemExit as e:  # gpu_validation.py ends with sys.exit(main())
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved
        gc.callbacks.remove(clock)
        timer.restore()
        harness.select_meter = select

    def window_of(t):
        return next((i for i, (a_, b_) in enumerate(windows) if b_ is not None and a_ <= t <= b_), None)

    calls = [(t - t0, d) for t, d in zip(timer.starts, timer.calls)]
    collections = [{"t_s": t - t0, "s": d, "generation": g, "collected": n, "llem_window": window_of(t - t0)}
                   for t, d, g, n in clock.events]
    med = statistics.median(d for _, d in calls) if calls else None
    slow = [{"t_s": t, "s": d, "llem_window": window_of(t),
             "collections_inside": [c for c in collections if t <= c["t_s"] <= t + d]}
            for t, d in calls if med and d > a.slow_factor * med]
    rep = {"command": "python benchmarks/overhead/gc_pauses.py " + " ".join(argv), "exit_code": rc,
           "tracked_objects_at_end": len(gc.get_objects()), "frozen_objects_at_end": gc.get_freeze_count(),
           "llem_windows_s": windows, "llem_calls": len(calls), "median_llem_call_s": med,
           "oldest_generation_collections": [c for c in collections if c["generation"] == 2],
           "collections_per_generation": {f"gen{g}": sum(c["generation"] == g for c in collections) for g in range(3)},
           "slow_llem_calls": slow}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gc_pauses.json").write_text(json.dumps(rep, indent=2))
    full = ", ".join(f"{c['s'] * 1e3:.0f} ms" for c in rep["oldest_generation_collections"])
    print(f"gc_pauses: {len(rep['oldest_generation_collections'])} full collections ({full}); "
          f"{sum(c['llem_window'] is not None for c in rep['oldest_generation_collections'])} of them in llem's "
          f"windows; {len(slow)} llem calls over {a.slow_factor:g}x the median, "
          f"{sum(bool(s['collections_inside']) for s in slow)} of them holding a collection")
    return rc


if __name__ == "__main__":
    sys.exit(main())
