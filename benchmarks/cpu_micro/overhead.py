"""llem's cost to the workload it measures (issue 3, items 3 and 10). A benchmark, not a test.

1. llem vs a bare ``generate`` loop (benchmarks/gpu_validation/gpu_validation.py's comparison): wall time per
   call, and energy per token where a GPU counter exists.
2. The sampler thread's cost: the same bare loop with and without ``llem.measure.sampler.Sampler``
   running beside it, in alternating windows (A/B/A/B...) so drift hits both arms alike; at the
   default 0.1 s and at a 10x faster 0.01 s to make any cost visible.
3. The meter's edge cost: time inside ``end()`` (what a window's closing edge adds).

On a machine without a GPU the sampler reads llem's simulated NVML (a test double, pure Python,
so its per-read cost is an upper bound on the real NVML's ctypes calls).

    python benchmarks/cpu_micro/overhead.py --out /tmp/overhead [--batch 4] [--pairs 6]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def sampler_cost(args, gpu: bool) -> dict:
    import torch

    from benchmarks.gpu_validation.gpu_validation import bare_model, plain_generate
    from llem.devices import resolve_devices
    from llem.measure.sampler import Sampler

    if not gpu and not os.environ.get("LLEM_SIMULATED_NVML"):
        from llem.devices import simulated

        spec = simulated.write_spec(Path(tempfile.mkdtemp()) / "nvml.json",
                                    [{"uuid": "GPU-0bench", "name": "simulated (overhead benchmark)"}])
        os.environ["LLEM_SIMULATED_NVML"] = str(spec)
    devices = resolve_devices()
    device = "cuda:0" if gpu else "cpu"
    model = bare_model(args.model, args.precision, device, 0)
    ids, kw = plain_generate(model, args.batch, args.input_len, args.output_len, False, 0, device)

    def window(calls: int) -> float:
        if gpu:
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.inference_mode():
            for _ in range(calls):
                model.generate(ids, **kw)
        if gpu:
            torch.cuda.synchronize()
        return (time.perf_counter() - t) / calls

    window(2)
    per = window(2)
    calls = max(1, round(args.window_s / per))
    out = {"calls_per_window": calls, "devices": len(devices)}
    for interval in (0.1, 0.01):
        off, on, rows, cpu_s, n = [], [], 0, 0.0, 0
        for _ in range(args.pairs):
            off.append(window(calls))
            s = Sampler(devices, interval, t0=time.perf_counter())
            s.start()
            on.append(window(calls))
            s.stop()
            rows += len(s.rows)
            cpu_s += s.cpu_s
            n += s.loop_samples
        rel = [(b - a) / a for a, b in zip(off, on)]
        out[f"interval_{interval}s"] = {"median_rel_time_per_call": statistics.median(rel),
                                        "rel_per_pair": rel, "samples": rows,
                                        # load-independent: the sampler thread's own CPU time
                                        "thread_cpu_us_per_sample": cpu_s / n * 1e6 if n else None,
                                        "thread_share_of_one_core": (cpu_s / n / interval) if n else None,
                                        "off_s_per_call": statistics.median(off), "on_s_per_call": statistics.median(on)}
    # the closing edge: what meter.end() costs inside llem's window (the opening edge's busy-poll
    # happens before the window opens and is not part of it)
    from llem.meters.base import MeterUnavailable
    from llem.meters.nvml import NvmlCounterMeter

    try:
        m = NvmlCounterMeter(devices)
        h = m.begin()
        t = time.perf_counter()
        n = 200
        for _ in range(n):
            m._read_all()
        out["meter_end_read_us"] = (time.perf_counter() - t) / n * 1e6
        m.end(h)
    except MeterUnavailable as err:
        out["meter_end_read_us"] = f"unavailable: {err}"
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="llem's overhead against a bare generate loop")
    p.add_argument("--out", required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--pairs", type=int, default=6, help="A/B window pairs per sampler interval")
    p.add_argument("--window-s", type=float, default=None)
    p.add_argument("--skip-llem", action="store_true", help="only the sampler and meter costs")
    args = p.parse_args(argv)
    gpu = _gpu()
    args.model, args.precision = ("llama-3.2-1b", "bf16") if gpu else ("tiny", "fp32")
    args.input_len, args.output_len = (128, 128) if gpu else (32, 16)
    args.window_s = args.window_s or (20.0 if gpu else 0.5)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"device": "gpu" if gpu else "cpu", "host_cpus": os.cpu_count(), "args": vars(args),
              "load_average": os.getloadavg()}
    if not args.skip_llem:
        from benchmarks.gpu_validation import gpu_validation as gv

        vargs = gv.parse_args(["--out", str(out), "--batches", str(args.batch), "--cycles", "4"]
                              + ([] if gpu else ["--cpu", "--min-window-s", str(args.window_s)]))
        report["llem_vs_bare"] = gv.validate_batch(vargs, args.batch, out)["overhead"]
    report["sampler"] = sampler_cost(args, gpu)
    (out / "overhead.json").write_text(json.dumps(report, indent=2, default=str))
    s = report["sampler"]
    print(f"device: {report['device']} ({report['host_cpus']} CPUs, load {report['load_average'][0]:.1f})")
    if "llem_vs_bare" in report:
        o = report["llem_vs_bare"]
        print(f"llem vs bare: time/call {o['time_per_call_rel']:+.2%}"
              + (f", J/token {o['energy_per_output_token_rel']:+.2%}" if o["energy_per_output_token_rel"] is not None else ""))
    for k in ("interval_0.1s", "interval_0.01s"):
        print(f"sampler {k}: median time/call {s[k]['median_rel_time_per_call']:+.2%} over {args.pairs} pairs "
              f"({s[k]['samples']} samples); thread CPU {s[k]['thread_cpu_us_per_sample']:.0f} us/sample "
              f"= {s[k]['thread_share_of_one_core']:.3%} of one core")
    print(f"meter end() read: {s['meter_end_read_us']} us per call" if not isinstance(s["meter_end_read_us"], str)
          else f"meter: {s['meter_end_read_us']}")
    print(f"wrote {out / 'overhead.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
