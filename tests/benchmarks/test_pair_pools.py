"""benchmarks/overhead/pair_pools.py pairs two pools of pool_overhead.py by machine."""
import json
from pathlib import Path

import pytest

from tests.conftest import load_benchmark
from tests.benchmarks.test_pool_overhead import _run


def _pool(tmp_path, name, excess_by_machine):
    """A real pool_overhead.py pool of one batch-1 run per machine, llem's windows drawing the given
    excess power over the bare windows at the same speed."""
    pool_overhead = load_benchmark("pool_overhead")

    def win(w):
        return {"duration_s": 1.0, "calls": 2, "output_tokens": 256, "energy_j": w}

    runs = []
    for boot, excess in excess_by_machine.items():
        spread = [-0.001, 0.0, 0.001]  # blocks that agree exactly carry no variance and are left out
        d = _run(tmp_path, f"{name}-{boot}", {1: (spread, [excess + s for s in spread])}, boot_id=boot)
        rep = json.loads((Path(d) / "validation.json").read_text())
        bare = [win(200.0 + 0.1 * j) for j in range(6)]  # some spread, so no interval is degenerate
        rep["batches"][0].update(llem={"cycles": [win(200.0 * (1 + excess))] * 6}, bare={"cycles": bare})
        (Path(d) / "validation.json").write_text(json.dumps(rep))
        runs.append(d)
    out = tmp_path / name
    assert pool_overhead.main([*runs, "--out", str(out)]) == 0
    return str(out)


def test_pairing_removes_what_each_machine_adds_to_both_configurations(tmp_path, capsys):
    mod = load_benchmark("pair_pools")
    # each machine has its own offset (-1% to +2%); configuration A adds 0.5% on every machine
    offsets = {"m1": -0.01, "m2": 0.0, "m3": 0.02}
    a = _pool(tmp_path, "a", {m: o + 0.005 for m, o in offsets.items()})
    b = _pool(tmp_path, "b", {**offsets, "m4": 0.03})  # m4 only in B: not paired
    capsys.readouterr()  # pool_overhead.py's own report
    assert mod.main([a, b]) == 0
    res = mod.pair(json.loads(Path(a, "pooled.json").read_text()), json.loads(Path(b, "pooled.json").read_text()), 1, 0.95)
    p = res["mean_power"]
    assert p["machines"] == ["m1", "m2", "m3"]
    assert all(r["machines"] == p["machines"] for r in res.values())  # one column a machine in the table
    assert p["mean"] == pytest.approx(0.005, abs=2e-4)
    # the offsets spread the machines over 3 points, yet the paired interval stays tight
    assert p["ci"][1] - p["ci"][0] < 0.002 and p["ci"][0] <= p["mean"] <= p["ci"][1]
    out = capsys.readouterr().out
    assert "| mean power |" in out and "| J/token |" in out and "| time/call |" in out
    assert "| metric | m1 | m2 | m3 | mean [CI] |" in out


def test_too_few_shared_machines_a_missing_batch_or_a_bad_file_exit_2(tmp_path, capsys):
    mod = load_benchmark("pair_pools")
    a = _pool(tmp_path, "a", {"m1": 0.01, "m2": 0.0})
    b = _pool(tmp_path, "b", {"m1": 0.0, "m3": 0.0})
    assert mod.main([a, b]) == 2
    assert "1 machine(s) in both pools: pairing needs at least 2" in capsys.readouterr().err
    assert mod.main([a, a, "--batch", "8"]) == 2
    assert "--batch 8: not pooled in both" in capsys.readouterr().err
    assert mod.main([str(tmp_path / "nowhere"), a]) == 2
    assert "nowhere: not a pool_overhead.py folder" in capsys.readouterr().err
    assert mod.main([a, a, "--level", "95"]) == 2
    assert "--level 95.0: expected a confidence level" in capsys.readouterr().err
