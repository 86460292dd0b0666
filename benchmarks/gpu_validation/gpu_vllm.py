"""GPU validation of llem's vLLM backend (issue 6, item 7): one engine, every batch size.

Reference workload: ``no_weights`` Llama-3.2-1B, bf16, 128 input / 128 output tokens, static
batches 1, 8, 32, 128. Engine start costs ~170 s on an H100 (torch.compile + CUDA graphs), so the
engine starts once, with ``max_num_seqs`` = the largest batch, and every batch size reuses it
(``llem.backends.vllm.keep_engines``). Each batch size is one full ``llem.measure.harness.run``
experiment (idle baseline, warm-up, counter-metered cycles, latency pass), with two observers
on the very same windows: Zeus (``ZeusMonitor``) and the raw NVML counter. Before each
experiment a bare ``LLM.generate`` loop on the same engine and prompts runs for one window, for
the throughput / energy ratio against llem.

    python benchmarks/gpu_validation/gpu_vllm.py --out docs/validation/vllm-h100            # ~5-6 min on an H100
    python benchmarks/gpu_validation/gpu_vllm.py --out ... --enforce-eager                   # engine start in seconds
    .venv-vllm/bin/python benchmarks/gpu_validation/gpu_vllm.py --cpu --out /tmp/gpu-vllm-cpu  # tiny CPU mode

Writes ``vllm_validation.json`` and ``vllm_validation.md`` to ``--out`` after every batch (a
command stopped by its time limit keeps what finished), plus each experiment's ``result.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

AGREEMENT_LIMIT = 0.01
# Bare loops without llem, measured earlier on an H100 with the same workload, 5 generate calls per
# window, raw counter energy: vLLM 0.26 (below) and HF generate (BARE_HF).
BARE_VLLM = {1: {"output_tokens_per_s": 399, "energy_per_output_token_j": 0.615},
             8: {"output_tokens_per_s": 3923, "energy_per_output_token_j": 0.077},
             32: {"output_tokens_per_s": 9010, "energy_per_output_token_j": 0.030},
             128: {"output_tokens_per_s": 23245, "energy_per_output_token_j": 0.0126}}
BARE_HF = {1: 2.78, 8: 0.300, 32: 0.098, 128: 0.031}  # bare HF generate, J/token


class NvmlCounter:
    """The raw NVML total-energy counter of GPU index 0, read without llem or torch (a CUDA context
    in this frontend process would take GPU memory from vLLM)."""

    name = "raw_nvml"

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nv = pynvml
        self.h = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.energies_j: list[float] = []

    def read_j(self) -> float:
        return self.nv.nvmlDeviceGetTotalEnergyConsumption(self.h) / 1e3

    def begin(self) -> None:
        self._e0 = self.read_j()

    def end(self) -> None:
        self.energies_j.append(self.read_j() - self._e0)


def _rel(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return (a - b) / b if a is not None and b else None


def overrides(args, batch: int) -> list[str]:
    ov = ["backend=vllm", f"model={args.model}", f"precision={args.precision}", f"batch={batch}",
          f"dataset.num_prompts={batch}", f"dataset.input_len={args.input_len}", f"output_len={args.output_len}",
          f"vllm.batching={args.batching}", f"vllm.max_num_seqs={args.max_num_seqs}",
          f"vllm.enforce_eager={str(args.enforce_eager).lower()}",
          f"measurement.cycles={args.cycles}", f"measurement.warmup_runs={args.warmup}",
          f"measurement.quantisation_target={args.quantisation_target}",
          f"measurement.min_window_s={args.min_window_s}",
          f"measurement.phase_split={str(args.phase_split).lower()}"]
    if args.max_model_len:
        ov.append(f"vllm.max_model_len={args.max_model_len}")
    ov += ["device=cpu", "energy=none"] if args.cpu else ["device=cuda", f"energy={args.energy}"]
    return ov


def bare_window(backend, config, counter: Optional[NvmlCounter], seconds: float) -> dict[str, Any]:
    """A plain ``LLM.generate`` loop on the experiment's engine and prompts, one window long."""
    from vllm import SamplingParams

    from llem.datasets import load_prompts

    prompts = load_prompts(config.dataset, backend.tokenizer, backend.vocab_size, min_count=config.batch)
    reqs = [{"prompt_token_ids": p} for p in prompts[:config.batch]]
    n = config.output_len
    sp = SamplingParams(max_tokens=n, min_tokens=n, ignore_eos=True, detokenize=False, temperature=0.0)
    llm = backend.llm
    for _ in range(2):
        llm.generate(reqs, sp, use_tqdm=False)
    e0 = counter.read_j() if counter else None
    t0 = time.perf_counter()
    tokens = calls = 0
    while calls < 1 or time.perf_counter() - t0 < seconds:
        tokens += sum(len(c.token_ids) for o in llm.generate(reqs, sp, use_tqdm=False) for c in o.outputs)
        calls += 1
    dur = time.perf_counter() - t0
    e = counter.read_j() - e0 if counter else None
    return {"calls": calls, "output_tokens": tokens, "duration_s": dur, "output_tokens_per_s": tokens / dur,
            "energy_j": e, "energy_per_output_token_j": e / tokens if e is not None else None}


