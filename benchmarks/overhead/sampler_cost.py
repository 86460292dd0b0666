"""What llem's sampler costs the GPU and the workload (issue 3, items 3 and 10).

At batch 1 the pooled llem-vs-bare runs put llem's energy per token 0.6-0.8% above the bare loop
with no time excess (docs/validation/README.md, section 2), i.e. slightly more power at the same
speed. The one thing llem runs beside its windows that the bare loop does not is the sampler: six
NVML queries per GPU every 0.1 s. This measures that alone, with no model and no llem harness:
ABBA windows of the same load with the sampler on, off, off, on.

Each window opens on an energy-counter step and runs its load on until the first step after
``--window-s``, so its energy covers whole counter periods: no edge quantisation, which at 2-5 s
windows would be 2-5% per window and swamp a cost of a few tenths of a watt. Loads:

- ``idle``: nothing on the GPU (its context is up); what the queries themselves draw.
- ``graph``: one CUDA graph of memory-bound bf16 matrix-vector products, replayed back to back
  (a synchronise after each replay): GPU-bound, the host barely involved.
- ``host``: a decode-like Python loop of small kernels with a device-to-host read per step:
  host-paced, like batch-1 ``generate``, so the sampler's thread competes for the interpreter.

Per load, per block: the sampler-on minus sampler-off difference of mean power (W), of work units
per second and of joules per unit, then their mean over blocks with a Student-t 95% CI.

    python benchmarks/overhead/sampler_cost.py --out DIR [--loads idle,graph,host] [--window-s 3] [--blocks 8]

On a machine without a GPU it needs llem's simulated NVML (``LLEM_SIMULATED_NVML``, a test
double) and runs its loads on the CPU: that checks the script, not a cost.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LOADS = ("idle", "graph", "host")
ORDER = ("on", "off", "off", "on")  # one ABBA block: a linear drift cancels inside it


class BadArgs(Exception):
    pass


def open_on_step(read: Callable[[], int], timeout_s: float) -> tuple[int, float]:
    from llem.meters.nvml import wait_for_step

    ok, v, t = wait_for_step(read, timeout_s)
    if not ok:
        raise RuntimeError(f"the energy counter did not step within {timeout_s:.2f} s")
    return v, t


def window(read: Callable[[], int], unit: Callable[[], None], window_s: float, timeout_s: float) -> dict[str, Any]:
    """One window: opened on a counter step, ``unit`` run until ``window_s`` has passed and then
    until the counter steps again (checked after each unit), closed on that step."""
    v0, t0 = open_on_step(read, timeout_s)
    units = 0
    while time.perf_counter() - t0 < window_s:
        unit()
        units += 1
    ref = read()
    deadline = time.perf_counter() + timeout_s
    while True:
        unit()
        units += 1
        v1 = read()
        t1 = time.perf_counter()
        if v1 != ref:
            break
        if t1 > deadline:
            raise RuntimeError(f"the energy counter did not step within {timeout_s:.2f} s")
    dur = t1 - t0
    e = (v1 - v0) / 1e3
    return {"energy_j": e, "duration_s": dur, "units": units, "power_w": e / dur,
            "units_per_s": units / dur, "j_per_unit": e / units}


def make_load(name: str, torch, device: str, size: int) -> Callable[[], None]:
    """A unit of work that returns with the device idle (synchronised), so windows end cleanly."""
    if name == "idle":
        return lambda: time.sleep(0.002)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    g = torch.Generator(device="cpu").manual_seed(0)
    dt = torch.bfloat16 if device == "cuda" else torch.float32
    if name == "graph":
        w = torch.randn(size, size, generator=g).to(device=device, dtype=dt)
        x = torch.randn(size, 1, generator=g).to(device=device, dtype=dt)
        y = torch.empty_like(x)

        def products() -> None:
            for _ in range(16):
                torch.matmul(w, x, out=y)
        if device != "cuda":
            return products
        products()
        sync()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            products()

        def replay() -> None:
            graph.replay()
            sync()
        return replay
    if name == "host":
        d = max(size // 8, 64)
        layers = [torch.randn(d, d, generator=g).to(device=device, dtype=dt) / d ** 0.5 for _ in range(16)]
        x0 = torch.randn(1, d, generator=g).to(device=device, dtype=dt)

        def step() -> None:
            x = x0
            for w in layers:
                x = torch.tanh(x @ w)
            float(x.sum())  # the per-step device-to-host read that paces a decode loop
        return step
    raise ValueError(name)  # parse() admits only LOADS


def blocks_summary(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per block (on, off, off, on): on minus off of mean power (W), and on over off - 1 of units
    per second and of joules per unit; their mean over blocks with a Student-t 95% CI."""
    import numpy as np

    from llem.measure.stats import mean_ci95

    by_block: dict[int, dict[str, list[dict]]] = {}
    for w in windows:
        by_block.setdefault(w["block"], {"on": [], "off": []})[w["arm"]].append(w)
    d_power, r_rate, r_jpu = [], [], []
    for arms in by_block.values():
        if not arms["on"] or not arms["off"]:
            continue

        def tot(ws, k):
            return sum(w[k] for w in ws)
        p_on = tot(arms["on"], "energy_j") / tot(arms["on"], "duration_s")
        p_off = tot(arms["off"], "energy_j") / tot(arms["off"], "duration_s")
        d_power.append(p_on - p_off)
        r_rate.append((tot(arms["on"], "units") / tot(arms["on"], "duration_s"))
                      / (tot(arms["off"], "units") / tot(arms["off"], "duration_s")) - 1)
        r_jpu.append((tot(arms["on"], "energy_j") / tot(arms["on"], "units"))
                     / (tot(arms["off"], "energy_j") / tot(arms["off"], "units")) - 1)

    def stat(v):
        x = np.asarray(v, dtype=float)
        ci = list(mean_ci95(x)) if len(x) > 1 else None
        return {"mean": float(x.mean()) if len(x) else None, "ci95": ci, "blocks": len(x)}
    off = [w for w in windows if w["arm"] == "off"]
    return {"power_on_minus_off_w": stat(d_power), "units_per_s_on_vs_off": stat(r_rate),
            "j_per_unit_on_vs_off": stat(r_jpu),
            "power_off_w": sum(w["energy_j"] for w in off) / sum(w["duration_s"] for w in off) if off else None}


