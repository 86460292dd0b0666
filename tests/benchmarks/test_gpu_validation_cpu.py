"""benchmarks/gpu_validation/gpu_validation.py in its CPU mode (tiny model, no meters): the same code path the
lead runs on the H100, minus the meters."""
import json

import pytest

from tests.conftest import load_benchmark


def _load():
    return load_benchmark("gpu_validation")


@pytest.mark.slow
def test_cpu_mode_writes_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "val"
    argv = ["--cpu", "--out", str(out), "--batches", "2", "--cycles", "4", "--warmup", "1", "--min-window-s", "0.05"]
    assert _load().main(argv) == 0
    rep = json.loads((out / "validation.json").read_text())
    (b,) = rep["batches"]
    # the machine is recorded so that pool_overhead.py can tell runs on GPUs of one host apart
    assert rep["machine"]["boot_id"] == open("/proc/sys/kernel/random/boot_id").read().strip()
    assert rep["machine"]["cpus"] >= 1 and rep["machine"]["cpu"]
    assert b["batch"] == 2 and len(b["bare"]["cycles"]) == 4 and len(b["llem"]["cycles"]) == 4
    # every window holds whole calls of 2 prompts x 16 new tokens, in both arms
    assert all(c["output_tokens"] == c["calls"] * 2 * 16 for c in b["llem"]["cycles"] + b["bare"]["cycles"])
    # ABBA: each bare window makes as many calls as the llem window its block opened with
    calls = b["overhead"]["calls_per_window"]
    assert calls["bare"] == [calls["llem"][0]] * 2 + [calls["llem"][2]] * 2
    ov = b["overhead"]
    assert ov["blocks"] == 2 and ov["time_per_call_rel"] is not None and len(ov["time_per_call_rel_per_block"]) == 2
    # default: the bare loop runs on llem's own model object, whose config matches what plain
    # transformers builds from the same architecture numbers
    assert ov["bare_model"].startswith("llem's own model object")
    assert ov["llem_model_config_vs_plain_transformers"]["differing_keys"] == {}
    assert ov["llem_model_config_vs_plain_transformers"]["dtype_as_requested"] is True
    lo, hi = ov["time_per_call_ci95"]
    assert lo <= ov["time_per_call_rel"] <= hi and ov["time_verdict"]
    # the bare windows ran between llem's, not before or after them all
    lc = json.loads((out / "batch2" / "result.json").read_text())["cycles"]
    gap = [lc[k + 1]["start_s"] - lc[k]["start_s"] - lc[k]["duration_s"] for k in range(3)]
    bare_s = [c["duration_s"] for c in b["bare"]["cycles"]]
    assert gap[0] >= bare_s[0] + bare_s[1] and gap[2] >= bare_s[2] + bare_s[3] and gap[1] < bare_s[0] + bare_s[1]
    # every window of both arms is stamped, so torch's compile work can be placed against them
    assert all(c["t_open"] < c["t_close"] for c in b["llem"]["cycles"] + b["bare"]["cycles"])
    assert b["llem"]["cycles"][0]["t_close"] <= b["bare"]["cycles"][0]["t_open"]
    ce = b["compile_events"]
    assert ce["available"] and ce["in_windows"] == len([s for s in ce["spans"] if s["windows"]])
    assert set(ce["windows_hit"]) <= {f"{arm} {k}" for arm in ("llem", "bare") for k in range(1, 5)}
    # no meter on CPU: energy checks are "not evaluated" (None), never passed by default
    assert b["checks"]["llem_vs_zeus_within_1pct"] is None and b["llem"]["energy_j"] is None
    assert "reproduce: python benchmarks/gpu_validation/gpu_validation.py --cpu" in capsys.readouterr().out
    assert "| 2 |" in (out / "validation.md").read_text() and "overhead: time " in (out / "validation.md").read_text()


