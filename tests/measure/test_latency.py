"""Latency from per-token timestamps."""
from __future__ import annotations

import pytest

from llem.backends.base import GenerationOutput
from llem.measure.latency import aggregate, latencies_from_times, measure_latency


def test_definitions_on_known_timestamps():
    d = latencies_from_times(10.0, [10.1, 10.12, 10.15, 10.16])
    assert d["ttft_ms"] == pytest.approx(100) and d["e2e_latency_ms"] == pytest.approx(160)
    assert d["itl_ms"] == pytest.approx([20, 30, 10])
    assert d["tpot_ms"] == pytest.approx(20)


def test_aggregate_counts_every_request_and_trims_first_and_last_gap():
    outs = [GenerationOutput(input_tokens=4, output_tokens=8, num_requests=2, start_time=0.0,
                             token_times=[[0.5, 0.6, 0.8, 0.9, 1.4]] * 2),
            GenerationOutput(input_tokens=2, output_tokens=5, num_requests=1, start_time=2.0,
                             token_times=[[2.1, 2.2, 2.3, 2.4, 2.5]])]
    lat = aggregate(outs, "m")
    assert lat.ttft_ms.n == 3 and lat.ttft_ms.p50 == pytest.approx(500)
    assert lat.itl_ms.n == 12 and lat.itl_trimmed_ms.n == 6
    assert lat.itl_trimmed_ms.mean == pytest.approx((200 + 100) * 2 / 6 + 100 * 2 / 6)
    assert lat.e2e_latency_ms.mean == pytest.approx((1400 + 1400 + 500) / 3) and lat.e2e_latency_ms.p99 == pytest.approx(1400)
    assert lat.ttft_ms.mean == pytest.approx((500 + 500 + 100) / 3) and lat.tpot_ms.n == 3


def test_backend_without_timestamps_reports_why():
    class NoStream:
        name = "x"

        def synchronize(self):
            pass

        def generate(self, b, timing=False):
            raise NotImplementedError("streamers do not support beam search")

    lat = measure_latency(NoStream(), [object()])
    assert lat.method.startswith("not measured: streamers") and lat.ttft_ms.mean is None


class ScriptedBackend:
    """Test double: each timed call lasts ``call_s`` on a scripted clock, one request of 4 tokens."""

    name = "scripted"

    def __init__(self, call_s):
        self.call_s, self.t, self.calls = call_s, 0.0, 0

    def synchronize(self):
        pass

    def generate(self, b, timing=False):
        start = self.t
        self.t += self.call_s
        self.calls += 1
        return GenerationOutput(input_tokens=8, output_tokens=4, num_requests=1, start_time=start, end_time=self.t,
                                token_times=[[start + self.call_s * k / 4 for k in range(1, 5)]])


def test_latency_pass_takes_calls_while_the_budget_allows_the_next():
    be = ScriptedBackend(1.0)
    # 2 calls spend 2 s; a third at 1 s would pass 2.5 s
    lat = measure_latency(be, list(range(8)), budget_s=2.5, windows_output_tokens_per_s=8.0)
    assert be.calls == 2 and lat.calls == 2 and lat.requests == 2 and lat.duration_s == pytest.approx(2.0)
    assert lat.output_tokens_per_s == pytest.approx(4.0) and lat.latency_throughput_ratio == pytest.approx(0.5)
    assert lat.ttft_ms.n == 2 and lat.precision.startswith("2 requests (TTFT, TPOT, E2E) and 6 inter-token gaps")
    # at least one call, whatever the budget; at most one pass over the batches
    assert measure_latency(ScriptedBackend(1.0), list(range(8)), budget_s=0.0).calls == 1
    assert measure_latency(ScriptedBackend(1.0), list(range(3)), budget_s=100.0).calls == 3
