"""Tensor parallelism on CPU: two gloo ranks (this process + one follower llem starts itself)."""
from __future__ import annotations

import pytest

from llem.backends.pytorch import PyTorchBackend
from tests.backends.test_pytorch import NO_GPU, make


@pytest.mark.slow
def test_tensor_parallel_generates_what_one_process_generates(tmp_path, monkeypatch):
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path))
    prompts = [[5, 6, 7, 8], [9, 10, 11, 12]]
    single = PyTorchBackend(make(), NO_GPU)
    single.load()
    single.generate(single.prepare(prompts))
    want = single.last_output_ids.tolist()
    single.close()

    tp = PyTorchBackend(make(pytorch={"tp_plan": "auto", "tp_size": 2}), NO_GPU)
    try:
        tp.load()
        assert tp._world == 2 and len(tp._followers) == 1 and tp.devices_used() == [0, 1]
        assert "tensor parallel x2" in tp.device_label()
        batch = tp.prepare(prompts)
        got = tp.generate(batch, timing=True)
        assert got.output_tokens == 8 and len(got.token_times[0]) == 4
        assert tp.last_output_ids.tolist() == want
        assert tp.prefill(batch).output_tokens == 2
        # the follower mirrored every call, so a later generate finds it ready (no hanging collective)
        assert tp.generate(batch).output_tokens == 8
    finally:
        tp.close()
    assert [p.returncode for p in tp._followers] == [0]
