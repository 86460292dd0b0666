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
