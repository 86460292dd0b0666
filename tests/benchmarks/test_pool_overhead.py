"""benchmarks/overhead/pool_overhead.py pools ABBA blocks of runs of one workload, and refuses others."""
import json
from pathlib import Path

import pytest

from tests.conftest import load_benchmark


def _load():
    return load_benchmark("pool_overhead")


def _run(tmp_path, name, blocks_by_batch, uuid="GPU-a", boot_id=None, caches=None, llem_result=None, **args):
    base = {"model": "llama-3.2-1b", "precision": "bf16", "input_len": 128, "output_len": 128,
            "static_cache": True, "bare_model": "shared", "override": [], "no_observers": True}
    rep = {"args": {**base, **args}, "commit": "abc", "command": "python benchmarks/gpu_validation/gpu_validation.py",
           "idle_baseline": {"power_w": {uuid: 72.0}},
           **({"machine": {"node": "vm", "boot_id": boot_id}} if boot_id else {}),
           "batches": [{"batch": b, "overhead": {
               "blocks": len(t), "time_per_call_rel": sum(t) / len(t), "time_per_call_ci95": None,
               "energy_per_output_token_rel": sum(e) / len(e), "energy_per_output_token_ci95": None,
               "time_per_call_rel_per_block": t, "energy_per_output_token_rel_per_block": e,
               **({"static_cache": caches} if caches else {})}}
               for b, (t, e) in blocks_by_batch.items()]}
    d = tmp_path / name
    d.mkdir()
    (d / "validation.json").write_text(json.dumps(rep))
    if llem_result is not None:  # llem's own result.json beside it, as gpu_validation.py writes it
        (d / "batch1").mkdir()
        (d / "batch1" / "result.json").write_text(json.dumps({"config": {"pytorch": llem_result}}))
    return str(d)


def test_blocks_of_every_run_pool_per_batch(tmp_path):
    mod = _load()
    a = _run(tmp_path, "a", {128: ([0.02, 0.0], [0.0001, 0.0003])}, uuid="GPU-a")
    b = _run(tmp_path, "b", {128: ([0.01, -0.01, 0.0], [0.0, 0.0002, 0.0004]), 8: ([0.5, 0.6, 0.7], [0.02, 0.03, 0.04])},
             uuid="GPU-b")
    out = tmp_path / "pooled"
    assert mod.main([a, b, "--out", str(out)]) == 0
    rep = json.loads((out / "pooled.json").read_text())
    by = {x["batch"]: x for x in rep["batches"]}
    t128 = by[128]["time_per_call"]
    assert t128["blocks"] == 5 and t128["mean"] == pytest.approx(0.02 / 5)
    assert t128["ci95"][0] <= t128["mean"] <= t128["ci95"][1]
    # runs without a recorded machine ran on one-GPU machines: the GPU names the machine
    assert by[128]["gpus"] == by[128]["machines"] == ["GPU-a", "GPU-b"] and by[128]["runs"] == 2
    # energy: every block far under +1%, so even two runs' random-effects CI (t on 1 df) is too
    assert by[128]["energy_per_output_token"]["verdict"].startswith("shown")
    # batch 8 only in run b: +50% to +70% blocks exceed the limit outright
    assert by[8]["runs"] == 1 and by[8]["time_per_call"]["verdict"].startswith("exceeded")
    # the CI is the widest envelope of the bootstrap, the t interval and (two runs or more) the
    # fixed- and random-effects estimates over runs
    for m in (t128, by[8]["time_per_call"]):
        cis = [m["ci95_bootstrap"], m["ci95_t"]] + [m[k]["ci95"] for k in ("fixed_effect", "random_effects") if m[k]]
        assert m["ci95"] == [min(c[0] for c in cis), max(c[1] for c in cis)]
    assert by[8]["time_per_call"]["fixed_effect"] is None and by[8]["time_per_call"]["random_effects"] is None
    assert "| 128 | 2 | 2 | 2 | 5 |" in (out / "pooled.md").read_text()


