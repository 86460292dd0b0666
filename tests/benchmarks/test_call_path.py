"""benchmarks/overhead/call_path.py runs on CPU and compares the three arms on one model object."""
import json

import pytest

from tests.conftest import load_benchmark


def _load():
    return load_benchmark("call_path")


def test_paired_difference_is_a_ratio_of_sums_with_a_round_bootstrap():
    mod = _load()
    rep = mod.paired([1.1, 2.2, 3.3], [1.0, 2.0, 3.0])
    assert rep["rel"] == pytest.approx(0.1) and rep["rounds"] == 3
    # every round is +10%, so every resample is too
    assert rep["ci95"] == pytest.approx([0.1, 0.1])
    assert mod.paired([1.0], [1.0])["ci95"] is None


@pytest.mark.slow
def test_call_path_reports_each_arm_against_bare(tmp_path):
    mod = _load()
    out = tmp_path / "cp.json"
    assert mod.main(["--rounds", "3", "--max-s", "0", "--batch", "2", "--output-len", "4", "--gc-stats",
                     "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    # --max-s 0 stops after the first round
    assert rep["rounds_done"] == 1 and rep["device"] == "cpu" and rep["sampler"] is None
    # --gc-stats: the collector's pauses charged to each arm's one call, by generation
    assert set(rep["gc"]) == set(rep["median_call_s"])
    for arm, g in rep["gc"].items():
        assert g["calls"] == 1 and len(g["pause_s_per_call"]) == 3 and len(rep["gc_pause_s_per_call"][arm]) == 1
        assert 0 <= g["pause_share_of_call_time"] < 1
    assert set(rep["paired_vs_bare"]) == {"llem", "bare_llem_kwargs"}
    assert set(rep["median_call_s"]) == {"llem", "bare", "bare_llem_kwargs"}
    assert all(v > 0 for v in rep["median_call_s"].values()) and rep["median_vs_bare"]["bare"] == 0
    # llem's kwargs fix the output length, as the bare arm's do
    assert rep["llem_generate_kwargs"]["min_new_tokens"] == rep["llem_generate_kwargs"]["max_new_tokens"] == "4"


@pytest.mark.slow
def test_call_path_sampler_needs_a_gpu():
    with pytest.raises(SystemExit, match="--sampler: llem's sampler cannot run here"):
        _load().main(["--rounds", "1", "--batch", "2", "--output-len", "4", "--sampler"])
    with pytest.raises(SystemExit, match="--sampler-arm: llem's sampler cannot run here"):
        _load().main(["--rounds", "1", "--batch", "2", "--output-len", "4", "--sampler-arm"])


@pytest.mark.slow
def test_call_path_sampler_arm_on_simulated_nvml(monkeypatch, tmp_path):
    """The fourth arm with the sampler on the simulated NVML (a test double: no GPU here); the
    call path itself runs on CPU."""
    from llem.devices import DeviceSet, resolve_devices
    from tests.devices.sim import gpu, use_sim

    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=100.0)])
    mod = _load()
    # the model runs on CPU, while the sampler reads the simulated GPU's NVML
    real = resolve_devices()
    monkeypatch.setattr(mod, "cpu_devices", lambda: DeviceSet(gpus=real.gpus, mapping={}))
    out = tmp_path / "cp.json"
    assert mod.main(["--rounds", "2", "--batch", "2", "--output-len", "4", "--sampler-arm", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert set(rep["paired_vs_bare"]) == {"llem", "bare_llem_kwargs", "llem_sampler"}
    assert rep["sampler"]["enabled"] and rep["sampler"]["rows"] >= 4 and not rep["sampler"]["errors"]