def test_abba_overhead_is_the_ratio_of_sums_with_a_block_bootstrap():
    mod = _load()

    def win(d, calls=2, tok=10, e=None):
        return {"duration_s": d, "calls": calls, "output_tokens": tok, "energy_j": e}

    # llem 2% slower in every block, while the host drifts 10% per block: the drift cancels
    llem = [win(1.02 * f, e=2.04 * f) for f in (1.0, 1.0, 1.1, 1.1, 1.2, 1.2)]
    bare = [win(1.0 * f, e=2.0 * f) for f in (1.0, 1.0, 1.1, 1.1, 1.2, 1.2)]
    ov = mod.abba_overhead(llem, bare, samples=200)
    assert ov["blocks"] == 3
    assert ov["time_per_call_rel"] == pytest.approx(0.02) and ov["energy_per_output_token_rel"] == pytest.approx(0.02)
    assert ov["time_per_call_ci95"] == pytest.approx([0.02, 0.02])
    assert ov["time_verdict"].startswith("exceeded")
    # regrouped as BAAB blocks (bare 1, llem 1, llem 2, bare 2), llem's +2% is still there
    assert ov["regrouped_baab"]["blocks"] == 2
    assert ov["regrouped_baab"]["time_per_call_rel"] == pytest.approx(0.02)
    # one transient (bare window 0 is 12% slow) moves the ABBA reading; the BAAB grouping, which
    # leaves that window out, does not see it: the two disagreeing flags such an artefact
    flat = [win(1.0 * f) for f in (1.0, 1.0, 1.1, 1.1, 1.2, 1.2)]
    hiccup = [win(1.12)] + flat[1:]
    ov2 = mod.abba_overhead(flat, hiccup, samples=50)
    assert ov2["time_per_call_rel"] < -0.01
    assert ov2["regrouped_baab"]["time_per_call_rel"] == pytest.approx(0.0)
    # blocks that disagree: the CI is the wider of the block bootstrap and the t interval
    llem = [win(d * f) for d, f in ((1.00, 1.0), (1.00, 1.0), (1.03, 1.1), (1.03, 1.1), (0.99, 1.2), (0.99, 1.2))]
    bare = [win(1.0 * f) for f in (1.0, 1.0, 1.1, 1.1, 1.2, 1.2)]
    ov = mod.abba_overhead(llem, bare, samples=500)
    boot, t = ov["time_per_call_ci95_bootstrap"], ov["time_per_call_ci95_t"]
    assert t[1] - t[0] > boot[1] - boot[0]
    assert ov["time_per_call_ci95"] == [min(boot[0], t[0]), max(boot[1], t[1])]
    # no energy readings: energy is "not evaluated", never a pass
    ov = mod.abba_overhead([win(1.0)] * 4, [win(1.0)] * 4, samples=50)
    assert ov["energy_per_output_token_rel"] is None and ov["energy_verdict"] is None
    assert ov["time_verdict"].startswith("shown")


@pytest.mark.slow
def test_separate_bare_model_mode(tmp_path):
    out = tmp_path / "sep"
    argv = ["--cpu", "--out", str(out), "--batches", "1", "--cycles", "2", "--warmup", "1", "--min-window-s", "0.02",
            "--bare-model", "separate"]
    assert _load().main(argv) == 0
    ov = json.loads((out / "validation.json").read_text())["batches"][0]["overhead"]
    assert ov["bare_model"].startswith("a separate model object") and ov["llem_model_config_vs_plain_transformers"] is None
    assert ov["blocks"] == 1 and ov["time_verdict"] == "not resolved (one block: no CI)"
    assert ov["switch_warmup"] is None  # off unless asked for: the design of the runs pooled so far


def test_a_negative_switch_warmup_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        _load().parse_args(["--out", "x", "--switch-warmup", "-1"])
    assert e.value.code == 2 and "--switch-warmup=-1: a count of rounds, 0 or more" in capsys.readouterr().err


