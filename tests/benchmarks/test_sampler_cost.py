"""benchmarks/overhead/sampler_cost.py on the CPU, on llem's simulated NVML (a test double: no GPU here)."""
import json

import pytest

from benchmarks.overhead import sampler_cost
from tests.devices.sim import gpu, use_sim


def test_blocks_summary_takes_on_minus_off_per_block():
    # block 0: on 102 W / 10 units per s, off 100 W / 10 units per s; block 1: on 101 W, off 100 W, on 5% faster
    rows = [{"block": 0, "arm": a, "energy_j": e, "duration_s": 1.0, "units": u}
            for a, e, u in (("on", 102, 10), ("off", 100, 10), ("off", 100, 10), ("on", 102, 10))]
    rows += [{"block": 1, "arm": a, "energy_j": e, "duration_s": 1.0, "units": u}
             for a, e, u in (("on", 101, 21), ("off", 100, 20), ("off", 100, 20), ("on", 101, 21))]
    s = sampler_cost.blocks_summary(rows)
    assert s["power_on_minus_off_w"]["mean"] == pytest.approx(1.5)
    assert s["power_on_minus_off_w"]["blocks"] == 2
    assert s["units_per_s_on_vs_off"]["mean"] == pytest.approx(0.025)
    assert s["j_per_unit_on_vs_off"]["mean"] == pytest.approx((0.02 + (101 / 21) / 5 - 1) / 2)
    lo, hi = s["power_on_minus_off_w"]["ci95"]
    assert lo < 1.5 < hi
    assert s["power_off_w"] == pytest.approx(100.0)


def test_runs_every_load_on_the_simulated_counter(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=120.0)])
    out = tmp_path / "out"
    rc = sampler_cost.main(["--out", str(out), "--window-s", "0.1", "--blocks", "2", "--size", "256"])
    assert rc == 0
    rep = json.loads((out / "sampler_cost.json").read_text())
    assert set(rep["loads"]) == {"idle", "graph", "host"}
    for r in rep["loads"].values():
        assert [w["arm"] for w in r["windows"]] == ["on", "off", "off", "on"] * 2
        # every window closes on a counter step, so its energy is whole steps of a constant 120 W
        for w in r["windows"]:
            assert w["duration_s"] >= 0.1 and w["units"] >= 1
            assert w["power_w"] == pytest.approx(120.0, rel=0.1)
        assert r["power_on_minus_off_w"]["blocks"] == 2
        assert r["sampler_cpu_s_per_sample"] > 0 and r["sampler_errors"] == []
    assert "| idle |" in (out / "sampler_cost.md").read_text()


@pytest.mark.parametrize("argv, says", [(["--blocks", "0"], "--blocks: 0"), (["--loads", "gemm"], "'gemm'"),
                                        (["--window-s", "-1"], "--window-s: -1.0")])
def test_bad_arguments_exit_2_naming_the_field(argv, says, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        sampler_cost.main(["--out", str(tmp_path / "o"), *argv])
    assert e.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_without_a_gpu_it_refuses_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("LLEM_SIMULATED_NVML", raising=False)
    monkeypatch.setattr("llem.devices.nvml.nvml_module", lambda: (_ for _ in ()).throw(
        __import__("llem.devices.nvml", fromlist=["NvmlUnavailable"]).NvmlUnavailable("no NVML here")))
    assert sampler_cost.main(["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no NVML GPU to measure" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
