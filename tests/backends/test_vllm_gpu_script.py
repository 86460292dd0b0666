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
                        "--batches", "1,2", "--cycles", "4", "--warmup", "0"],
                       cwd=REPO, env=vllm_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    rep = json.loads((out / "vllm_validation.json").read_text())
    assert [b["batch"] for b in rep["batches"]] == [1, 2]
    first, second = rep["batches"]
    assert first["llem"]["engine_reused"] is False and second["llem"]["engine_reused"] is True
    for b in rep["batches"]:
        assert b["llem"]["status"] == "completed" and b["llem"]["output_tokens_per_s"] > 0
        assert b["llem"]["ttft_ms"]["n"] == b["batch"] and b["llem"]["itl_ms"]["p50"] > 0
        # interleaved: two bare windows per block, each with as many calls as its llem window
        llem_calls = b["llem"]["calls_per_window"]
        assert [c["calls"] for c in b["bare"]["cycles"]] == [llem_calls[0]] * 2 + [llem_calls[2]] * 2
        assert all(c["output_tokens"] == c["calls"] * b["batch"] * 16 for c in b["bare"]["cycles"])
        assert b["abba"]["blocks"] == 2 and b["vs_bare"]["throughput_ratio"] > 0
        lo, hi = b["abba"]["throughput_ratio_ci95"]
        assert lo <= b["abba"]["throughput_ratio"] and (hi is None or b["abba"]["throughput_ratio"] <= hi)
        assert b["llem"]["energy_per_output_token_j"] is None  # no meter on CPU: None, never 0
        assert (out / f"batch{b['batch']}" / "result.json").is_file()
    md = (out / "vllm_validation.md").read_text()
    assert "| 2 |" in md and "DELTA" in md