@pytest.mark.slow
def test_per_call_splits_each_window_into_calls_and_the_rest(tmp_path):
    out = tmp_path / "pc"
    argv = ["--cpu", "--out", str(out), "--batches", "1", "--cycles", "2", "--warmup", "1", "--min-window-s", "0.05",
            "--per-call", "--switch-warmup", "2"]
    mod = _load()
    assert mod.main(argv) == 0
    b = json.loads((out / "validation.json").read_text())["batches"][0]
    # the switch warm-up's llem passes ran between windows 1 and 2, timed, and no window counted them
    sw = b["overhead"]["switch_warmup"]
    assert sw["rounds"] == 2 and len(sw["llem_pass_s"]) == len(sw["bare_call_s"]) == 2
    assert all(x > 0 for x in sw["llem_pass_s"] + sw["bare_call_s"])
    assert b["llem"]["cycles"][0]["t_close"] < b["bare"]["cycles"][0]["t_open"] - sum(sw["llem_pass_s"])
    for c in b["llem"]["cycles"] + b["bare"]["cycles"]:
        # one duration per generate call of the window, all inside it
        assert len(c["call_s"]) == c["calls"] and 0 < sum(c["call_s"]) <= c["duration_s"]
    pc = b["overhead"]["per_call"]
    assert pc["llem"]["mean_call_s"] > 0 and pc["bare"]["mean_outside_calls_per_window_s"] >= 0
    assert pc["mean_call_rel"] == pytest.approx(pc["llem"]["mean_call_s"] / pc["bare"]["mean_call_s"] - 1)
    # the backend's generate is restored after the run
    from llem.backends import backend_class

    assert backend_class("pytorch").generate.__qualname__ == "GenerationMixin.generate"  # llem/backends/pytorch/generation.py
    assert "per call: llem vs bare" in (out / "validation.md").read_text()


@pytest.mark.slow
def test_bare_inputs_llem_feeds_the_bare_loop_llems_own_tensors(tmp_path):
    def run(mode):
        out = tmp_path / mode
        argv = ["--cpu", "--out", str(out), "--batches", "2", "--cycles", "2", "--warmup", "1", "--min-window-s",
                "0.02", "--bare-inputs", mode]
        assert _load().main(argv) == 0
        return json.loads((out / "validation.json").read_text())["batches"][0]["overhead"]

    llem, rand = run("llem"), run("random")
    assert llem["bare_inputs"] == "llem's prepared input tensors"
    assert llem["llem_model_config_vs_plain_transformers"]["bare_ids_equal_llem_ids"] is True
    assert rand["llem_model_config_vs_plain_transformers"]["bare_ids_equal_llem_ids"] is False


@pytest.mark.slow
def test_gc_pauses_times_collections_around_a_cpu_run(tmp_path):
    mod = load_benchmark("gc_pauses")
    val = tmp_path / "val"
    argv = ["--out", str(tmp_path / "gc"), "--slow-factor", "1.01", "--", "--cpu", "--out", str(val), "--batches", "1",
            "--cycles", "2", "--warmup", "1", "--min-window-s", "0.05", "--override", "measurement.gc_freeze=false"]
    assert mod.main(argv) == 0
    rep = json.loads((tmp_path / "gc" / "gc_pauses.json").read_text())
    assert (val / "validation.json").exists() and rep["exit_code"] == 0
    assert rep["llem_calls"] >= 4 and rep["median_llem_call_s"] > 0 and rep["tracked_objects_at_end"] > 1000
    assert set(rep["collections_per_generation"]) == {"gen0", "gen1", "gen2"}
    assert rep["collections_per_generation"]["gen0"] > 0  # a tiny-model run allocates plenty
    assert all(c["generation"] == 2 and c["s"] >= 0 for c in rep["oldest_generation_collections"])
    # energy=none: no load window, so llem's windows are its 2 measured cycles, in time order
    w = rep["llem_windows_s"]
    assert len(w) == 2 and all(a < b for a, b in w) and w[0][1] <= w[1][0]
    assert all(s["llem_window"] in (None, 0, 1) for s in rep["slow_llem_calls"])
    # a 1.01x threshold marks about half the calls slow; each lists the collections inside it
    assert rep["slow_llem_calls"] and all(s["s"] > 1.01 * rep["median_llem_call_s"] for s in rep["slow_llem_calls"])
    assert rep["frozen_objects_at_end"] == 0


