"""benchmarks/gpu_validation/compile_events.py: torch's own compile callbacks, placed against windows."""
import time

import pytest

from tests.conftest import load_benchmark


def test_a_real_recompile_is_placed_in_the_window_it_ran_in():
    torch = pytest.importorskip("torch")
    mod = load_benchmark("compile_events")
    ev = mod.CompileEvents()
    try:
        assert ev.available, ev.reason
        # eager backend: dynamo traces and guards for real, but no C++ toolchain is needed
        f = torch.compile(lambda x: x * 2 + 1, backend="eager", dynamic=False)
        f(torch.ones(3))  # first compile, before any window
        a = time.perf_counter()
        f(torch.ones(3))  # cached: no compile work
        b = time.perf_counter()
        f(torch.ones(4, 4))  # a new shape fails the guards: a recompile inside this window
        c = time.perf_counter()
    finally:
        ev.close()
    n = len(ev.edges)
    f(torch.ones(5, 5, 5))  # after close(): nothing more recorded
    assert len(ev.edges) == n
    d = ev.describe([("quiet", a, b), ("recompile", b, c)])
    assert d["available"] and all(s["trigger"] == "dynamo" for s in d["spans"])
    assert d["windows_hit"] == ["recompile"] and d["in_windows"] == 1 and d["before_first_window"] == 1
    hit = [s for s in d["spans"] if s["windows"]][0]
    assert 0 < hit["duration_s"] <= c - b and hit["start_s"] >= b - a


def test_place_pairs_edges_per_trigger_and_keeps_unfinished_ones():
    mod = load_benchmark("compile_events")
    edges = [{"t": 1.0, "edge": "start", "trigger": "dynamo", "compile_id": "0/0"},
             {"t": 1.5, "edge": "start", "trigger": "cudagraph_recording", "compile_id": "0/0"},
             {"t": 2.0, "edge": "end", "trigger": "cudagraph_recording", "compile_id": "0/0"},
             {"t": 3.0, "edge": "end", "trigger": "dynamo", "compile_id": "0/0"},
             {"t": 12.0, "edge": "start", "trigger": "dynamo", "compile_id": "1/0"}]
    d = mod.place(edges, [("llem 1", 2.5, 5.0), ("bare 1", 6.0, 8.0), ("llem 2", 11.0, 13.0)])
    by = {(s["trigger"], s["compile_id"]): s for s in d["spans"]}
    # the dynamo compile ran 1.0-3.0: it reaches into llem 1; the recording inside it does not
    assert by[("dynamo", "0/0")]["windows"] == ["llem 1"] and by[("dynamo", "0/0")]["start_s"] == pytest.approx(-1.5)
    assert by[("cudagraph_recording", "0/0")]["windows"] == [] and d["before_first_window"] == 1
    # started, never ended: no duration, but it still counts in the window it started in
    assert by[("dynamo", "1/0")]["duration_s"] is None and by[("dynamo", "1/0")]["windows"] == ["llem 2"]
    assert d["in_windows"] == 2 and d["windows_hit"] == ["llem 1", "llem 2"]
    assert d["in_windows_s"] == pytest.approx(2.0)
