"""benchmarks/call_path.py runs on CPU and compares the three arms on one model object."""
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_call_path_reports_each_arm_against_bare(tmp_path):
    spec = importlib.util.spec_from_file_location("call_path", REPO / "benchmarks" / "call_path.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "cp.json"
    assert mod.main(["--rounds", "2", "--batch", "2", "--output-len", "4", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert set(rep["median_call_s"]) == {"llem", "bare", "bare_llem_kwargs"}
    assert all(v > 0 for v in rep["median_call_s"].values()) and rep["median_vs_bare"]["bare"] == 0
    # llem's kwargs fix the output length, as the bare arm's do
    assert rep["llem_generate_kwargs"]["min_new_tokens"] == rep["llem_generate_kwargs"]["max_new_tokens"] == "4"
