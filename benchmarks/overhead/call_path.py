"""llem's generate call path against a plain ``model.generate`` on the same model object (issue 3,
item 10: where an overhead could come from). A benchmark, not a test.

Three arms alternate call by call, in an order reversed every round, so drift hits them alike:
``llem`` (the harness's ``Workload.run`` -> backend ``generate`` -> ``model.generate``), ``bare``
(plain ``model.generate`` on random ids, plain kwargs) and ``bare_llem_kwargs`` (plain
``model.generate`` with llem's prepared tensors and llem's generate kwargs). Reports the median
time per call of each arm and its difference from ``bare``, and the paired difference: per round,
each arm's call against that round's bare call, as a ratio of sums with a seeded bootstrap 95% CI
over rounds (rounds are seconds apart, so clock and thermal drift cancel far better than between
multi-second windows).

``--sampler`` runs llem's sampler thread (NVML reads every ``energy.sample_interval_s``) during
every llem call, as it runs during llem's windows; it is started before and stopped after the
timed call, so the llem arm's time includes only what the thread costs the call itself.
``--sampler-arm`` instead adds a fourth arm, ``llem_sampler`` (llem's call path with the sampler
running), beside a ``llem`` arm without it: the sampler's cost to the call, alternated round by
round on one model object.

``--gc-stats`` times every pause of Python's cyclic garbage collector (``gc.callbacks``) and charges
it to the arm whose call it fell in: a host-bound ``generate`` allocates Python objects at every
step, and a full collection walks every object the process holds (torch, transformers, llem), so
a difference in how often each arm triggers one is a candidate for a per-cent difference.

    python benchmarks/overhead/call_path.py [--static-cache] [--rounds 300] [--max-s 200] [--sampler | --sampler-arm]
        [--gc-stats] [--model tiny --device cpu]
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def paired(arm: list[float], bare: list[float], samples: int = 10000, seed: int = 0) -> dict:
    """The arm's total time over the bare arm's minus 1, with a seeded bootstrap 95% CI that
    resamples rounds (each round holds one call of every arm, back to back)."""
    import numpy as np

    x, y = np.asarray(arm, dtype=float), np.asarray(bare, dtype=float)
    n = len(x)
    rng = np.random.default_rng(seed)
    boot = [(x[i].sum() / y[i].sum()) - 1 for i in (rng.integers(0, n, n) for _ in range(samples))] if n > 1 else []
    return {"rel": float(x.sum() / y.sum() - 1), "rounds": n,
            "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))] if boot else None}


class GcClock:
    """``gc.callbacks`` hook: the collector's pauses during each arm's calls, by generation, and
    every collection in ``events`` (perf_counter start, seconds, generation, objects collected)."""

    def __init__(self) -> None:
        self.arm: str | None = None
        self._t: float | None = None
        self.pauses: dict[str, list[list[float]]] = {}  # arm -> per call -> [gen0 s, gen1 s, gen2 s]
        self.counts: dict[str, list[list[int]]] = {}
        self.events: list[tuple[float, float, int, int]] = []

    def begin_call(self, arm: str) -> None:
        self.pauses.setdefault(arm, []).append([0.0, 0.0, 0.0])
        self.counts.setdefault(arm, []).append([0, 0, 0])
        self.arm = arm

    def end_call(self) -> None:
        self.arm = None

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        elif self._t is not None:
            g, pause = info["generation"], time.perf_counter() - self._t
            self.events.append((self._t, pause, g, info["collected"]))
            if self.arm is not None:
                self.pauses[self.arm][-1][g] += pause
                self.counts[self.arm][-1][g] += 1

    def report(self, call_s: dict[str, list[float]]) -> dict:
        out = {}
        for arm, per_call in self.pauses.items():
            n = len(per_call)
            tot = [sum(c[g] for c in per_call) for g in range(3)]
            out[arm] = {"calls": n,
                        "collections_per_call": [sum(c[g] for c in self.counts[arm]) / n for g in range(3)],
                        "pause_s_per_call": [t / n for t in tot],
                        "pause_share_of_call_time": sum(tot) / sum(call_s[arm]),
                        "calls_with_gen2": sum(1 for c in self.counts[arm] if c[2])}
        return out


def cpu_devices():
    """No GPU for a CPU run (its own function so a test can hand the sampler a simulated one)."""
    from llem.devices import DeviceSet

    return DeviceSet(unavailable_reason="device=cpu")


def _device_name(torch, device: str) -> str:
    return torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"


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
    ap.add_argument("--max-s", type=float, default=None,
                    help="stop after the round that passes this many seconds (a device time limit)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--sampler", action="store_true", help="llem's sampler thread runs during each llem call")
    group.add_argument("--sampler-arm", action="store_true",
                       help="a fourth arm, llem_sampler: llem's call path with the sampler thread running")
    ap.add_argument("--gc-stats", action="store_true",
                    help="time the garbage collector's pauses in each arm's calls (gc.callbacks)")
    ap.add_argument("--out", default=None, help="write the report as JSON here too")
    a = ap.parse_args(argv)

    import torch

    from benchmarks.gpu_validation.gpu_validation import plain_generate
    from llem.backends import backend_class
    from llem.config.compose import load_config
    from llem.devices import resolve_devices, select_for_job
    from llem.measure.harness import Workload, prepare_batches
    from llem.measure.sampler import Sampler

    ov = [f"model={a.model}", f"precision={a.precision}", f"batch={a.batch}", f"dataset.num_prompts={a.batch}",
          f"dataset.input_len={a.input_len}", f"output_len={a.output_len}", f"device={a.device}", "energy=none"]
    if a.static_cache:
        ov.append("pytorch.cache_implementation=static")
    cfg = load_config(ov)
    devices = cpu_devices() if a.device == "cpu" else select_for_job(resolve_devices(), cfg)
    backend = backend_class(cfg.backend)(cfg, devices)
    backend.load()
    batches = prepare_batches(cfg, backend)
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

    flag = "--sampler" if a.sampler else "--sampler-arm" if a.sampler_arm else None
    sampler = Sampler(devices, cfg.energy.sample_interval_s, time.perf_counter()) if flag else None
    if sampler is not None and not sampler.enabled:
        raise SystemExit(f"{flag}: llem's sampler cannot run here ({devices.unavailable_reason or sampler.errors})")
    sampled = "llem" if a.sampler else "llem_sampler"
    arms = {"llem": work.run, "bare": bare, "bare_llem_kwargs": bare_llem_kwargs}
    if a.sampler_arm:
        arms["llem_sampler"] = work.run
    for f in arms.values():
        for _ in range(5):
            f()
    times: dict[str, list[float]] = {k: [] for k in arms}
    gclock = GcClock() if a.gc_stats else None
    if gclock is not None:
        gc.callbacks.append(gclock)
    order = list(arms.items())
    t_start = time.perf_counter()
    for r in range(a.rounds):
        for k, f in (order if r % 2 else order[::-1]):
            if sampler is not None and k == sampled:
                sampler.start()
            backend.synchronize()
            if gclock is not None:
                gclock.begin_call(k)
            t = time.perf_counter()
            f()
            backend.synchronize()
            times[k].append(time.perf_counter() - t)
            if gclock is not None:
                gclock.end_call()
            if sampler is not None and k == sampled:
                sampler.stop()
        if a.max_s is not None and time.perf_counter() - t_start > a.max_s:
            break
    if gclock is not None:
        gc.callbacks.remove(gclock)
    backend.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {"args": vars(a), "device": _device_name(torch, a.device), "rounds_done": len(times["bare"]),
              "llem_generate_kwargs": {k: str(v) for k, v in llem_kw.items()},
              "median_call_s": med, "mean_call_s": {k: statistics.mean(v) for k, v in times.items()},
              "median_vs_bare": {k: med[k] / med["bare"] - 1 for k in med},
              "paired_vs_bare": {k: paired(times[k], times["bare"]) for k in arms if k != "bare"},
              "sampler": sampler.describe() if sampler is not None else None, "call_s": times,
              "gc": gclock.report(times) if gclock is not None else None,
              "gc_pause_s_per_call": gclock.pauses if gclock is not None else None}
    for k in arms:
        pv = report["paired_vs_bare"].get(k)
        ci = f"  paired {pv['rel']:+.2%} [{pv['ci95'][0]:+.2%}, {pv['ci95'][1]:+.2%}]" if pv and pv["ci95"] else ""
        g = report["gc"][k] if report["gc"] else None
        gcs = f"  gc {sum(g['pause_s_per_call']) * 1e3:.2f} ms/call, gen2 in {g['calls_with_gen2']} calls" if g else ""
        print(f"{k:17s} median {med[k] * 1e3:8.3f} ms  vs bare {report['median_vs_bare'][k]:+.2%}{ci}{gcs}")
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
