"""Tensor parallelism on CPU: two gloo ranks (this process + one follower llem starts itself)."""
from __future__ import annotations

import psutil
import pytest

from llem.backends.pytorch import PyTorchBackend, tensor_parallel
from llem.config.compose import load_config
from llem.measure import harness
from llem.runners.jobs import execute_job
from tests.backends.pytorch.test_backend import NO_GPU, make
from tests.conftest import FAST, REPO

TP = [*FAST, "device=cpu", "energy=none", "pytorch.tp_plan=auto", "pytorch.tp_size=2"]


def _followers_alive() -> list[str]:
    out = []
    for c in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(c.cmdline())
        except psutil.Error:
            continue
        if "--tp-follower" in cmd or "tp_stubborn_follower" in cmd:
            out.append(f"{c.pid}: {cmd}")
    return out


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
    # the follower took the stop and both ranks tore down together: it exited 0, and close()
    # neither waited out stop_timeout_s nor killed it (either would leave a shutdown warning)
    assert [p.returncode for p in tp._followers] == [0]
    assert tp.shutdown_warnings == []


@pytest.mark.slow
def test_followers_freeze_their_heaps_before_the_first_window(tmp_path, monkeypatch):
    # a full collection in a follower would stall rank 0's collectives inside a window
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path))
    r = harness.run(load_config(TP), tmp_path / "job")
    g = r.measurement_methodology["gc"]
    assert r.status == "completed" and g["gc_freeze"] is True
    # the follower answered with its own count, after its freeze (its heap: torch, transformers, model)
    assert len(g["workers_frozen_objects"]) == 1 and g["workers_frozen_objects"][0] > 1000
    assert _followers_alive() == []


@pytest.mark.slow
def test_follower_ignoring_the_stop_is_killed_and_the_result_stays_completed(tmp_path, monkeypatch):
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setattr(tensor_parallel, "FOLLOWER_ARGS", ("-m", "tests.backends.pytorch.tp_stubborn_follower"))
    monkeypatch.setattr(PyTorchBackend, "stop_timeout_s", 1.0)
    monkeypatch.setattr(PyTorchBackend, "kill_timeout_s", 1.0)
    # the stubborn follower sleeps 120 s: only the kill after the 1 s timeouts ends it early,
    # which the warning below records (no test times it)
    r = harness.run(load_config(TP), tmp_path / "job")
    assert r.status == "completed" and r.output_tokens > 0 and len(r.cycles) == 2
    assert any("follower rank 1" in w and "killed (SIGKILL)" in w and "measurement completed" in w
               for w in r.warnings), r.warnings
    assert _followers_alive() == []


@pytest.mark.slow
def test_failure_before_measuring_still_fails_the_job_and_stops_the_followers(tmp_path, monkeypatch):
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path))

    def broken_warm_up(*a, **k):
        raise RuntimeError("warm-up broke")

    monkeypatch.setattr("llem.measure.warmup.warm_up", broken_warm_up)
    r = execute_job(load_config(TP), tmp_path / "job", raise_errors=False)
    assert r.status == "failed" and r.error_type == "RuntimeError" and "warm-up broke" in r.error_message
    assert _followers_alive() == []