def run_batch(args, batch: int, out: Path, counter, zeus_factory) -> dict[str, Any]:
    from llem.backends import vllm as vb
    from llem.config.compose import load_config
    from llem.measure import harness

    cfg = load_config(overrides(args, batch))
    observers: list = []
    res: dict[str, Any] = {"batch": batch}
    if counter is not None:
        counter.energies_j = []
        observers.append(counter)
    if zeus_factory is not None:
        try:
            observers.append(zeus_factory())
        except Exception as err:  # recorded, never passed silently
            res["zeus"] = {"unavailable": f"{type(err).__name__}: {err}"}
    t = time.perf_counter()
    r = harness.run(cfg, out / f"batch{batch}", progress=lambda m: print(f"  [{batch}] {m}", flush=True),
                    observers=observers)
    r.save(out / f"batch{batch}" / "result.json")
    res["experiment_s"] = time.perf_counter() - t
    # the engine is still alive (kept): a bare loop on it, one window of the llem window's length
    backend = vb.VLLMBackend(cfg, None)
    backend.load()
    win = max(c.duration_s for c in r.cycles) if r.cycles else 1.0
    res["bare"] = bare_window(backend, cfg, counter if not args.cpu else None, win)
    lat = r.latency
    m = r.measurement_methodology
    per_cycle = [c.energy_j for c in r.cycles]
    res["llem"] = {
        "status": r.status, "output_tokens_per_s": r.output_tokens_per_s,
        "energy_per_output_token_j": r.energy.energy_per_output_token_j,
        "energy_adjusted_per_output_token_j": r.energy.energy_adjusted_per_output_token_j,
        "baseline_power_w": r.energy.baseline_power_w,
        "mean_power_w": (r.energy.energy_j / r.duration_s) if r.energy.energy_j and r.duration_s else None,
        "energy_per_output_token_ci95": [r.stats["energy_per_output_token_j"].ci95_low,
                                         r.stats["energy_per_output_token_j"].ci95_high],
        "cycle_energies_j": per_cycle, "window_s": [c.duration_s for c in r.cycles],
        "quantisation_bound_max": m.get("quantisation_bound_max"),
        "ttft_ms": lat.ttft_ms.model_dump() if lat else None, "itl_ms": lat.itl_ms.model_dump() if lat else None,
        "tpot_ms": lat.tpot_ms.model_dump() if lat else None, "latency_method": lat.method if lat else None,
        "latency_path": m.get("backend", {}).get("latency_path"),
        "engine_reused": m.get("backend", {}).get("engine_reused"),
        "phases": r.phases.model_dump() if r.phases else None, "warnings": r.warnings,
    }
    for o in observers:
        diffs = [_rel(a, b) for a, b in zip(per_cycle, o.energies_j)]
        ok = diffs and None not in diffs
        res[o.name] = {"energies_j": o.energies_j, "rel_diff_llem_vs_this": diffs,
                       "max_abs_rel_diff": max(abs(d) for d in diffs) if ok else None}
    L, B = res["llem"], res["bare"]
    res["vs_bare"] = {"throughput_ratio": (L["output_tokens_per_s"] / B["output_tokens_per_s"])
                      if L["output_tokens_per_s"] and B["output_tokens_per_s"] else None,
                      "energy_per_token_rel": _rel(L["energy_per_output_token_j"], B["energy_per_output_token_j"])}
    zd = res.get("zeus", {}).get("max_abs_rel_diff")
    res["checks"] = {"llem_vs_zeus_within_1pct": None if zd is None else zd <= AGREEMENT_LIMIT,
                     "throughput_at_least_0.98x_bare": None if res["vs_bare"]["throughput_ratio"] is None
                     else res["vs_bare"]["throughput_ratio"] >= 0.98}
    if not args.cpu and batch in BARE_VLLM:
        res["bare_reference"] = {"vllm_0.26_bare": BARE_VLLM[batch], "hf_generate_j_per_token": BARE_HF.get(batch)}
    return res


