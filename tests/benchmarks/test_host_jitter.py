"""benchmarks/overhead/host_jitter.py: the bare loop's per-call series, the CPU it ran on, and the ABBA noise floor."""
import json
import os
import time

import pytest

from tests.conftest import load_benchmark


def test_abba_floor_of_a_steady_series_is_zero_and_a_level_change_shows():
    mod = load_benchmark("host_jitter")
    flat = mod.abba_floor([0.4] * 40, 2)
    assert flat["blocks"] == 5 and flat["mean_rel"] == pytest.approx(0) and flat["sd_rel"] == pytest.approx(0)
    # every block's llem windows slow (0.5) and bare windows fast (0.4): +25% in every block
    block = [0.5, 0.5, 0.4, 0.4, 0.4, 0.4, 0.5, 0.5]
    step = mod.abba_floor(block * 3, 2)
    assert step["mean_rel"] == pytest.approx(0.25) and step["sd_rel"] == pytest.approx(0)
    assert mod.abba_floor([0.4] * 7, 2) == {"window_calls": 2, "blocks": 0}


@pytest.mark.parametrize("argv, says", [
    (["--phase", "sleep:3"], "--phase='sleep:3': free:SECONDS or pin:SECONDS"),
    (["--batch", "0"], "--batch=0 and --interval-s=0.05: a batch of 1 or more"),
    (["--min-calls", "2"], "--min-calls=2: 4 or more"),
])
def test_bad_input_is_refused_with_the_field_and_what_is_allowed(capsys, argv, says):
    mod = load_benchmark("host_jitter")
    with pytest.raises(SystemExit) as e:
        mod.main(["--out", "x", *argv])
    assert e.value.code == 2
    assert says in capsys.readouterr().err


class _SlowLoop:
    """A call that always outlasts the phase: the host is slower than the phase is long."""
    def __init__(self):
        self.calls = 0

    def call(self):
        self.calls += 1
        time.sleep(0.05)


def test_a_phase_shorter_than_one_call_still_makes_min_calls():
    # sleep is a floor, never a ceiling: one call always outlasts the 0.01 s phase, so a phase
    # bounded by time alone would make 1 call; the count bound makes it 5 on any host
    mod = load_benchmark("host_jitter")
    loop = _SlowLoop()
    phases = mod.run_phases(loop, [("free", 0.01), ("pin", 0.01)], min_calls=5)
    assert [len(p["calls"]) for p in phases] == [5, 5] and loop.calls == 10


def test_cpu_run_records_calls_cpus_threads_and_the_pinned_phase(tmp_path, capsys):
    pytest.importorskip("torch")
    mod = load_benchmark("host_jitter")
    # each phase lasts 1.5 s and at least 6 calls, so the call count does not depend on the host's speed
    assert mod.main(["--out", str(tmp_path), "--cpu", "--phase", "free:1.5", "--phase", "pin:1.5",
                     "--min-calls", "6"]) == 0
    rep = json.loads((tmp_path / "host_jitter.json").read_text())
    free, pin = rep["summary"]
    assert free["kind"] == "free" and pin["kind"] == "pin"
    assert free["calls"] >= 6 and pin["calls"] >= 6
    # pinned: every call of the phase ran on the CPU it was pinned to
    assert {c["cpu_end"] for c in rep["phases"][1]["calls"]} == {pin["pinned_cpu"]}
    assert pin["migrated_calls"] == 0
    # the monitor saw the main thread spend CPU time (it runs the loop); how much of a CPU it got
    # depends on what else the host runs, so only that it got some
    main = [v for k, v in free["threads_busy_share_of_one_cpu"].items() if k.endswith("(main)")]
    assert main and main[0] > 0
    assert rep["topology"]["affinity"] == sorted(os.sched_getaffinity(0))
    # restored after the pinned phase
    assert len(os.sched_getaffinity(0)) == len(rep["topology"]["affinity"])
    # the summary again from the saved files, as for a run committed under docs/validation/
    capsys.readouterr()
    assert mod.main(["--out", str(tmp_path), "--resummarise"]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [s["calls"] for s in again] == [free["calls"], pin["calls"]]
    assert again[1]["threads_busy_share_of_one_cpu"] == pin["threads_busy_share_of_one_cpu"]
    assert mod.main(["--out", str(tmp_path / "nothing"), "--resummarise"]) == 2
    assert "needs host_jitter.json and monitor.jsonl" in capsys.readouterr().err
