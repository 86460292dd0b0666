import json

from tests.conftest import run_llem
from tests.devices.sim import UUIDS, gpu, use_sim


def test_config_json_with_simulated_gpus(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_limit_w=600, default_power_limit_w=700),
                                    gpu(1, supports_energy_counter=False)])
    p = run_llem(["config", "--json"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert [g["uuid"] for g in rep["gpus"]] == UUIDS[:2]
    g0, g1 = rep["gpus"]
    assert (g0["power_limit_w"], g0["default_power_limit_w"], g0["energy_counter"]) == (600.0, 700.0, True)
    assert g1["energy_counter"] is False and g0["memory_total_mib"] > 0
    assert rep["simulated_nvml"] is True
    # GPU 1 lacks the counter, so the counter meter is unavailable and auto takes integrated power
    assert rep["meters"]["nvml"]["available"] is False
    assert rep["auto_meter"] == "nvml_power"
    assert rep["llem"] and rep["python"] and "torch" in rep["backends"]
    assert set(rep["slurm"]) >= {"sbatch", "in_job"} and "client" in rep["docker"]


def test_config_text_without_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("LLEM_SIMULATED_NVML", raising=False)
    p = run_llem(["config"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "GPUs: none" in p.stdout
    assert "energy=auto: auto picks" in p.stdout
    assert "meter zeus: unavailable: no GPU visible" in p.stdout


def test_config_bad_argument(tmp_path):
    p = run_llem(["config", "--jsn"], cwd=tmp_path)
    assert p.returncode == 2 and "--jsn" in p.stderr and "--json" in p.stderr
