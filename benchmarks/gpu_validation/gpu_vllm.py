"""GPU validation of llem's vLLM backend (issue 6, item 7): one engine, every batch size.

Reference workload: ``no_weights`` Llama-3.2-1B, bf16, 128 input / 128 output tokens, static
batches 1, 8, 32, 128. Engine start costs ~170 s on an H100 (torch.compile + CUDA graphs), so the
engine starts once, with ``max_num_seqs`` = the largest batch, and every batch size reuses it
(``llem.backends.vllm.keep_engines``). Each batch size is one full ``llem.measure.harness.run``
experiment (idle baseline, warm-up, counter-metered cycles, latency pass), with two observers
on the very same windows: Zeus (``ZeusMonitor``) and the raw NVML counter. Each
experiment's windows are interleaved with windows of a bare ``LLM.generate`` loop on the same
engine and prompts (llem, bare, bare, llem; as many calls in a bare window as in its llem window;
llem's sampler stopped while a bare window runs), so drift cancels inside each block and the
ratio gets a 95% CI over blocks (issue 30, item 8: llem >= 0.98x bare).

    python benchmarks/gpu_validation/gpu_vllm.py --out docs/validation/vllm-h100 --batches 1,8,32 --cycles 8
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
LLEM_VS_BARE_LIMIT = 0.98  # issue 30, item 8: llem's vLLM backend at least 0.98x a bare loop
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

    def aligned_read_j(self, timeout_s: float = 0.5) -> float:
        """The counter at its next step: a bare window opens on a step, as llem's meter opens its windows."""
        from benchmarks.gpu_validation.gpu_validation import next_step

        return next_step(self.read_j, timeout_s)

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


class BareWindows:
    """Plain ``LLM.generate`` windows on the experiment's own engine and prompts, run
    between llem's windows (llem's sampler is stopped meanwhile), each with as many calls as the
    llem window it is paired with, opened on a counter step as llem's meter opens its windows."""

    def __init__(self, backend, config, counter: Optional[NvmlCounter]) -> None:
        from vllm import SamplingParams

        from llem.datasets import load_prompts

        prompts = load_prompts(config.dataset, backend.tokenizer, backend.vocab_size, min_count=config.batch)
        self.reqs = [{"prompt_token_ids": p} for p in prompts[:config.batch]]
        n = config.output_len
        self.sp = SamplingParams(max_tokens=n, min_tokens=n, ignore_eos=True, detokenize=False, temperature=0.0)
        self.llm, self.counter = backend.llm, counter
        self.cycles: list[dict[str, Any]] = []
        for _ in range(2):  # the bare call path's own warm-up, outside every window
            self.llm.generate(self.reqs, self.sp, use_tqdm=False)

    def windows(self, n: int, calls: int) -> None:
        for _ in range(n):
            e0 = self.counter.aligned_read_j() if self.counter else None
            t0 = time.perf_counter()
            tokens = 0
            for _ in range(calls):
                tokens += sum(len(c.token_ids) for o in self.llm.generate(self.reqs, self.sp, use_tqdm=False)
                              for c in o.outputs)
            dur = time.perf_counter() - t0
            e = self.counter.read_j() - e0 if self.counter else None
            self.cycles.append({"duration_s": dur, "calls": calls, "output_tokens": tokens, "energy_j": e})


