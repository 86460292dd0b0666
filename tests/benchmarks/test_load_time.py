"""benchmarks/gpu_validation/load_time.py in its CPU mode (tiny model): the code path a GPU run takes."""
import json

import pytest

from tests.conftest import load_benchmark


@pytest.mark.slow
def test_cpu_mode_times_both_arms_and_writes_its_report(tmp_path, monkeypatch):
    out = tmp_path / "lt"
    monkeypatch.setattr("sys.argv", ["load_time.py", "--out", str(out), "--cpu", "--repeats", "1",
                                     "--target-ratio", "1000"])
    assert load_benchmark("load_time").main() == 0
    rep = json.loads((out / "load_time.json").read_text())
    assert rep["device"] == "cpu" and rep["model"] == "tiny"
    (bare,), (llem,) = rep["runs"]["bare"], rep["runs"]["llem"]
    assert bare["load_s"] > 0 and llem["load_s"] > 0 and bare["startup_s"] > 0 and llem["startup_s"] > 0
    assert {"tokenizer", "model"} <= set(llem["steps_s"])
    assert rep["ratio_load"] == pytest.approx(llem["load_s"] / bare["load_s"])
    assert "llem load / bare load" in (out / "load_time.md").read_text()
