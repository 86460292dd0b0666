"""``llem run`` as a user types it: measured energy with the simulated NVML (a test double
for a GPU's counters), and an honest "not measured" without a meter."""
import json
from pathlib import Path

import pytest

from tests.conftest import FAST, run_llem
from tests.devices.sim import gpu, use_sim

pytestmark = pytest.mark.slow


def _result(cwd: Path) -> dict:
    paths = sorted(cwd.glob("outputs/*/*/result.json"))
    assert len(paths) == 1
    return json.loads(paths[0].read_text())


def test_run_with_simulated_nvml_measures_energy(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=150.0, counter_period_ms=20)])
    p = run_llem(["run", *FAST, "energy=nvml", "energy.baseline.duration_s=0.1",
                  f"energy.baseline.cache_dir={tmp_path / 'cache'}", "measurement.quantisation_target=0.1"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    r = _result(tmp_path)
    e = r["energy"]
    assert e["measured"] is True and e["meter"] == "nvml" and e["estimated"] is False
    assert e["energy_j"] > 0 and e["energy_adjusted_j"] is not None and e["baseline_power_w"] > 0
    assert e["energy_per_output_token_j"] == pytest.approx(e["energy_j"] / r["output_tokens"])
    assert r["measurement_methodology"]["window"]["counter_update_period_s"] > 0
    assert r["environment"]["gpus"][0]["uuid"] == e["per_device"][0]["uuid"]
    assert (Path(p.stdout.split("result: ")[-1].strip()).parent / "timeseries.parquet").is_file()
    assert "J raw" in p.stdout and "baseline-adjusted" in p.stdout


def test_run_without_meter_is_not_measured_with_reason(monkeypatch, tmp_path):
    monkeypatch.delenv("LLEM_SIMULATED_NVML", raising=False)
    p = run_llem(["run", *FAST, "energy=nvml"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    e = _result(tmp_path)["energy"]
    assert e["measured"] is False and "NVML" in e["not_measured_reason"]
    assert e["energy_j"] is None and e["energy_per_output_token_j"] is None
    assert "energy: not measured" in p.stdout