def markdown(rep: dict[str, Any]) -> str:
    f = num

    lines = [f"# llem vLLM backend validation ({rep['device']}, vLLM {rep['vllm_version']})", "",
             f"Reproduce: `{rep['command']}` (commit {rep['commit']}); engine start {f(rep.get('engine_start_s'), '.0f')} s, "
             f"one engine for all batch sizes (max_num_seqs={rep['args']['max_num_seqs']}, "
             f"enforce_eager={rep['args']['enforce_eager']}).", "",
             "| batch | tok/s | J/token | adjusted J/token | mean W | llem vs Zeus (max) | llem vs raw NVML (max) "
             "| tok/s vs bare generate | J/token vs bare | TTFT p50 ms | ITL p50 ms | ITL p90 ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rep["batches"]:
        L = r["llem"]
        tt, it = L.get("ttft_ms") or {}, L.get("itl_ms") or {}
        lines.append(
            f"| {r['batch']} | {f(L['output_tokens_per_s'], '.1f')} | {f(L['energy_per_output_token_j'])} | "
            f"{f(L['energy_adjusted_per_output_token_j'])} | {f(L['mean_power_w'], '.1f')} | "
            f"{pct(r.get('zeus', {}).get('max_abs_rel_diff'))} | {pct(r.get('raw_nvml', {}).get('max_abs_rel_diff'))} | "
            f"{f(r['vs_bare']['throughput_ratio'], '.3f')}x | {pct(r['vs_bare']['energy_per_token_rel'])} | "
            f"{f(tt.get('p50'), '.2f')} | {f(it.get('p50'), '.2f')} | {f(it.get('p90'), '.2f')} |")
    lines += ["", f"Latency: {rep['batches'][0]['llem'].get('latency_method') if rep['batches'] else ''}; path: "
              f"{rep['batches'][0]['llem'].get('latency_path') if rep['batches'] else ''}.", "",
              "Checks (None = not evaluable here; reasons in vllm_validation.json):", ""]
    for r in rep["batches"]:
        lines.append(f"- batch {r['batch']}: " + ", ".join(f"{k}={v}" for k, v in r["checks"].items()))
    if any("bare_reference" in r for r in rep["batches"]):
        lines += ["", "References measured earlier on an H100 without llem (bare vLLM 0.26 loop, 1.3-3.5 s windows, "
                  "+-2%; bare HF generate):", ""]
        for r in rep["batches"]:
            if "bare_reference" in r:
                ref = r["bare_reference"]
                lines.append(f"- batch {r['batch']}: vLLM {ref['vllm_0.26_bare']['output_tokens_per_s']} tok/s, "
                             f"{ref['vllm_0.26_bare']['energy_per_output_token_j']} J/token; HF "
                             f"{ref['hf_generate_j_per_token']} J/token; llem here "
                             f"{f(r['llem']['energy_per_output_token_j'])} J/token")
    return "\n".join(lines) + "\n"


from benchmarks.gpu_validation.gpu_validation import _commit, num, pct  # noqa: E402  (the repo is on sys.path)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--cpu", action="store_true", help="tiny model on vllm-cpu: checks the script, no meters")
    ap.add_argument("--batches", default=None, help="comma-separated (GPU default 1,8,32,128; CPU 1,4)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--precision", default=None)
    ap.add_argument("--input-len", type=int, default=None)
    ap.add_argument("--output-len", type=int, default=None)
    ap.add_argument("--batching", default="static", choices=["static", "continuous"])
    ap.add_argument("--max-num-seqs", type=int, default=None, help="default: the largest batch (one engine)")
    ap.add_argument("--max-model-len", type=int, default=None,
                    help="default: input+output rounded up (KV cache sized for the workload, not 128k)")
    ap.add_argument("--enforce-eager", action="store_true", help="no compile/CUDA graphs: fast start, slower decode")
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quantisation-target", type=float, default=0.02,
                    help="edge uncertainty per window: 0.02 gives ~5 s windows at the H100's 10 Hz counter")
    ap.add_argument("--min-window-s", type=float, default=None)
    ap.add_argument("--phase-split", action="store_true", help="also the prefill/decode windows (costs time)")
    ap.add_argument("--energy", default="nvml")
    ap.add_argument("--no-zeus", action="store_true")
    a = ap.parse_args(argv)
    d = ({"batches": "1,4", "model": "tiny", "precision": "fp32", "input_len": 32, "output_len": 16,
          "min_window_s": 0.2} if a.cpu else
         {"batches": "1,8,32,128", "model": "llama-3.2-1b", "precision": "bf16", "input_len": 128,
          "output_len": 128, "min_window_s": 0.0})
    for k, v in d.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.cpu:
        a.enforce_eager = True
    a.batch_list = [int(b) for b in a.batches.split(",") if b.strip()]
    a.max_num_seqs = a.max_num_seqs or max(a.batch_list)
    if a.max_model_len is None:
        a.max_model_len = -(-(a.input_len + a.output_len) // 256) * 256
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.cpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/gpu_validation/gpu_vllm.py " + " ".join(sys.argv[1:] if argv is None else argv)
    import vllm

    from llem.backends import vllm as vb

    counter = None
    zeus_factory = None
    device = "cpu: " + (platform.processor() or platform.machine())
    if not args.cpu:
        counter = NvmlCounter()
        device = counter.nv.nvmlDeviceGetName(counter.h)
        device = device.decode() if isinstance(device, bytes) else device
        if not args.no_zeus:
            from benchmarks.gpu_validation.gpu_validation import ZeusObserver  # the Measurement engineer's observer, reused

            zeus_factory = ZeusObserver
    vb.keep_engines(True)
    rep: dict[str, Any] = {"device": device, "vllm_version": vllm.__version__, "command": command,
                           "commit": _commit(), "python": sys.version.split()[0],
                           "args": {k: v for k, v in vars(args).items() if k != "batch_list"}, "batches": []}
    t0 = time.perf_counter()
    try:
        for i, b in enumerate(args.batch_list):
            print(f"batch {b}", flush=True)
            res = run_batch(args, b, out, counter, zeus_factory)
            if i == 0:
                # the first experiment's load time is the engine start; later ones reuse the engine
                r0 = json.loads((out / f"batch{b}" / "result.json").read_text())
                rep["engine_start_s"] = r0.get("load_time_s")
            rep["batches"].append(res)
            (out / "vllm_validation.json").write_text(json.dumps(rep, indent=2, default=str))
            (out / "vllm_validation.md").write_text(markdown(rep))
    finally:
        vb.release_engines()
    rep["wall_s"] = time.perf_counter() - t0
    (out / "vllm_validation.json").write_text(json.dumps(rep, indent=2, default=str))
    (out / "vllm_validation.md").write_text(markdown(rep))
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