def test_gc_pauses_without_the_separator_is_a_usage_error(capsys):
    assert load_benchmark("gc_pauses").main(["--out", "x"]) == 2
    assert "after --" in capsys.readouterr().err


def test_switching_between_the_arms_call_paths_does_not_recompile():
    """The ABBA design's premise on one compiled model: llem's generate and the bare loop's plain
    generate share transformers' compiled forward, and alternating them costs no recompile. On
    CPU transformers compiles only when told to (``_compile_all_devices``); the eager backend
    keeps dynamo's tracing and guards real without a C++ toolchain. CUDA graph re-recording
    cannot happen on CPU; on a GPU every run records it (``compile_events``)."""
    import torch
    from transformers import CompileConfig

    from llem.backends import backend_class
    from llem.config.compose import load_config
    from llem.devices import DeviceSet
    from llem.measure.harness import Workload, prepare_batches

    mod = _load()
    events = load_benchmark("compile_events").CompileEvents()
    try:
        cfg = load_config(["model=tiny", "device=cpu", "energy=none", "batch=1", "dataset.num_prompts=1",
                           "dataset.input_len=32", "output_len=16", "pytorch.cache_implementation=static",
                           "precision=fp32"])
        be = backend_class(cfg.backend)(cfg, DeviceSet(unavailable_reason="cpu"))
        be.load()
        cc = CompileConfig(backend="eager")
        cc._compile_all_devices = True
        be.model.generation_config.compile_config = cc
        work = Workload(be, prepare_batches(cfg, be))
        ids, kw = mod.plain_generate(be.model, 1, 32, 16, True, 0, "cpu")

        def bare():
            with torch.inference_mode():
                be.model.generate(ids, **kw)

        work.run()  # the first call compiles
        first = len(events.edges)
        for run in (bare, bare, work.run, work.run, bare, work.run):
            run()
    finally:
        events.close()
    assert first >= 2 and {e["trigger"] for e in events.edges} == {"dynamo"}
    assert len(events.edges) == first, events.edges[first:]


@pytest.mark.slow
@pytest.mark.parametrize("bare_cache", ["reuse", "per-call"])
def test_static_cache_arms_record_which_reused_one_cache(tmp_path, bare_cache):
    """--static-cache: llem reuses one StaticCache by default; the bare loop does the same (the
    pattern transformers documents) unless --bare-cache per-call, and the record says which."""
    out = tmp_path / bare_cache
    argv = ["--cpu", "--out", str(out), "--batches", "1", "--cycles", "2", "--warmup", "1", "--min-window-s", "0.02",
            "--static-cache", "--bare-cache", bare_cache]
    mod = _load()
    assert mod.main(argv) == 0
    b = json.loads((out / "validation.json").read_text())["batches"][0]
    assert b["overhead"]["static_cache"] == {"llem": "reuse", "bare": bare_cache}
    assert all(c["output_tokens"] == c["calls"] * 16 for c in b["bare"]["cycles"])


def test_a_failed_batch_leaves_no_compile_callbacks_registered(tmp_path, monkeypatch):
    import torch._dynamo.callback as cb

    mod = _load()
    before = (list(cb.callback_handler.start_callbacks), list(cb.callback_handler.end_callbacks))

    def fail(*a, **k):
        assert len(cb.callback_handler.start_callbacks) == len(before[0]) + 1  # registered while it runs
        raise RuntimeError("batch failed")

    monkeypatch.setattr(mod, "_validate_batch", fail)
    args = mod.parse_args(["--cpu", "--out", str(tmp_path), "--cycles", "2"])
    with pytest.raises(RuntimeError, match="batch failed"):
        mod.validate_batch(args, 1, tmp_path)
    assert (list(cb.callback_handler.start_callbacks), list(cb.callback_handler.end_callbacks)) == before