def test_gpus_of_one_machine_count_as_one_machine(tmp_path):
    mod = _load()
    runs = [_run(tmp_path, f"g{i}", {1: ([0.01, -0.01], [0.0, 0.001])}, uuid=f"GPU-{i}", boot_id="boot-x")
            for i in range(3)]
    rep = mod.pool([mod.load(r) for r in runs])
    b1 = rep["batches"][0]
    assert b1["gpus"] == ["GPU-0", "GPU-1", "GPU-2"] and b1["machines"] == ["boot-x"]
    assert {r["machine"] for r in rep["runs"]} == {"boot-x"}
    assert "| 1 | 3 | 3 | 1 | 6 |" in mod.markdown(rep)


def test_fixed_effect_trusts_the_quiet_run():
    import numpy as np

    fe = _load().fixed_effect([np.array([0.010, 0.011, 0.009]), np.array([-0.05, 0.05, 0.0])])
    # run 1's blocks vary 0.1%, run 2's 5%: the weighted mean sits at run 1's +1.0%
    assert fe["mean"] == pytest.approx(0.01, abs=1e-4) and fe["runs"] == 2 and fe["q_df"] == 1
    assert fe["ci95"][0] < fe["mean"] < fe["ci95"][1]


def test_random_effects_counts_runs_not_blocks():
    import numpy as np

    from llem.measure.stats import t_quantile

    mod = _load()
    # four runs whose blocks agree to 0.01% but whose means lie 1-2% apart: the blocks understate
    # how far another run lands, so the spread of the runs sets the interval
    means = [0.0, 0.02, -0.01, 0.03]
    arrs = [np.array([m - 1e-4, m, m + 1e-4]) for m in means]
    re, fe = mod.random_effects(arrs), mod.fixed_effect(arrs)
    assert re["runs"] == 4 and re["q_df"] == 3 and re["i2"] > 0.99 and re["tau"] > 0.01
    # tau dominates every run's own variance, so the runs count alike
    assert re["mean"] == pytest.approx(np.mean(means), abs=1e-5)
    half = (re["ci95"][1] - re["ci95"][0]) / 2
    assert half == pytest.approx(t_quantile(0.975, 3) * np.std(means, ddof=1) / 2, rel=1e-3)
    assert half > 100 * (fe["ci95"][1] - fe["ci95"][0]) / 2
    # simulated pools of runs that agree almost never reach a Q this large
    assert mod.agreeing_runs(arrs, re["q"], sims=200)["share_with_q_at_least_observed"] < 0.01
    # runs that agree within their noise: no between-run variance, the fixed-effect mean, and an
    # interval on runs - 1 df, no narrower than the fixed effect's
    calm = [np.array([0.01, -0.01, 0.0, 0.005]), np.array([0.0, 0.01, -0.005, 0.002])]
    re, fe = mod.random_effects(calm), mod.fixed_effect(calm)
    assert re["tau"] == 0 and re["i2"] == 0 and re["mean"] == pytest.approx(fe["mean"])
    assert re["ci95"][0] <= fe["ci95"][0] and re["ci95"][1] >= fe["ci95"][1]
    agree = mod.agreeing_runs(calm, re["q"], sims=200)
    assert agree["simulated_pools"] == 200 and agree["share_with_q_at_least_observed"] > 0.2
    assert mod.random_effects([np.array([0.0, 0.01])]) is None


