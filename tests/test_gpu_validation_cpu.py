"""benchmarks/gpu_validation.py in its CPU mode (tiny model, no meters): the same code path the
lead runs on the H100, minus the meters."""
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_validation", REPO / "benchmarks" / "gpu_validation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_cpu_mode_writes_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "val"
    argv = ["--cpu", "--out", str(out), "--batches", "2", "--cycles", "2", "--warmup", "1", "--min-window-s", "0.05"]
    assert _load().main(argv) == 0
    rep = json.loads((out / "validation.json").read_text())
    (b,) = rep["batches"]
    assert b["batch"] == 2 and len(b["bare"]["cycles"]) == 2 and len(b["llem"]["cycles"]) == 2
    # every window holds whole calls of 2 prompts x 16 new tokens, in both arms
    assert all(c["output_tokens"] == c["calls"] * 2 * 16 for c in b["llem"]["cycles"] + b["bare"]["cycles"])
    assert b["overhead"]["time_per_call_rel"] is not None and "bare (1 windows), llem (2)" in b["overhead"]["order"]
    # no meter on CPU: energy checks are "not evaluated" (None), never passed by default
    assert b["checks"]["llem_vs_zeus_within_1pct"] is None and b["llem"]["energy_j"] is None
    assert "reproduce: python benchmarks/gpu_validation.py --cpu" in capsys.readouterr().out
    assert "| 2 |" in (out / "validation.md").read_text()