def abba_summary(llem_cycles: list[dict], bare_cycles: list[dict], seed: int) -> dict[str, Any]:
    """llem against the bare loop from the interleaved windows (gpu_validation.py's ABBA
    estimate), read as the issue's target: llem >= 0.98x bare in throughput, and J/token at most
    1/0.98 of bare's. Shown only when the whole 95% CI clears the limit."""
    from benchmarks.gpu_validation.gpu_validation import abba_overhead

    ov = abba_overhead(llem_cycles, bare_cycles, seed=seed)
    t_rel, t_ci = ov["time_per_call_rel"], ov["time_per_call_ci95"]
    e_rel, e_ci = ov["energy_per_output_token_rel"], ov["energy_per_output_token_ci95"]
    # equal calls and tokens per paired window: throughput ratio = 1 / (1 + time-per-call difference)
    ratio = 1 / (1 + t_rel) if t_rel is not None else None
    # (a lower time end at or below -100% leaves the ratio's upper end unbounded: None)
    ratio_ci = [1 / (1 + t_ci[1]), 1 / (1 + t_ci[0]) if t_ci[0] > -1 else None] if t_ci else None
    e_limit = 1 / LLEM_VS_BARE_LIMIT - 1
    return {**ov, "throughput_ratio": ratio, "throughput_ratio_ci95": ratio_ci,
            "energy_per_output_token_ratio": 1 + e_rel if e_rel is not None else None,
            "energy_per_output_token_ratio_ci95": [1 + e_ci[0], 1 + e_ci[1]] if e_ci else None,
            "throughput_at_least_0.98x_bare": None if ratio_ci is None else ratio_ci[0] >= LLEM_VS_BARE_LIMIT,
            "energy_per_token_at_most_bare_over_0.98": None if e_ci is None else e_ci[1] <= e_limit}


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
    bare_arm: list[BareWindows] = []

    def between(index: int, cycle, backend) -> None:
        # after llem window 2k: the block's two bare windows (llem, bare, bare, llem)
        if not bare_arm:
            bare_arm.append(BareWindows(backend, cfg, counter if not args.cpu else None))
        if index % 2 == 0:
            bare_arm[0].windows(2, calls=cycle.calls)
            print(f"  [{batch}] bare: " + ", ".join(f"{c['output_tokens'] / c['duration_s']:.1f} tok/s"
                                                    for c in bare_arm[0].cycles[-2:]), flush=True)

    t = time.perf_counter()
    r = harness.run(cfg, out / f"batch{batch}", progress=lambda m: print(f"  [{batch}] {m}", flush=True),
                    observers=observers, between_cycles=between)
    r.save(out / f"batch{batch}" / "result.json")
    res["experiment_s"] = time.perf_counter() - t
    bare_cycles = bare_arm[0].cycles if bare_arm else []
    res["bare"] = {"cycles": bare_cycles, **(_per_token(bare_cycles) if bare_cycles else {})}
    res["abba"] = abba_summary([{"duration_s": c.duration_s, "calls": c.calls, "output_tokens": c.output_tokens,
                                 "energy_j": c.energy_j} for c in r.cycles], bare_cycles, seed=0)
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
        "latency_throughput_ratio": lat.latency_throughput_ratio if lat else None,
        "calls_per_window": m.get("window", {}).get("calls_per_window"),
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
    ab = res["abba"]
    res["vs_bare"] = {"throughput_ratio": ab["throughput_ratio"], "energy_per_token_rel": ab["energy_per_output_token_rel"]}
    res["checks"] = {"llem_vs_zeus_within_1pct": None if zd is None else zd <= AGREEMENT_LIMIT,
                     "throughput_at_least_0.98x_bare": ab["throughput_at_least_0.98x_bare"],
                     "energy_per_token_at_most_bare_over_0.98": ab["energy_per_token_at_most_bare_over_0.98"]}
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
    if any("abba" in r for r in rep["batches"]):
        lines += ["", "Interleaved against a bare `LLM.generate` loop on the same engine and prompts (blocks of llem, "
                  "bare, bare, llem windows; equal calls per paired window; 95% CI over blocks):", "",
                  "| batch | blocks | tok/s llem / bare | 95% CI | J/token llem / bare | 95% CI | latency pass / windows tok/s |",
                  "|---|---|---|---|---|---|---|"]
        for r in rep["batches"]:
            ab = r.get("abba")
            if not ab:
                continue
            tc, ec = ab.get("throughput_ratio_ci95"), ab.get("energy_per_output_token_ratio_ci95")
            lines.append(f"| {r['batch']} | {ab['blocks']} | {f(ab.get('throughput_ratio'), '.4f')} | "
                         + (f"[{f(tc[0], '.4f')}, {f(tc[1], '.4f')}]" if tc else "n/a") + " | "
                         f"{f(ab.get('energy_per_output_token_ratio'), '.4f')} | "
                         + (f"[{ec[0]:.4f}, {ec[1]:.4f}]" if ec else "n/a")
                         + f" | {f(r['llem'].get('latency_throughput_ratio'), '.3f')} |")
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


from benchmarks.gpu_validation.gpu_validation import _commit, _per_token, num, pct  # noqa: E402  (the repo is on sys.path)


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
    ap.add_argument("--cycles", type=int, default=4, help="llem windows, each paired with a bare one (even, >= 4)")
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
    if a.cycles < 4 or a.cycles % 2:
        ap.error(f"--cycles={a.cycles}: the interleaved comparison needs an even number >= 4 (two blocks or more, for a CI)")
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