def test_runs_of_another_configuration_are_refused(tmp_path, capsys):
    mod = _load()
    a = _run(tmp_path, "a", {8: ([0.0, 0.0], [0.0, 0.0])})
    b = _run(tmp_path, "b", {8: ([0.0, 0.0], [0.0, 0.0])}, override=["energy.sample_interval_s=null"])
    assert mod.main([a, b, "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "override=['energy.sample_interval_s=null']" in err and "only runs of the same workload" in err
    assert not (tmp_path / "p").exists()
    assert mod.main([str(tmp_path / "missing")]) == 2
    assert "no validation.json there" in capsys.readouterr().err


def test_runs_whose_bare_arm_had_other_inputs_pool_apart(tmp_path, capsys):
    mod = _load()
    old = _run(tmp_path, "old", {1: ([0.0, 0.0], [0.0, 0.0])})  # from before --bare-inputs: random ids
    rnd = _run(tmp_path, "rnd", {1: ([0.0, 0.0], [0.0, 0.0])}, bare_inputs="random")
    same = _run(tmp_path, "same", {1: ([0.0, 0.0], [0.0, 0.0])}, bare_inputs="llem")
    assert mod.main([old, rnd, "--out", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "pooled.json").read_text())["workload"]["bare_inputs"] == "random"
    capsys.readouterr()
    assert mod.main([old, same, "--out", str(tmp_path / "q")]) == 2
    assert "bare_inputs='llem' in" in capsys.readouterr().err and not (tmp_path / "q").exists()


def test_a_run_from_before_switch_warmup_existed_pools_as_zero_rounds(tmp_path, capsys):
    mod = _load()
    old = _run(tmp_path, "old", {1: ([0.0, 0.0], [0.0, 0.0])})  # its args have no switch_warmup
    new = _run(tmp_path, "new", {1: ([0.0, 0.0], [0.0, 0.0])}, switch_warmup=0)
    two = _run(tmp_path, "two", {1: ([0.0, 0.0], [0.0, 0.0])}, switch_warmup=2)
    assert mod.main([old, new, "--out", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "pooled.json").read_text())["workload"]["switch_warmup"] == 0
    capsys.readouterr()
    assert mod.main([old, two, "--out", str(tmp_path / "q")]) == 2
    assert "switch_warmup=2 in" in capsys.readouterr().err and not (tmp_path / "q").exists()


def test_a_machine_that_shifts_all_its_runs_counts_once():
    mod = _load()
    # five runs on each of two machines; machine b's runs all sit 2% above machine a's
    a = [[0.000 + d, 0.002 + d, -0.002 + d] for d in (0.0, 0.001, -0.001, 0.0005, -0.0005)]
    b = [[0.020 + d, 0.022 + d, 0.018 + d] for d in (0.0, 0.001, -0.001, 0.0005, -0.0005)]
    m = mod.pooled(a + b, ["a"] * 5 + ["b"] * 5)
    runs, machines = m["random_effects"], m["by_machine"]
    assert runs["runs"] == 10 and machines["machines"] == 2
    assert [(x["machine"], round(x["mean"], 6)) for x in machines["per_machine"]] == [("a", 0.0), ("b", 0.02)]
    # ten runs give 9 df; two machines give 1 df, so the machine-level CI is much the wider
    width = lambda x: x["ci95"][1] - x["ci95"][0]  # noqa: E731
    assert width(machines) > 5 * width(runs)
    assert m["ci95"] == [min(machines["ci95"][0], runs["ci95"][0], m["ci95_t"][0], m["ci95_bootstrap"][0]),
                         max(machines["ci95"][1], runs["ci95"][1], m["ci95_t"][1], m["ci95_bootstrap"][1])]
    # without machine names every run is its own machine: the two estimates agree
    alone = mod.pooled(a + b)
    assert alone["by_machine"]["ci95"] == pytest.approx(alone["random_effects"]["ci95"])


def test_blocks_are_also_pooled_by_their_position_in_each_run(tmp_path):
    mod = _load()
    # every run's first block slow (a start-up transient in the llem arm), the rest level
    runs = [_run(tmp_path, f"p{i}", {1: ([0.05 + d, d, -d], [0.02, 0.0, 0.001])}, uuid=f"GPU-{i}")
            for i, d in enumerate((0.0, 0.01, -0.01))] + [_run(tmp_path, "short", {1: ([0.04], [0.01])}, uuid="GPU-s")]
    rep = mod.pool([mod.load(r) for r in runs])
    pos = rep["batches"][0]["by_block_position"]
    t, e = pos["time_per_call"], pos["energy_per_output_token"]
    assert [x["block"] for x in t] == [1, 2, 3] and [x["runs"] for x in t] == [4, 3, 3]
    assert t[0]["mean"] == pytest.approx((0.05 + 0.06 + 0.04 + 0.04) / 4) and t[1]["mean"] == pytest.approx(0.0)
    assert t[1]["se"] == pytest.approx(0.01 / 3 ** 0.5)
    assert e[0]["mean"] == pytest.approx(0.0175) and e[2]["mean"] == pytest.approx(0.001) and e[2]["se"] == 0.0
    assert "block 1 (4 runs) +4.75% ± " in mod.markdown(rep)


def test_windows_are_also_pooled_by_their_position_in_each_run(tmp_path):
    mod = _load()

    def win(d):
        return {"duration_s": d, "calls": 10, "output_tokens": 10, "energy_j": None}

    paths = []
    for k, f in enumerate((1.0, 1.1, 0.9)):
        # in every run llem's second window (the first after a bare call) is 5% slow
        llem = [win(f), win(1.05 * f)] + [win(f)] * 2
        d = _run(tmp_path, f"r{k}", {1: ([0.0, 0.0], [0.0, 0.0])})
        rep = json.loads((Path(d) / "validation.json").read_text())
        rep["batches"][0].update(llem={"cycles": llem}, bare={"cycles": [win(f)] * 4})
        (Path(d) / "validation.json").write_text(json.dumps(rep))
        paths.append(d)
    assert mod.main([*paths, "--out", str(tmp_path / "p")]) == 0
    (b,) = json.loads((tmp_path / "p" / "pooled.json").read_text())["batches"]
    pos = b["time_per_call_by_window_position"]
    assert [w["window"] for w in pos] == ["llem 1", "bare 1", "bare 2", "llem 2", "llem 3", "bare 3", "bare 4", "llem 4"]
    assert pos[3]["mean"] == pytest.approx(0.05) and pos[3]["runs"] == 3
    assert all(w["mean"] == pytest.approx(0.0) for i, w in enumerate(pos) if i != 3)
    assert "llem 2 +5.00% ± 0.00%" in (tmp_path / "p" / "pooled.md").read_text()
    # runs written without per-window figures (older validation.json files) give None, not an error
    assert mod.by_window_position([{"overhead": {}}]) is None


def test_runs_whose_arms_reused_a_static_cache_pool_only_with_their_like(tmp_path, capsys):
    """Reusing one StaticCache and letting transformers build one per call differ by a few per
    cent at batch 1; runs from before --bare-cache (no record) count as both arms per call,
    unless llem's result.json says it reused its cache."""
    mod = _load()
    blocks = {1: ([0.0, 0.0], [0.0, 0.0])}
    old = _run(tmp_path, "old", blocks)
    old_llem_reuse = _run(tmp_path, "u", blocks, llem_result={"cache_implementation": "static",
                                                              "reuse_static_cache": True})
    both_per_call = _run(tmp_path, "pc", blocks, caches={"llem": "per-call", "bare": "per-call"})
    both_reuse = _run(tmp_path, "r", blocks, caches={"llem": "reuse", "bare": "reuse"})
    assert mod.main([old, both_per_call, "--out", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "pooled.json").read_text())["workload"]["static_caches"] == {
        "llem": "per-call", "bare": "per-call"}
    for other in (old_llem_reuse, both_reuse):
        capsys.readouterr()
        assert mod.main([old, other, "--out", str(tmp_path / "q")]) == 2
        assert "static caches" in capsys.readouterr().err and not (tmp_path / "q").exists()


def test_a_file_that_is_not_a_validation_json_is_refused_in_one_line(tmp_path, capsys):
    log = tmp_path / "b1-r0.log"
    log.write_text("batch 1: llem, 8 windows\n")
    assert _load().main([str(log)]) == 2
    err = capsys.readouterr().err
    assert "b1-r0.log" in err and "not a gpu_validation.py validation.json" in err and "Traceback" not in err


def test_runs_with_windows_of_another_length_are_refused(tmp_path, capsys):
    # llem's per-window costs spread over 2 calls in one and over 13 in the other
    mod = _load()
    five_s = _run(tmp_path, "five_s", {1: ([0.0, 0.0], [0.0, 0.0])}, quantisation_target=0.02, min_window_s=0.0)
    again = _run(tmp_path, "again", {1: ([0.0, 0.0], [0.0, 0.0])}, quantisation_target=0.02, min_window_s=0.0)
    short = _run(tmp_path, "short", {1: ([0.0, 0.0], [0.0, 0.0])}, quantisation_target=0.2, min_window_s=0.0)
    assert mod.main([five_s, again, "--out", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "pooled.json").read_text())["workload"]["quantisation_target"] == 0.02
    capsys.readouterr()
    assert mod.main([five_s, short, "--out", str(tmp_path / "q")]) == 2
    assert "quantisation_target=0.2 in" in capsys.readouterr().err and not (tmp_path / "q").exists()


def test_mean_power_of_the_arms_is_pooled_and_split_by_place_in_the_block(tmp_path):
    mod = _load()

    def win(w, d=1.0):
        return {"duration_s": d, "calls": 2, "output_tokens": 256, "energy_j": w * d}

    paths = []
    for k, boot in enumerate(("m1", "m1", "m2")):
        # llem's windows draw 1% more power at the same speed; the bare arm's second window is the lowest
        llem = [win(202.0), win(202.0)] * 3
        bare = [x for j in range(3) for x in (win(199.9 + 0.1 * j), win(199.0))]  # mean 199.5, some spread
        d = _run(tmp_path, f"r{k}", {1: ([0.0] * 3, [0.01] * 3)}, boot_id=boot)
        rep = json.loads((Path(d) / "validation.json").read_text())
        rep["batches"][0].update(llem={"cycles": llem}, bare={"cycles": bare})
        (Path(d) / "validation.json").write_text(json.dumps(rep))
        paths.append(d)
    assert mod.main([*paths, "--out", str(tmp_path / "p")]) == 0
    (b,) = json.loads((tmp_path / "p" / "pooled.json").read_text())["batches"]
    assert b["mean_power"]["mean"] == pytest.approx(202.0 / 199.5 - 1, rel=1e-4)  # a mean of per-block ratios
    assert b["mean_power"]["by_machine"]["machines"] == 2 and "verdict" not in b["mean_power"]
    place = {w["window"]: w for w in b["by_position_in_block"]["mean_power"]}
    assert place["bare 2"]["blocks"] == 9 and place["bare 2"]["mean"] < place["bare 1"]["mean"] < 0
    assert place["llem 1"]["mean"] == pytest.approx(place["llem 2"]["mean"]) and place["llem 1"]["mean"] > 0.005
    assert all(w["mean"] == pytest.approx(0.0) for w in b["by_position_in_block"]["time_per_call"])
    assert "Mean power of llem's windows" in (tmp_path / "p" / "pooled.md").read_text()
    # without energies per window (runs with no counter) there is nothing to pool
    assert mod.power_rel_per_block({"llem": {"cycles": [{"energy_j": None}] * 2},
                                    "bare": {"cycles": [{"energy_j": None}] * 2}}) == []


def test_a_pool_read_several_times_is_also_judged_at_the_bonferroni_level(tmp_path, capsys):
    import numpy as np

    mod = _load()
    rng = np.random.default_rng(3)
    # energy blocks around +0.4% with 2% scatter over 8 runs: shown at 95%, not at 99%
    energy = [list(rng.normal(0.004, 0.02, 36)) for _ in range(8)]
    time = [list(rng.normal(0.0, 0.01, 36)) for _ in range(8)]
    runs = [_run(tmp_path, f"r{i}", {1: (t, e)}, uuid=f"GPU-{i}") for i, (t, e) in enumerate(zip(time, energy))]
    one = mod.pool([mod.load(r) for r in runs])["batches"][0]
    five = mod.pool([mod.load(r) for r in runs], looks=5)["batches"][0]
    assert "sequential" not in one["energy_per_output_token"]
    e = five["energy_per_output_token"]
    seq = e["sequential"]
    assert seq["looks"] == 5 and seq["level"] == pytest.approx(0.99)
    # the 95% reading is unchanged by --looks, and the stricter one holds it
    assert e["ci95"] == one["energy_per_output_token"]["ci95"]
    assert seq["ci"][0] < e["ci95"][0] and seq["ci"][1] > e["ci95"][1]
    assert e["verdict"].startswith("shown") and seq["verdict"].startswith("not resolved")
    assert "99.00% CI (Bonferroni over 5 readings)" in seq["verdict"]
    out = tmp_path / "p"
    assert mod.main(runs + ["--looks", "5", "--out", str(out)]) == 0
    md = (out / "pooled.md").read_text()
    assert " --looks 5`" in md.splitlines()[2] and "| 1 | J/token | 99.00% |" in md
    assert json.loads((out / "pooled.json").read_text())["looks"] == 5
    capsys.readouterr()
    for bad in ("0", "-2", "two"):
        with pytest.raises(SystemExit) as err:
            mod.main(runs + ["--looks", bad])
        assert err.value.code == 2
        assert f"--looks: {bad!r} is not a whole number >= 1" in capsys.readouterr().err
