"""One finding on a GPU with llem's own protocol: does the attention kernel change J/token?

Arms (``--finding attn``, default): ``pytorch.attn_implementation=eager`` against ``sdpa``;
(``--finding compile``): default dynamic cache against ``cache_implementation=static`` +
``torch_compile``. Each arm at each batch size is one full ``llem.measure.harness.run`` experiment
(idle baseline, warm-up, cycles of counter-metered windows, latency pass), so the numbers carry
llem's CIs over cycles (``measurement.ci_method``) and its warnings. Arms alternate within each batch
size, and with ``--rounds 2`` the order flips (ABBA) so slow drift does not favour one arm.

GPU (H100, ~3 minutes; llem installed, with Zeus):
    python benchmarks/gpu_validation/gpu_pytorch.py --out docs/validation/pytorch-attn-h100
CPU smoke run of the same code (tiny model; no energy counter on a CPU):
    python benchmarks/gpu_validation/gpu_pytorch.py --cpu --out /tmp/gpu-pytorch-cpu
Writes ``finding.json``, ``finding.md`` and every experiment's ``result.json`` under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ARMS = {
    "attn": [("eager", ["pytorch.attn_implementation=eager"]), ("sdpa", ["pytorch.attn_implementation=sdpa"])],
    "compile": [("dynamic", []),
                ("static+compile", ["pytorch.cache_implementation=static", "pytorch.torch_compile=true"])],
}


def _fmt(stat, scale=1.0, digits=4) -> str:
    # "value" (the ratio of totals, result schema 1.1) is the point its CI belongs to; 1.0 had "mean"
    point = (stat or {}).get("value", (stat or {}).get("mean"))
    if point is None:
        return "n/a"
    m = point * scale
    lo, hi = stat.get("ci95_low"), stat.get("ci95_high")
    ci = f" [{lo * scale:.{digits}g}, {hi * scale:.{digits}g}]" if lo is not None and hi is not None else ""
    return f"{m:.{digits}g}{ci}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--cpu", action="store_true", help="tiny model on CPU: checks the script, measures nothing useful")
    ap.add_argument("--finding", choices=sorted(ARMS), default="attn")
    ap.add_argument("--model", default="llama-3.2-1b")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1, help="2: ABBA order")
    ap.add_argument("--quantisation-target", type=float, default=0.02,
                    help="counter edge uncertainty per window; 0.02 gives ~5 s windows at 10 Hz")
    ap.add_argument("--phase-split", action="store_true", help="also run the prefill/decode windows (costs time)")
    ap.add_argument("--energy", default="nvml")
    a = ap.parse_args(argv)

    from llem.config.compose import load_config
    from llem.measure.harness import run

    out = Path(a.out)
    (out / "experiments").mkdir(parents=True, exist_ok=True)
    if a.cpu:
        a.model, a.precision, a.batches, a.input_len, a.output_len, a.energy = "tiny", "fp32", "1,4", 16, 16, "none"
    common = [f"model={a.model}", f"precision={a.precision}", f"dataset.input_len={a.input_len}",
              f"output_len={a.output_len}", f"measurement.cycles={a.cycles}", "measurement.warmup_runs=1",
              f"measurement.quantisation_target={a.quantisation_target}",
              f"measurement.phase_split={str(a.phase_split).lower()}", f"energy={a.energy}",
              "device=cpu" if a.cpu else "device=cuda"]
    rows = []
    t_start = time.perf_counter()
    for rnd in range(a.rounds):
        for b in (int(x) for x in a.batches.split(",")):
            arms = ARMS[a.finding] if rnd % 2 == 0 else list(reversed(ARMS[a.finding]))
            for name, over in arms:
                # one batch of prompts per pass: the workload is exactly `batch` requests
                cfg = load_config(common + [f"batch={b}", f"dataset.num_prompts={b}", *over])
                t = time.perf_counter()
                res = run(cfg, out / "experiments" / f"{name}-b{b}-r{rnd}", progress=lambda m: print("  " + m, flush=True))
                d = json.loads(res.to_json())
                (out / "experiments" / f"{name}-b{b}-r{rnd}.json").write_text(res.to_json())
                rows.append({
                    "arm": name, "batch": b, "round": rnd, "wall_s": time.perf_counter() - t,
                    "energy_measured": d["energy"]["measured"],
                    "energy_not_measured_reason": d["energy"].get("not_measured_reason"),
                    "output_tokens_per_s": d["stats"].get("output_tokens_per_s"),
                    "energy_per_output_token_j": d["stats"].get("energy_per_output_token_j"),
                    "energy_adjusted_per_output_token_j": d["stats"].get("energy_adjusted_per_output_token_j"),
                    "baseline_power_w": d["energy"].get("baseline_power_w"),
                    "ttft_ms_p50": (d.get("latency") or {}).get("ttft_ms", {}).get("p50"),
                    "itl_trimmed_ms_p50": (d.get("latency") or {}).get("itl_trimmed_ms", {}).get("p50"),
                    "peak_allocated_bytes": (d.get("memory") or {}).get("peak_allocated_bytes"),
                    "warnings": d["warnings"], "device": d["device"],
                    "gpu": [g.get("name") for g in d["environment"].get("gpus", [])] if isinstance(d["environment"].get("gpus"), list) else None,
                })
                print(f"{name} batch {b}: {_fmt(rows[-1]['output_tokens_per_s'])} tok/s, "
                      f"{_fmt(rows[-1]['energy_per_output_token_j'])} J/token", flush=True)
    finding = {"finding": a.finding, "model": a.model, "precision": a.precision, "input_len": a.input_len,
               "output_len": a.output_len, "cycles": a.cycles, "rounds": a.rounds, "cpu_mode": a.cpu,
               "host": platform.node(), "total_wall_s": time.perf_counter() - t_start,
               "command": "python benchmarks/gpu_validation/gpu_pytorch.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "ci_method": next((r["output_tokens_per_s"].get("method") for r in rows if r["output_tokens_per_s"]), None),
               "rows": rows}
    (out / "finding.json").write_text(json.dumps(finding, indent=1, default=str))
    md = [f"# {a.finding}: {' vs '.join(n for n, _ in ARMS[a.finding])}, {a.model} {a.precision}, "
          f"{a.input_len} in / {a.output_len} out" + (" (CPU smoke run: not a finding)" if a.cpu else ""), "",
          f"Command: `{finding['command']}`", "",
          "Mean [95% CI over cycles]. J/token is raw counter energy; adjusted subtracts idle baseline power x time.", "",
          "| arm | batch | tok/s | J/token | J/token adjusted | TTFT p50 ms | ITL p50 ms | warnings |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['arm']} | {r['batch']} | {_fmt(r['output_tokens_per_s'])} | "
                  f"{_fmt(r['energy_per_output_token_j']) if r['energy_measured'] else 'not measured'} | "
                  f"{_fmt(r['energy_adjusted_per_output_token_j'])} | "
                  f"{r['ttft_ms_p50'] and round(r['ttft_ms_p50'], 2)} | {r['itl_trimmed_ms_p50'] and round(r['itl_trimmed_ms_p50'], 3)} | "
                  f"{len(r['warnings'])} |")
    if rows and not rows[0]["energy_measured"]:
        md += ["", f"Energy not measured: {rows[0]['energy_not_measured_reason']}"]
    (out / "finding.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