def run(args) -> dict[str, Any]:
    import torch

    from llem.devices import resolve_devices
    from llem.devices.nvml import nvml_module
    from llem.measure.sampler import make_sampler
    from llem.meters.nvml import detect_period_s

    devices = resolve_devices()
    if not devices:
        raise BadArgs(f"no NVML GPU to measure ({devices.unavailable_reason}); on a machine without one, "
                      "set LLEM_SIMULATED_NVML to a simulated-NVML spec to check the script")
    gpu = devices.gpus[0]
    nv = nvml_module()
    read = lambda: nv.nvmlDeviceGetTotalEnergyConsumption(gpu.handle)  # noqa: E731
    period = detect_period_s(read)
    if period is None:
        raise RuntimeError("the energy counter did not step within 2 s")
    timeout_s = 3 * period + 0.1
    device = "cuda" if torch.cuda.is_available() else "cpu"
    one = type(devices)(gpus=[gpu])
    report: dict[str, Any] = {"args": vars(args), "gpu": {"uuid": gpu.uuid, "name": gpu.name},
                              "device": device, "counter_period_s": period, "loads": {}}
    for name in args.loads:
        unit = make_load(name, torch, device, args.size)
        window(read, unit, args.window_s, timeout_s)  # warm-up: clocks and caches, not recorded
        rows: list[dict[str, Any]] = []
        samplers = []
        for b in range(args.blocks):
            for arm in ORDER:
                s = make_sampler(args.mode, one, args.interval_s, t0=time.perf_counter()) if arm == "on" else None
                if s is not None:
                    s.start()  # its first sample and thread start fall before the window opens
                w = window(read, unit, args.window_s, timeout_s)
                if s is not None:
                    s.stop()
                    samplers.append(s.describe())
                rows.append({"block": b, "arm": arm, **w})
            last = rows[-4:]
            print(f"{name} block {b + 1}/{args.blocks}: " + ", ".join(
                f"{r['arm']} {r['power_w']:.2f} W {r['units_per_s']:.1f}/s" for r in last), flush=True)
        cpu = [s.get("cpu_s_per_sample") for s in samplers if s.get("cpu_s_per_sample") is not None]
        report["loads"][name] = {"windows": rows, **blocks_summary(rows),
                                 "sampler_cpu_s_per_sample": sum(cpu) / len(cpu) if cpu else None,
                                 "sampler_errors": sorted({e for s in samplers for e in s.get("errors") or []})}
    return report


