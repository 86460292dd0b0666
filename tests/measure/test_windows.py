"""Window mechanics without a model or a clock: windows in generate calls (llem/measure/harness.py)."""
from types import SimpleNamespace

import pytest

from llem.backends.base import GenerationOutput, PreparedBatch
from llem.measure.harness import Workload, phase_window_target_s, timed_calls, window_target_s


def _mcfg(**kw):
    base = dict(quantisation_target=0.005, phase_quantisation_target=0.025, min_window_s=2.0)
    base.update(kw)
    return SimpleNamespace(**base)


class ScriptedGenerate:
    """Test double for the backend's call clock: call k ends at ``ends[k]`` seconds."""

    def __init__(self, ends, tokens=8):
        self.ends, self.tokens, self.seen = list(ends), tokens, []

    def __call__(self, batch):
        self.seen.append(batch)
        return GenerationOutput(input_tokens=1, output_tokens=self.tokens, num_requests=1, start_time=None,
                                end_time=self.ends[len(self.seen) - 1])


def test_a_window_ends_at_the_first_call_boundary_past_its_target():
    gen = ScriptedGenerate([0.7, 1.4, 2.1, 2.8, 3.5])
    n, out = timed_calls(gen, ["a", "b"], t_open=0.0, needed_s=2.0, max_calls=100)
    # 1.4 s after two calls is short of 2 s; the third call ends at 2.1 s: the window stops there
    assert (n, out) == (3, 24) and gen.seen == ["a", "b", "a"]


def test_a_window_stops_at_max_calls_and_takes_at_least_one_call():
    gen = ScriptedGenerate([1.0] * 10)
    assert timed_calls(gen, ["a"], t_open=0.9, needed_s=5.0, max_calls=4)[0] == 4
    assert timed_calls(ScriptedGenerate([0.0]), ["a"], t_open=0.0, needed_s=0.0, max_calls=4)[0] == 1


def test_windows_are_sized_by_the_bound_with_min_window_s_as_floor():
    # an H100's 100 ms counter step at 0.5%: 20 s; min_window_s (2 s) below it
    assert window_target_s(0.1, _mcfg())[0] == pytest.approx(20.0)
    needed, why = window_target_s(0.1, _mcfg(min_window_s=30.0))
    assert needed == 30.0 and why.startswith("measurement.min_window_s (longer than")
    assert window_target_s(None, _mcfg())[0] == 2.0
    # phase windows: their own target, the same ratio without a counter
    assert phase_window_target_s(0.1, _mcfg())[0] == pytest.approx(4.0)
    assert phase_window_target_s(None, _mcfg())[0] == pytest.approx(0.4)


def test_rotation_gives_every_batch_its_share_across_windows():
    batches = [PreparedBatch(prompts=[[1]], input_tokens=k + 1) for k in range(3)]
    work = Workload(SimpleNamespace(generate=None), batches)
    assert [b.input_tokens for b in work.rotation_from(4)] == [2, 3, 1]
    # 5 calls from call 2: batches 3, 1, 2, 3, 1
    assert work.input_tokens_of(2, 5) == 3 + 1 + 2 + 3 + 1 and work.input_tokens_of(0, 6) == 2 * 6


def test_results_written_before_schema_1_2_still_load():
    import json
    from pathlib import Path

    from llem.result import ExperimentResult

    old = Path(__file__).resolve().parents[1] / "results" / "data" / "real_tiny_result.json"
    doc = json.loads(old.read_text())
    assert doc["schema_version"] in ("1.0", "1.1") and "calls" not in doc["cycles"][0]
    r = ExperimentResult.model_validate(doc)
    # whole passes then, no calls recorded; the latency pass had no throughput of its own
    assert r.cycles[0].calls is None and r.cycles[0].repeats == doc["cycles"][0]["repeats"]
    assert r.latency is None or r.latency.latency_throughput_ratio is None
