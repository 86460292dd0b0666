"""benchmarks/gpu_validation/gpu_vllm.py in its CPU mode: the lead's GPU command must not fail on a typo."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.backends.test_vllm import REPO, vllm_env, vllm_python


@pytest.mark.slow
@pytest.mark.vllm
def test_gpu_vllm_script_cpu_mode_reuses_one_engine_and_writes_reports(tmp_path):
    py = vllm_python()
    out = tmp_path / "out"
    r = subprocess.run([str(py), str(REPO / "benchmarks" / "gpu_validation" / "gpu_vllm.py"), "--cpu", "--out", str(out),
                        "--batches", "1,2", "--cycles", "2", "--warmup", "0"],
                       cwd=REPO, env=vllm_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    rep = json.loads((out / "vllm_validation.json").read_text())
    assert [b["batch"] for b in rep["batches"]] == [1, 2]
    first, second = rep["batches"]
    assert first["llem"]["engine_reused"] is False and second["llem"]["engine_reused"] is True
    for b in rep["batches"]:
        assert b["llem"]["status"] == "completed" and b["llem"]["output_tokens_per_s"] > 0
        assert b["llem"]["ttft_ms"]["n"] == b["batch"] and b["llem"]["itl_ms"]["p50"] > 0
        assert b["bare"]["output_tokens"] == b["bare"]["calls"] * b["batch"] * 16
        assert b["vs_bare"]["throughput_ratio"] > 0
        assert b["llem"]["energy_per_output_token_j"] is None  # no meter on CPU: None, never 0
        assert (out / f"batch{b['batch']}" / "result.json").is_file()
    md = (out / "vllm_validation.md").read_text()
    assert "| 2 |" in md and "DELTA" in md