def markdown(rep: dict[str, Any]) -> str:
    def f(s, unit, scale=1.0, digits=2):
        if s["mean"] is None:
            return "n/a"
        ci = f" [{s['ci95'][0] * scale:+.{digits}f}, {s['ci95'][1] * scale:+.{digits}f}]" if s["ci95"] else ""
        return f"{s['mean'] * scale:+.{digits}f}{ci} {unit}"
    lines = [f"Sampler ({rep['args']['mode']}, every {rep['args']['interval_s']} s) on vs off, GPU {rep['gpu']['uuid']} "
             f"({rep['gpu']['name']}), counter period {rep['counter_period_s'] * 1e3:.1f} ms, "
             f"{rep['args']['blocks']} ABBA blocks of {rep['args']['window_s']} s windows per load.", "",
             "| load | power off (W) | power on - off [95% CI] | units/s on vs off [95% CI] | J/unit on vs off [95% CI] | sampler CPU ms/sample |",
             "|---|---|---|---|---|---|"]
    for name, r in rep["loads"].items():
        cpu = r["sampler_cpu_s_per_sample"]
        cpu = f"{cpu * 1e3:.3f}" if cpu is not None else "n/a"
        lines.append(f"| {name} | {r['power_off_w']:.2f} | {f(r['power_on_minus_off_w'], 'W', 1, 3)} | "
                     f"{f(r['units_per_s_on_vs_off'], '%', 100)} | {f(r['j_per_unit_on_vs_off'], '%', 100)} | {cpu} |")
    return "\n".join(lines) + "\n"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for sampler_cost.json and sampler_cost.md")
    p.add_argument("--loads", default="idle,graph,host", help=f"comma-separated, from {', '.join(LOADS)}")
    p.add_argument("--window-s", type=float, default=3.0, help="window length before it runs on to a counter step")
    p.add_argument("--blocks", type=int, default=8, help="ABBA blocks per load (4 windows each)")
    p.add_argument("--interval-s", type=float, default=0.1, help="the sampler's interval (llem's default 0.1)")
    p.add_argument("--mode", choices=("thread", "process"), default="thread", help="energy.sampler")
    p.add_argument("--size", type=int, default=16384, help="matrix side of the graph load (16384: 512 MiB in bf16)")
    a = p.parse_args(argv)
    a.loads = [x.strip() for x in a.loads.split(",") if x.strip()]
    for name in a.loads:
        if name not in LOADS:
            p.error(f"--loads: {name!r} is not one of {', '.join(LOADS)}")
    for k, lo in (("window_s", 0.0), ("interval_s", 0.0)):
        if not getattr(a, k) > lo:
            p.error(f"--{k.replace('_', '-')}: {getattr(a, k)} must be above {lo}")
    for k in ("blocks", "size"):
        if getattr(a, k) < 1:
            p.error(f"--{k}: {getattr(a, k)} must be at least 1")
    return a


def main(argv=None) -> int:
    args = parse(argv)
    out = Path(args.out)
    try:
        rep = run(args)
    except BadArgs as err:
        print(f"sampler_cost.py: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # the counter stopped stepping: say so in one line, write nothing
        print(f"sampler_cost.py: {err}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    (out / "sampler_cost.json").write_text(json.dumps(rep, indent=1))
    md = markdown(rep)
    (out / "sampler_cost.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
