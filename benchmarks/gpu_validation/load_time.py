"""Target: llem loads a random-weight model within 2x of a bare script's load.

Each arm runs in a fresh process, interleaved, ``--repeats`` times:

- bare: import torch and transformers, create the CUDA context, import the architecture's code
  (a build on the meta device), then time ``AutoModelForCausalLM.from_config`` under
  ``torch.device(device)`` and a synchronize;
- llem: the PyTorch backend's ``start()`` (imports, CUDA context) then its ``load()`` in the
  meter-free path, timed as the harness times ``load_time_s``, with its step breakdown.

Both also report their start-up, so the whole cost of a fresh process is visible. Writes
``load_time.json`` and ``load_time.md`` under ``--out`` and exits 1 when the median llem load
exceeds ``--target-ratio`` x the median bare load.

    python benchmarks/gpu_validation/load_time.py --out OUT [--model llama-3.2-1b] [--precision bf16]
    python benchmarks/gpu_validation/load_time.py --out OUT --cpu   # tiny model on the CPU (a check)
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

BARE = """
import json, sys, time
t0 = time.perf_counter()
import torch
from transformers import AutoConfig, AutoModelForCausalLM
from llem.config.compose import load_config
from llem.models.sources import architecture_config
model, precision, device = sys.argv[1:4]
arch = architecture_config(load_config([f"model={model}"]).model)
if device.startswith("cuda"):
    torch.zeros(1, device=device)
# the architecture's modelling code imported before the timer, as llem's start() does: both arms
# then time the load alone
with torch.device("meta"):
    AutoModelForCausalLM.from_config(AutoConfig.for_model(**arch))
startup = time.perf_counter() - t0
dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
torch.manual_seed(0)
t = time.perf_counter()
with torch.device(device):
    m = AutoModelForCausalLM.from_config(AutoConfig.for_model(**arch), dtype=dtype)
if device.startswith("cuda"):
    torch.cuda.synchronize()
print(json.dumps({"startup_s": startup, "load_s": time.perf_counter() - t}))
"""

LLEM = """
import json, sys, time
t0 = time.perf_counter()
from llem.backends.pytorch import PyTorchBackend
from llem.config.compose import load_config
from llem.devices import resolve_devices
model, precision, device = sys.argv[1:4]
b = PyTorchBackend(load_config([f"model={model}", f"precision={precision}", f"device={device}"]), resolve_devices())
b.start()
startup = time.perf_counter() - t0
t = time.perf_counter()
b.load()
b.synchronize()
print(json.dumps({"startup_s": startup, "load_s": time.perf_counter() - t, "steps_s": b.load_steps_s}))
"""


def one(code: str, args) -> dict:
    r = subprocess.run([sys.executable, "-c", code, args.model, args.precision, args.device],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"arm failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="llama-3.2-1b")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--target-ratio", type=float, default=2.0)
    ap.add_argument("--cpu", action="store_true", help="tiny model on the CPU: checks the script, not a finding")
    a = ap.parse_args()
    if a.cpu:
        a.model, a.precision, a.device = "tiny", "fp32", "cpu"
    runs = {"bare": [], "llem": []}
    for _ in range(a.repeats):  # interleaved: a drift hits both arms alike
        runs["bare"].append(one(BARE, a))
        runs["llem"].append(one(LLEM, a))
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("startup_s", "load_s")} for k, v in runs.items()}
    ratio = med["llem"]["load_s"] / med["bare"]["load_s"]
    ok = ratio <= a.target_ratio
    report = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "model": a.model,
              "precision": a.precision, "device": a.device, "runs": runs, "median": med, "ratio_load": ratio,
              "target_ratio": a.target_ratio, "met": ok}
    try:
        import torch

        if a.device.startswith("cuda") and torch.cuda.is_available():
            report["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "load_time.json").write_text(json.dumps(report, indent=1))
    lines = [f"# Load time: llem against a bare `from_config` ({a.model}, {a.precision}, {a.device}"
             f"{', ' + report['gpu'] if 'gpu' in report else ''})", "", f"Command: `{report['command']}`", "",
             "| arm | start-up (median) | load (median) |", "|---|---|---|"]
    for k in ("bare", "llem"):
        lines.append(f"| {k} | {med[k]['startup_s']:.2f} s | {med[k]['load_s']:.2f} s |")
    lines += ["", f"llem load / bare load: {ratio:.2f} (target <= {a.target_ratio:g}): {'met' if ok else 'MISSED'}",
              "", "llem's load steps (each run): " + "; ".join(
                  ", ".join(f"{s} {v:.2f} s" for s, v in r["steps_s"].items()) for r in runs["llem"])]
    (out / "load_time.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
