"""benchmarks/gpu_validation.py in its CPU mode (tiny model, no meters): the same code path the
lead runs on the H100, minus the meters."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cpu_mode_writes_json_and_markdown(tmp_path):
    out = tmp_path / "val"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_validation.py"), "--cpu", "--out", str(out),
                        "--batches", "2", "--cycles", "2", "--warmup", "1", "--min-window-s", "0.1"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    rep = json.loads((out / "validation.json").read_text())
    (b,) = rep["batches"]
    assert b["batch"] == 2
    assert all(c["output_tokens"] % (2 * 16) == 0 for c in b["llem"]["cycles"] + b["bare"]["cycles"])
    assert b["overhead"]["time_per_call_rel"] is not None
    # no meter on CPU: energy checks are "not evaluated" (None), never passed by default
    assert b["checks"]["llem_vs_zeus_within_1pct"] is None and b["llem"]["energy_j"] is None
    assert "reproduce: python benchmarks/gpu_validation.py --cpu" in p.stdout
    assert "| 2 |" in (out / "validation.md").read_text()
