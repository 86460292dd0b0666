"""llem's generate call path against a plain ``model.generate`` on the same model object (issue 3,
item 10: where an overhead could come from). A benchmark, not a test.

Three arms alternate call by call, in an order reversed every round, so drift hits them alike:
``llem`` (the harness's ``Workload.run`` -> backend ``generate`` -> ``model.generate``), ``bare``
(plain ``model.generate`` on random ids, plain kwargs) and ``bare_llem_kwargs`` (plain
``model.generate`` with llem's prepared tensors and llem's generate kwargs). Reports the median
time per call of each arm and its difference from ``bare``.

    python benchmarks/call_path.py [--static-cache] [--rounds 300] [--model tiny --device cpu]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--input-len", type=int, default=32)
    ap.add_argument("--output-len", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--static-cache", action="store_true")
    ap.add_argument("--out", default=None, help="write the report as JSON here too")
    a = ap.parse_args(argv)

    import torch

    from benchmarks.gpu_validation import plain_generate
    from llem.backends import backend_class
    from llem.config.compose import load_config
    from llem.datasets import load_prompts
    from llem.devices import DeviceSet, resolve_devices, select_for_job
    from llem.harness import Workload

    ov = [f"model={a.model}", f"precision={a.precision}", f"batch={a.batch}", f"dataset.num_prompts={a.batch}",
          f"dataset.input_len={a.input_len}", f"output_len={a.output_len}", f"device={a.device}", "energy=none"]
    if a.static_cache:
        ov.append("pytorch.cache_implementation=static")
    cfg = load_config(ov)
    devices = DeviceSet(unavailable_reason="device=cpu") if a.device == "cpu" else select_for_job(resolve_devices(), cfg)
    backend = backend_class(cfg.backend)(cfg, devices)
    backend.load()
    prompts = load_prompts(cfg.dataset, getattr(backend, "tokenizer", None), getattr(backend, "vocab_size", 512),
                           min_count=a.batch)
    batches = [backend.prepare(p) for p in backend.plan_batches(prompts[:a.batch], a.batch)]
    work = Workload(backend, batches)
    model, payload = backend.model, batches[0].payload
    ids, bare_kw = plain_generate(model, a.batch, a.input_len, a.output_len, a.static_cache, 0,
                                  payload["input_ids"].device)
    llem_kw = backend.generate_kwargs()

    def bare() -> None:
        with torch.inference_mode():
            model.generate(ids, **bare_kw)

    def bare_llem_kwargs() -> None:
        with torch.inference_mode():
            model.generate(**payload, **llem_kw)

    arms = {"llem": work.run, "bare": bare, "bare_llem_kwargs": bare_llem_kwargs}
    for f in arms.values():
        for _ in range(5):
            f()
    times: dict[str, list[float]] = {k: [] for k in arms}
    order = list(arms.items())
    for r in range(a.rounds):
        for k, f in (order if r % 2 else order[::-1]):
            backend.synchronize()
            t = time.perf_counter()
            f()
            backend.synchronize()
            times[k].append(time.perf_counter() - t)
    backend.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {"args": vars(a), "llem_generate_kwargs": {k: str(v) for k, v in llem_kw.items()},
              "median_call_s": med, "mean_call_s": {k: statistics.mean(v) for k, v in times.items()},
              "median_vs_bare": {k: med[k] / med["bare"] - 1 for k in med}}
    for k in arms:
        print(f"{k:17s} median {med[k] * 1e3:8.3f} ms  vs bare {report['median_vs_bare'][k]:+.2%}")
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
