"""The design card's example, for real on CPU: `llem run -m backend=vllm,pytorch batch=1,8`.

vLLM runs in its own venv (runner.vllm=auto finds it), PyTorch in this Python; both land in one
study with one manifest, measured by the same harness and written in the same schema.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llem.result import ExperimentResult
from tests.backends.test_vllm import vllm_python

FAST = ["measurement.cycles=2", "measurement.warmup_runs=0", "measurement.min_window_s=0", "dataset.num_prompts=2", "output_len=4", "energy=none"]


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_and_pytorch_grid_gives_four_comparable_jobs(llem_cli, tmp_path):
    venv = vllm_python().parent.parent
    # share_engine: the two vLLM jobs run in one process on one engine (the PyTorch jobs each in
    # their own, as without it); everything below holds either way. vllm.enforce_eager: the vLLM
    # jobs skip compilation (a faster engine start); it is left out of the PyTorch jobs
    r = llem_cli(["run", "-m", "backend=vllm,pytorch", "batch=1,8", "hydra.launcher.share_engine=true",
                  "vllm.enforce_eager=true", *FAST],
                 cwd=tmp_path,
                 env={"LLEM_VENV_VLLM": str(venv), "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")},
                 timeout=1200)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    manifests = list(Path(tmp_path, "multirun").rglob("manifest.json"))
    assert len(manifests) == 1
    m = json.loads(manifests[0].read_text())
    jobs = m["jobs"]
    assert sorted((j["backend"], j["batch"]) for j in jobs) == [("pytorch", 1), ("pytorch", 8), ("vllm", 1), ("vllm", 8)]
    assert all(j["status"] == "completed" for j in jobs), [(j["job_id"], j["error_message"]) for j in jobs]
    assert {(j["backend"], "vllm.enforce_eager=true" in j["overrides"], tuple(j["omitted_overrides"])) for j in jobs} \
        == {("vllm", True, ()), ("pytorch", False, ("vllm.enforce_eager=true",))}

    results = {(j["backend"], j["batch"]): ExperimentResult.load(manifests[0].parent / j["result_path"]) for j in jobs}
    for (backend, batch), res in results.items():
        assert res.status == "completed" and res.backend == backend and res.batch == batch
        assert (res.config.get("vllm") or {}).get("enforce_eager") is (True if backend == "vllm" else None)
        # measured the same way: every generate call of every window (one batch of `batch` prompts, the
        # 2 prompts rounded up to whole batches) yields exactly 4 tokens per prompt, counted from what
        # the backend returned
        calls = sum(c.calls for c in res.cycles)
        assert len(res.cycles) == 2 and calls >= 2
        assert res.output_tokens == calls * batch * 4
        assert res.input_tokens == calls * batch * res.config["dataset"]["input_len"]
        assert res.output_tokens_per_s and res.output_tokens_per_s > 0
        lat = res.latency
        assert lat is not None and lat.calls >= 1 and lat.ttft_ms.n == lat.calls * batch
        assert lat.itl_ms.n == lat.calls * batch * 3
        assert res.phases is not None and res.phases.prefill.tokens is not None
        assert res.energy.measured is False and res.energy.energy_per_output_token_j is None
    vllm_res, pt_res = results[("vllm", 8)], results[("pytorch", 8)]
    assert vllm_res.backend_version and pt_res.backend_version
    # comparable fields: the same schema, the same protocol keys, the same phase method
    assert set(vllm_res.model_dump()) == set(pt_res.model_dump())
    assert set(vllm_res.measurement_methodology) == set(pt_res.measurement_methodology)
    assert vllm_res.phases.method.split(":")[0] == pt_res.phases.method.split(":")[0]
    assert vllm_res.measurement_methodology["backend"]["batching"] == "static"
    assert vllm_res.extra.get("runner", {}).get("name") == "venv"  # vLLM really ran in its own venv
    # the vLLM jobs shared one engine, started by the first: recorded in each result, in order
    shared = [results[("vllm", b)].measurement_methodology["backend"]["engine_sharing"] for b in (1, 8)]
    ids = [j["job_id"] for j in sorted(jobs, key=lambda j: j["job_id"]) if j["backend"] == "vllm"]
    assert [s["jobs"] for s in shared] == [ids, ids] and [s["position"] for s in shared] == [0, 1]
    assert [s["engine_reused"] for s in shared] == [False, True] and all(s["max_num_seqs"] == 8 for s in shared)
    assert results[("vllm", 8)].load_time_s < results[("vllm", 1)].load_time_s
    assert "engine_sharing" not in pt_res.measurement_methodology["backend"]
    # each job kept its own log
    logs = {j["job_id"]: (manifests[0].parent / j["job_id"] / "job.log").read_text() for j in jobs}
    assert all(text.startswith(f"== llem job {int(jid)}:") for jid, text in logs.items())

