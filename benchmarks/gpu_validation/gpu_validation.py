"""GPU validation of llem's energy measurement (issue 3, item 10).

For each batch size of the reference workload (``no_weights`` Llama-3.2-1B, bf16, 128 input and
128 output tokens, one generate call per pass):

1. agreement: llem's NVML-counter energy vs Zeus ``ZeusMonitor`` vs the raw NVML counter, read on
   the *same* windows (observers opened/closed immediately inside llem's window edges);
2. overhead: llem's measured windows vs a bare ``model.generate`` loop written here without
   llem (plain transformers kwargs, inputs of the same shape, the same number of calls per
   window as the llem window it is paired with, raw counter read the same way: opening edge
   aligned to a counter step). By default the bare loop runs on llem's own model object
   (``--bare-model shared``; its config is compared with what plain transformers builds from the
   same architecture and recorded): with ``--static-cache`` (torch.compile + CUDA graphs) a
   second model in the process shares compile caches and CUDA-graph pools with the first, and an
   H100 run with ``--bare-model separate`` cannot tell that apart from llem's own cost. The windows are interleaved in one process, in ABBA blocks -- llem, bare, bare, llem --
   through the harness's ``between_cycles`` hook (llem's sampler is stopped while a bare window
   runs, so the bare arm is truly bare). A linear drift of the host or the GPU then cancels
   inside every block. HF ``generate`` on a 1B model is host-CPU bound (GPU utilisation 20-40%),
   so its throughput wanders by several per cent from window to window on a shared host; the
   overhead is therefore given as the ratio of sums over all blocks with a seeded bootstrap 95%
   CI over blocks, and the 1% limit counts as shown only when the CI's upper end is <= 1%.
3. compile work: every dynamo compile, Triton autotuning and CUDA graph recording torch reports
   (``compile_events.py``), with the windows it overlapped: a one-off stall in one arm.

Writes ``validation.json`` and ``validation.md`` to ``--out`` and prints the command that
reproduces them. Split the work with ``--batches 1,8`` / ``--batches 32,128`` to fit a per-command
time limit. ``--cpu`` runs a tiny CPU version (tiny model, no meters: wall time only) that the
test suite exercises.

    python benchmarks/gpu_validation/gpu_validation.py --out docs/validation/h100 --batches 1,8 --cycles 12
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.gpu_validation.compile_events import CompileEvents  # noqa: E402

AGREEMENT_LIMIT = 0.01
OVERHEAD_LIMIT = 0.01

# A bare HF generate loop without llem, measured earlier on an H100 with the same workload, 5
# generations per window, raw counter energy. Used to show that the numbers are in line, and to
# explain any difference.
BARE_REFERENCE = {1: {"output_tokens_per_s": 51, "energy_per_output_token_j": 2.78, "mean_power_w": 143},
                  8: {"output_tokens_per_s": 500, "energy_per_output_token_j": 0.300, "mean_power_w": 150},
                  32: {"output_tokens_per_s": 1604, "energy_per_output_token_j": 0.098, "mean_power_w": 157},
                  128: {"output_tokens_per_s": 6781, "energy_per_output_token_j": 0.031, "mean_power_w": 210}}


# --------------------------------------------------------------------------------------------
# meters read independently of llem (observers on llem's windows, and the bare loop's windows)
# --------------------------------------------------------------------------------------------
def next_step(read, timeout_s: float = 0.5):
    """Wait for a counter read through ``read()`` to step (outside any work) and return the new
    value (after ``timeout_s`` without a step, the current one)."""
    v0 = read()
    end = time.perf_counter() + timeout_s
    while time.perf_counter() < end:
        v = read()
        if v != v0:
            return v
        time.sleep(0.0005)
    return read()


class RawNvml:
    """The raw counter of CUDA device 0 through pynvml, found by the UUID torch reports."""

    name = "raw_nvml"

    def __init__(self) -> None:
        import pynvml
        import torch

        pynvml.nvmlInit()
        uuid = str(torch.cuda.get_device_properties(0).uuid)
        uuid = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
        self.nv = pynvml
        self.h = pynvml.nvmlDeviceGetHandleByUUID(uuid)
        self.uuid = uuid
        self.energies_j: list[float] = []

    def read_mj(self) -> int:
        return self.nv.nvmlDeviceGetTotalEnergyConsumption(self.h)

    def aligned_read_mj(self, timeout_s: float = 0.5) -> int:
        """Wait for the next counter step (outside any work) and return the new value."""
        return next_step(self.read_mj, timeout_s)

    def begin(self) -> None:
        self._v0 = self.read_mj()

    def end(self) -> None:
        self.energies_j.append((self.read_mj() - self._v0) / 1e3)


class ZeusObserver:
    name = "zeus"

    def __init__(self) -> None:
        from zeus.monitor import ZeusMonitor  # ~0.9 s import, here, before any window

        self.monitor = ZeusMonitor(gpu_indices=[0])
        self.energies_j: list[Optional[float]] = []
        self._k = 0

    def begin(self) -> None:
        self._k += 1
        self.monitor.begin_window(f"v{self._k}", sync_execution=False)

    def end(self) -> None:
        m = self.monitor.end_window(f"v{self._k}", sync_execution=False)
        self.energies_j.append(m.gpu_energy.get(0))  # {} without a GPU: no data, never 0


# --------------------------------------------------------------------------------------------
# the bare loop: plain transformers, no llem harness
# --------------------------------------------------------------------------------------------
def bare_model(model: str, precision: str, device: str, seed: int):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from llem.config.compose import load_config
    from llem.models.sources import architecture_config

    # only the architecture dict comes from llem (the same published config numbers)
    arch = architecture_config(load_config([f"model={model}"]).model)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    torch.manual_seed(seed)
    with torch.device(device):
        m = AutoModelForCausalLM.from_config(AutoConfig.for_model(**arch), dtype=dtype)
    return m.eval()


def plain_generate(model, batch: int, input_len: int, output_len: int, static_cache: bool, seed: int,
                   device) -> tuple[Any, dict[str, Any]]:
    """Random input ids and the kwargs a plain transformers user passes for a fixed-length greedy
    generation: ``model.generate(ids, **kw)``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, model.config.vocab_size, (batch, input_len), generator=g).to(device)
    kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=output_len, min_new_tokens=output_len,
              do_sample=False, num_beams=1, pad_token_id=0)
    if static_cache:
        kw["cache_implementation"] = "static"
    return ids, kw


class BareLoop:
    """``model.generate`` in a loop, with the raw counter read around each window."""

    def __init__(self, args, batch: int, raw: Optional[RawNvml], model=None, inputs=None) -> None:
        """``model``: an already loaded model (llem's own, ``--bare-model shared``); by default a
        separate one is built here with plain transformers. ``inputs``: llem's own prepared
        ``input_ids`` and ``attention_mask`` (``--bare-inputs llem``) instead of random ids."""
        import torch

        self.torch, self.args, self.raw = torch, args, raw
        self.device = "cpu" if args.cpu else "cuda:0"
        self.model = model if model is not None else bare_model(args.model, args.precision, self.device, args.seed)
        self.ids, self.kw = plain_generate(self.model, batch, args.input_len, args.output_len, args.static_cache,
                                           args.seed, self.device)
        if inputs is not None:
            self.ids, self.kw["attention_mask"] = inputs["input_ids"], inputs["attention_mask"]
        self.cache = None
        if args.static_cache and args.bare_cache == "reuse":
            # the pattern transformers documents for repeated static-cache calls, and what llem does
            from llem.backends.pytorch.decoding import cache_kwarg, new_static_cache

            del self.kw["cache_implementation"]
            self.cache_name = cache_kwarg(self.model)
            self.cache = new_static_cache(self.model, self.ids.shape[1], args.output_len)
        pass_s = []
        for _ in range(max(2, args.warmup)):
            self.sync()
            t = time.perf_counter()
            self.call()
            self.sync()
            pass_s.append(time.perf_counter() - t)
        # the same sizing rule llem uses (period / target, 3% headroom, faster of two passes)
        period = detect_period(raw) if raw else None
        need = max(args.min_window_s, period / args.quantisation_target if period else 0.0)
        self.repeats = max(1, math.ceil(need * 1.03 / min(pass_s[-2:]))) if need > 0 else 1
        self.cycles: list[dict] = []

    def sync(self) -> None:
        if not self.args.cpu:
            self.torch.cuda.synchronize()

    def call(self) -> int:
        with self.torch.inference_mode():
            if self.cache is not None:
                self.cache.reset()
                out = self.model.generate(self.ids, **self.kw, **{self.cache_name: self.cache})
            else:
                out = self.model.generate(self.ids, **self.kw)
        return int(out.shape[0]) * int(out.shape[1] - self.ids.shape[1])

    def windows(self, n: int, calls: Optional[int] = None) -> None:
        raw = self.raw
        calls = calls or self.repeats
        for _ in range(n):
            self.sync()
            v0 = raw.aligned_read_mj() if raw else None
            t0 = time.perf_counter()
            tokens = 0
            call_s: list[float] = []
            # each call stamped, as llem's backend stamps each of its calls (GenerationOutput)
            for _ in range(calls):
                tc = time.perf_counter()
                tokens += self.call()
                call_s.append(time.perf_counter() - tc)
            self.sync()
            v1 = raw.read_mj() if raw else None
            dur = time.perf_counter() - t0
            self.cycles.append({"duration_s": dur, "calls": calls, "output_tokens": tokens,
                                "energy_j": (v1 - v0) / 1e3 if raw else None, "call_s": call_s,
                                "t_open": t0, "t_close": t0 + dur})

    def close(self) -> dict[str, Any]:
        del self.model, self.cache
        if not self.args.cpu:
            self.torch.cuda.empty_cache()
        return {"repeats": self.repeats, "cycles": self.cycles, **_per_token(self.cycles)}


def detect_period(raw: RawNvml) -> Optional[float]:
    raw.aligned_read_mj()
    ts = []
    for _ in range(4):
        raw.aligned_read_mj()
        ts.append(time.perf_counter())
    return statistics.median(b - a for a, b in zip(ts, ts[1:])) if len(ts) > 1 else None


def _per_token(cycles: list[dict]) -> dict[str, Any]:
    tok = sum(c["output_tokens"] for c in cycles)
    dur = sum(c["duration_s"] for c in cycles)
    calls = sum(c["calls"] for c in cycles)
    e = [c["energy_j"] for c in cycles]
    energy = sum(e) if all(v is not None for v in e) else None
    return {"output_tokens": tok, "duration_s": dur, "time_per_call_s": dur / calls,
            "output_tokens_per_s": tok / dur, "energy_j": energy,
            "energy_per_output_token_j": energy / tok if energy is not None else None,
            "mean_power_w": energy / dur if energy is not None else None}


# --------------------------------------------------------------------------------------------
# llem on the same workload, with the observers on its windows
# --------------------------------------------------------------------------------------------
def llem_overrides(args, batch: int) -> list[str]:
    ov = [f"model={args.model}", f"precision={args.precision}", f"batch={batch}", f"dataset.num_prompts={batch}",
          f"dataset.input_len={args.input_len}", f"output_len={args.output_len}", f"seed={args.seed}",
          f"measurement.cycles={args.cycles}", f"measurement.warmup_runs={args.warmup}",
          f"measurement.quantisation_target={args.quantisation_target}",
          f"measurement.min_window_s={args.min_window_s}",
          # the prefill/decode split adds its own windows; it is not what this validates
          "measurement.phase_split=false"]
    ov += ["device=cpu", "energy=none"] if args.cpu else ["device=cuda", "energy=nvml"]
    if args.static_cache:
        ov.append("pytorch.cache_implementation=static")
    return ov + list(args.override)


class CallTimes:
    """``--per-call``: the duration of every ``generate`` call of llem's backend, as the backend
    itself timed it (``GenerationOutput.start_time`` / ``end_time``: perf_counter around
    ``model.generate``, the same clock reads the bare arm takes around its calls). The only thing
    added to llem's window is this wrapper's frame and two list appends per call (microseconds
    against calls of 0.1-1 s); off by default."""

    def __init__(self, backend_cls) -> None:
        self.cls, self.orig, self.calls, self.starts = backend_cls, backend_cls.generate, [], []
        orig, calls, starts = self.orig, self.calls, self.starts

        def generate(backend, batch, **kw):
            out = orig(backend, batch, **kw)
            starts.append(out.start_time)
            calls.append(out.end_time - out.start_time)
            return out

        backend_cls.generate = generate

    def restore(self) -> None:
        self.cls.generate = self.orig


def run_llem(args, batch: int, observers: list, job_dir: Path, between_cycles=None) -> dict[str, Any]:
    from llem.backends import backend_class
    from llem.config.compose import load_config
    from llem.measure import harness

    cfg = load_config(llem_overrides(args, batch))
    timer = CallTimes(backend_class(cfg.backend)) if args.per_call else None
    window_ends: list[int] = []  # how many calls had been made when each window closed
    closed_at: list[float] = []  # perf_counter when the hook ran: each window's close (+ a print)

    def hook(index: int, cycle, backend) -> None:
        closed_at.append(time.perf_counter())
        if timer is not None:
            window_ends.append(len(timer.calls))
        if between_cycles is not None:
            between_cycles(index, cycle, backend)

    try:
        r = harness.run(cfg, job_dir, progress=lambda m: print(f"  llem: {m}", flush=True), observers=observers,
                        between_cycles=hook if timer is not None or between_cycles is not None else None)
    finally:
        if timer is not None:
            timer.restore()
    r.save(job_dir / "result.json")
    cycles = [{"duration_s": c.duration_s, "calls": c.calls,
               "output_tokens": c.output_tokens, "energy_j": c.energy_j} for c in r.cycles]
    for c, end in zip(cycles, window_ends):
        c["call_s"] = timer.calls[end - c["calls"]:end]
    for c, t in zip(cycles, closed_at):
        c["t_open"], c["t_close"] = t - c["duration_s"], t
    m = r.measurement_methodology
    return {"cycles": cycles, **_per_token(cycles),
            "energy_adjusted_per_output_token_j": r.energy.energy_adjusted_per_output_token_j,
            "baseline_power_w": r.energy.baseline_power_w,
            "counter_update_period_s": m["window"]["counter_update_period_s"],
            "quantisation_bound_max": m.get("quantisation_bound_max"),
            "calls_per_window": m["window"]["calls_per_window"], "warnings": r.warnings,
            "energy_per_output_token_ci95": [r.stats["energy_per_output_token_j"].ci95_low,
                                             r.stats["energy_per_output_token_j"].ci95_high]}


def _rel(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return (a - b) / b if a is not None and b else None


def envelope(*cis) -> list[float]:
    """The widest envelope of several 95% CIs of one quantity: the verdict trusts none alone."""
    return [min(c[0] for c in cis), max(c[1] for c in cis)]


def ci_verdict(ci95, name: str = "95% CI") -> str:
    """Item 10's reading of an overhead CI: shown only when its upper end is inside +1%."""
    lo, hi = ci95
    if hi <= OVERHEAD_LIMIT:
        return f"shown: {name} upper end <= +1%"
    if lo > OVERHEAD_LIMIT:
        return f"exceeded: {name} lower end > +1%"
    return f"not resolved: the {name} straddles +1%"


def abba_overhead(llem_cycles: list[dict], bare_cycles: list[dict], samples: int = 10000,
                  seed: int = 0) -> dict[str, Any]:
    """llem vs bare from interleaved ABBA blocks: block k = llem window 2k, bare windows 2k and
    2k+1, llem window 2k+1. Per metric, the ratio of sums over all blocks minus 1, and a seeded
    bootstrap 95% CI resampling whole blocks (each block is balanced against a linear drift),
    widened to a Student-t interval on the per-block differences where that is wider."""
    import numpy as np

    from llem.measure.stats import mean_ci95

    n = min(len(llem_cycles), len(bare_cycles)) // 2
    blocks = [(llem_cycles[2 * k:2 * k + 2], bare_cycles[2 * k:2 * k + 2]) for k in range(n)]

    def sums(cycles, key):
        return sum(c[key] for c in cycles)

    def metric(num: str, den: str) -> Optional[dict[str, Any]]:
        if not blocks or any(c[num] is None for L, B in blocks for c in L + B):
            return None
        L = np.array([[sums(L, num), sums(L, den)] for L, B in blocks], dtype=float)
        B = np.array([[sums(B, num), sums(B, den)] for L, B in blocks], dtype=float)

        def rel(idx):
            return (L[idx, 0].sum() / L[idx, 1].sum()) / (B[idx, 0].sum() / B[idx, 1].sum()) - 1

        rng = np.random.default_rng(seed)
        boot = [rel(rng.integers(0, n, n)) for _ in range(samples)] if n > 1 else []
        per_block = [rel(np.array([k])) for k in range(n)]
        ci_boot = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))] if boot else None
        ci_t = list(mean_ci95(np.asarray(per_block), "t")) if n > 1 else None
        # a percentile bootstrap of 6-8 blocks runs narrow (llem/measure/stats.py): the verdict uses the
        # wider envelope of it and a Student-t interval on the per-block differences
        ci = envelope(ci_boot, ci_t) if n > 1 else None
        return {"rel": rel(np.arange(n)), "ci95": ci, "ci95_bootstrap": ci_boot, "ci95_t": ci_t,
                "per_block": per_block}

    time_m = metric("duration_s", "calls")
    energy_m = metric("energy_j", "output_tokens")

    def verdict(m):
        if m is None:
            return None
        return "not resolved (one block: no CI)" if m["ci95"] is None else ci_verdict(m["ci95"])

    return {"blocks": n, "design": "ABBA blocks (llem, bare, bare, llem), one process, both models resident; "
            "llem's sampler stopped during bare windows", "bootstrap_samples": samples, "seed": seed,
            "time_per_call_rel": time_m["rel"] if time_m else None,
            "time_per_call_ci95": time_m["ci95"] if time_m else None,
            "time_per_call_ci95_bootstrap": time_m["ci95_bootstrap"] if time_m else None,
            "time_per_call_ci95_t": time_m["ci95_t"] if time_m else None,
            "time_per_call_rel_per_block": time_m["per_block"] if time_m else None,
            "energy_per_output_token_rel": energy_m["rel"] if energy_m else None,
            "energy_per_output_token_ci95": energy_m["ci95"] if energy_m else None,
            "energy_per_output_token_ci95_bootstrap": energy_m["ci95_bootstrap"] if energy_m else None,
            "energy_per_output_token_ci95_t": energy_m["ci95_t"] if energy_m else None,
            "energy_per_output_token_rel_per_block": energy_m["per_block"] if energy_m else None,
            "time_verdict": verdict(time_m), "energy_verdict": verdict(energy_m),
            "regrouped_baab": regrouped_baab(llem_cycles, bare_cycles)}


def regrouped_baab(llem_cycles: list[dict], bare_cycles: list[dict]) -> Optional[dict[str, Any]]:
    """The same windows grouped the other way: llem 0 | bare 0, 1 | llem 1, 2 | bare 2, 3 | ...
    also reads as blocks (bare 2k+1, llem 2k+1, llem 2k+2, bare 2k+2), i.e. BAAB. If a difference
    came from where the block edges fall (a one-window transient, or drift that is not linear
    within a block), the two groupings disagree; an overhead of llem's shows in both. Ratio of
    sums over the BAAB blocks."""
    n = min(len(llem_cycles), len(bare_cycles)) // 2 - 1
    if n < 1:
        return None
    L = [c for k in range(n) for c in llem_cycles[2 * k + 1:2 * k + 3]]
    B = [c for k in range(n) for c in bare_cycles[2 * k + 1:2 * k + 3]]

    def rel(num: str, den: str) -> Optional[float]:
        if any(c[num] is None for c in L + B):
            return None
        return (sum(c[num] for c in L) / sum(c[den] for c in L)) / (sum(c[num] for c in B) / sum(c[den] for c in B)) - 1

    return {"blocks": n, "time_per_call_rel": rel("duration_s", "calls"),
            "energy_per_output_token_rel": rel("energy_j", "output_tokens")}


def per_call_split(llem_cycles: list[dict], bare_cycles: list[dict]) -> Optional[dict[str, Any]]:
    """``--per-call``: where each arm's window time went. ``in_calls`` is the time inside
    ``generate`` calls, ``outside_calls`` the rest of the window (loop, device sync, edge reads).
    llem's extra time (if any) then shows as slower calls (the generate path or its inputs) or as
    time between them (the harness), and a slow first call per window as a switch cost."""
    if not llem_cycles or any("call_s" not in c or len(c["call_s"]) != c["calls"] for c in llem_cycles + bare_cycles):
        return None

    def arm(cycles: list[dict]) -> dict[str, Any]:
        calls = [t for c in cycles for t in c["call_s"]]
        firsts = [c["call_s"][0] for c in cycles]
        rest = [t for c in cycles for t in c["call_s"][1:]]
        outside = [c["duration_s"] - sum(c["call_s"]) for c in cycles]
        return {"mean_call_s": statistics.mean(calls), "median_call_s": statistics.median(calls),
                "mean_first_call_s": statistics.mean(firsts),
                "mean_other_call_s": statistics.mean(rest) if rest else None,
                "mean_outside_calls_per_window_s": statistics.mean(outside),
                "outside_calls_share_of_window": sum(outside) / sum(c["duration_s"] for c in cycles)}

    L, B = arm(llem_cycles), arm(bare_cycles)
    return {"llem": L, "bare": B, "mean_call_rel": _rel(L["mean_call_s"], B["mean_call_s"]),
            "median_call_rel": _rel(L["median_call_s"], B["median_call_s"]),
            "first_call_rel": _rel(L["mean_first_call_s"], B["mean_first_call_s"])}


def _llem_batches(args, batch: int, backend) -> list:
    """The very batches llem's windows feed ``generate``: the harness's own, for this config (the
    dataset is deterministic for a config; one batch here, as num_prompts = batch)."""
    from llem.config.compose import load_config
    from llem.measure.harness import prepare_batches

    return prepare_batches(load_config(llem_overrides(args, batch)), backend)


def _llem_inputs(args, batch: int, backend) -> dict[str, Any]:
    return _llem_batches(args, batch, backend)[0].payload


def _config_vs_plain(args, model) -> dict[str, Any]:
    """Where llem's loaded model differs from the one plain transformers builds from the same
    architecture numbers (``{}`` when it does not): the shared-model A/B would otherwise hide a
    loading difference."""
    import torch
    from transformers import AutoConfig

    from llem.config.compose import load_config
    from llem.models.sources import architecture_config

    plain = AutoConfig.for_model(**architecture_config(load_config([f"model={args.model}"]).model)).to_dict()
    mine = model.config.to_dict()
    skip = {"_name_or_path", "transformers_version", "dtype", "torch_dtype", "architectures"}
    diff = {k: [mine.get(k), plain.get(k)] for k in set(mine) | set(plain) if k not in skip and mine.get(k) != plain.get(k)}
    want = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(args.precision)
    return {"differing_keys": diff, "attn_implementation": getattr(model.config, "_attn_implementation", None),
            "dtype": str(model.dtype), "dtype_as_requested": model.dtype == want}


def switch_warmup(args, batch: int, backend, bare: BareLoop) -> dict[str, Any]:
    """``--switch-warmup N``, after llem's first window and the bare warm-up: N rounds of one llem
    pass (llem's backend, its own prepared batches) then one bare call, outside every window and
    with llem's sampler stopped. Whatever one-off work the first switch from one call path to the
    other costs (a recompile, a CUDA graph re-recording, a cache rebuilt for other kwargs) is
    then paid here, not in llem's second window, the first after a bare call. Each is timed: a
    first llem pass much slower than the window's pass time is that cost."""
    from llem.measure.harness import Workload

    work = Workload(backend, _llem_batches(args, batch, backend))
    llem_s, bare_s = [], []
    for _ in range(args.switch_warmup):
        for run, into in ((work.run, llem_s), (bare.call, bare_s)):
            bare.sync()
            t = time.perf_counter()
            run()
            bare.sync()
            into.append(time.perf_counter() - t)
    print(f"  switch warm-up: llem passes {', '.join(f'{x:.3f}' for x in llem_s)} s; "
          f"bare calls {', '.join(f'{x:.3f}' for x in bare_s)} s", flush=True)
    return {"rounds": args.switch_warmup, "llem_pass_s": llem_s, "bare_call_s": bare_s,
            "where": "after llem window 1 and the bare warm-up, before bare window 1; outside every window"}


def validate_batch(args, batch: int, out: Path) -> dict[str, Any]:
    if args.cycles < 2 or args.cycles % 2:
        raise SystemExit(f"--cycles={args.cycles}: the ABBA design needs an even number >= 2")
    raw = None if args.cpu else RawNvml()
    compiles = CompileEvents()  # from before llem's load, so the warm-up's compiles are placed too
    try:
        return _validate_batch(args, batch, out, raw, compiles)
    finally:  # a failed batch must not leave its callbacks registered for the next one
        compiles.close()


def _validate_batch(args, batch: int, out: Path, raw, compiles: CompileEvents) -> dict[str, Any]:
    loops: list[BareLoop] = []
    if args.bare_model == "separate":
        print(f"batch {batch}: separate bare model (load and warm-up)", flush=True)
        loops.append(BareLoop(args, batch, raw))
    observers: list = []
    zeus_reason = None
    if not args.cpu and not args.no_observers:
        observers.append(raw)
        raw.energies_j = []
        try:
            observers.append(ZeusObserver())
        except Exception as err:  # recorded, never silently passed
            zeus_reason = f"{type(err).__name__}: {err}"

    model_check: dict[str, Any] = {}
    switched: dict[str, Any] = {}
    caches: dict[str, Any] = {}

    def bare_between(index: int, cycle, backend) -> None:
        if not loops:
            # shared: plain generate on llem's own model object, so the two arms cannot differ
            # through two models' compile caches, CUDA graphs or allocations; its warm-up runs
            # here, between windows
            print("  bare: warm-up on llem's model object", flush=True)
            model_check.update(_config_vs_plain(args, backend.model))
            loops.append(BareLoop(args, batch, raw, model=backend.model,
                                  inputs=_llem_inputs(args, batch, backend) if args.bare_inputs == "llem" else None))
            if args.static_cache:
                caches.update(llem="reuse" if getattr(backend, "_cache_kwarg", None) else "per-call",
                              bare="reuse" if loops[0].cache is not None else "per-call")
            # llem's last output starts with the ids its window fed generate
            ids, last = loops[0].ids, getattr(backend, "last_output_ids", None)
            model_check["bare_ids_equal_llem_ids"] = None if last is None else bool(
                last.shape[0] == ids.shape[0] and (last[:, :ids.shape[1]] == ids).all())
        if index == 0 and args.switch_warmup:
            switched.update(switch_warmup(args, batch, backend, loops[0]))
        # after llem window 2k: the block's two bare windows, each with as many calls as that
        # llem window made (llem's windows end at the first call boundary past their target)
        if index % 2 == 0:
            loops[0].windows(2, calls=cycle.calls)
            print(f"  bare: windows {index + 1}-{index + 2}: "
                  + ", ".join(f"{c['output_tokens'] / c['duration_s']:.1f} tok/s" for c in loops[0].cycles[-2:]),
                  flush=True)

    print(f"batch {batch}: llem, {args.cycles} windows interleaved with {args.cycles} bare windows (ABBA)", flush=True)
    llem = run_llem(args, batch, observers, out / f"batch{batch}", between_cycles=bare_between)
    bare = loops[0].close()
    compiles.close()
    res: dict[str, Any] = {"batch": batch, "bare": bare, "llem": llem}
    res["compile_events"] = compiles.describe(
        [(f"llem {k + 1}", c["t_open"], c["t_close"]) for k, c in enumerate(llem["cycles"]) if "t_open" in c]
        + [(f"bare {k + 1}", c["t_open"], c["t_close"]) for k, c in enumerate(bare["cycles"])])
    le = [c["energy_j"] for c in llem["cycles"]]
    for o in observers:
        diffs = [_rel(a, b) for a, b in zip(le, o.energies_j)]
        res[o.name] = {"energies_j": o.energies_j, "rel_diff_llem_vs_this": diffs,
                       "max_abs_rel_diff": max(abs(d) for d in diffs) if diffs and None not in diffs else None}
    if zeus_reason:
        res["zeus"] = {"unavailable": zeus_reason}
    res["overhead"] = {
        **abba_overhead(llem["cycles"], bare["cycles"], seed=args.seed),
        "calls_per_window": {"llem": [c["calls"] for c in llem["cycles"]], "bare": [c["calls"] for c in bare["cycles"]]},
        "order": f"{args.cycles // 2} blocks of llem, bare, bare, llem; one process",
        "bare_model": "llem's own model object (plain generate on it)" if args.bare_model == "shared"
        else "a separate model object built with plain transformers (same architecture and dtype)",
        "llem_model_config_vs_plain_transformers": model_check or None,
        "bare_inputs": "llem's prepared input tensors" if args.bare_inputs == "llem" else "random ids of the same shape",
        "switch_warmup": switched or None,
        # reuse: one StaticCache for all calls, reset before each; per-call: transformers builds one per call
        "static_cache": caches or None,
    }
    if args.per_call:
        res["overhead"]["per_call"] = per_call_split(llem["cycles"], bare["cycles"])

    def check(v, lim):
        return None if v is None else abs(v) <= lim

    ov = res["overhead"]

    def upper_within(ci):
        return None if ci is None else ci[1] <= OVERHEAD_LIMIT

    res["checks"] = {
        "llem_vs_zeus_within_1pct": check(res.get("zeus", {}).get("max_abs_rel_diff"), AGREEMENT_LIMIT),
        "llem_vs_raw_nvml_within_1pct": check(res.get("raw_nvml", {}).get("max_abs_rel_diff"), AGREEMENT_LIMIT),
        # overhead: llem may not be slower or costlier by more than 1%; shown only when the CI's
        # upper end is inside the limit (faster is noise, not a failure)
        "time_overhead_at_most_1pct": upper_within(ov["time_per_call_ci95"]),
        "energy_overhead_at_most_1pct": upper_within(ov["energy_per_output_token_ci95"]),
    }
    if not args.cpu and batch in BARE_REFERENCE:
        ref = BARE_REFERENCE[batch]
        res["bare_reference"] = {**ref, "ratio_llem_to_reference": {
            k: (llem[k] / v if llem.get(k) is not None else None) for k, v in ref.items()}}
    return res


def num(v, spec=".4g") -> str:
    """A table cell: the number, or n/a when it was not measured."""
    return "n/a" if v is None else format(v, spec)


def pct(v) -> str:
    return "n/a" if v is None else f"{v:+.2%}"


def markdown(report: dict[str, Any]) -> str:
    f = num

    def ci(c):
        return "" if c is None else f"[{c[0]:+.2%}, {c[1]:+.2%}]"

    lines = [f"# llem GPU validation ({report['device']})", "",
             f"Reproduce: `{report['command']}` (commit {report['commit']})", "",
             "| batch | llem tok/s | llem J/token | adjusted J/token | mean W | llem vs Zeus (max) | llem vs raw NVML (max) "
             "| time/call vs bare [95% CI] | J/token vs bare [95% CI] | quantisation bound | ABBA blocks |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["batches"]:
        L = r["llem"]
        lines.append(
            f"| {r['batch']} | {f(L['output_tokens_per_s'], '.1f')} | {f(L['energy_per_output_token_j'])} | "
            f"{f(L['energy_adjusted_per_output_token_j'])} | {f(L['mean_power_w'], '.1f')} | "
            f"{pct(r.get('zeus', {}).get('max_abs_rel_diff'))} | {pct(r.get('raw_nvml', {}).get('max_abs_rel_diff'))} | "
            f"{pct(r['overhead']['time_per_call_rel'])} {ci(r['overhead']['time_per_call_ci95'])} | "
            f"{pct(r['overhead']['energy_per_output_token_rel'])} {ci(r['overhead']['energy_per_output_token_ci95'])} | "
            f"{pct(L['quantisation_bound_max'])} | {r['overhead']['blocks']} |")
    lines += ["", f"Bare arm: {report['batches'][0]['overhead']['bare_model']}." if report["batches"] else "",
              "", "Checks (None = could not be evaluated, with the reason in validation.json):", ""]
    for r in report["batches"]:
        lines.append(f"- batch {r['batch']}: " + ", ".join(f"{k}={v}" for k, v in r["checks"].items()))
        lines.append(f"  overhead: time {r['overhead']['time_verdict']}; energy {r['overhead']['energy_verdict']}")
        ce = r.get("compile_events")
        if ce and not ce["available"]:
            lines.append(f"  compile work: not recorded ({ce['reason']})")
        elif ce:
            lines.append(f"  compile work: {len(ce['spans'])} spans, {ce['before_first_window']} before the first window, "
                         f"{ce['in_windows']} inside windows ({ce['in_windows_s']:.2f} s"
                         + (f"; {', '.join(ce['windows_hit'])}" if ce["windows_hit"] else "") + ")")
        pc = r["overhead"].get("per_call")
        if pc:
            lines.append(f"  per call: llem vs bare mean {pct(pc['mean_call_rel'])}, median {pct(pc['median_call_rel'])}, "
                         f"first call of a window {pct(pc['first_call_rel'])}; outside the calls per window "
                         f"llem {pc['llem']['mean_outside_calls_per_window_s'] * 1e3:.1f} ms, "
                         f"bare {pc['bare']['mean_outside_calls_per_window_s'] * 1e3:.1f} ms")
    if any("bare_reference" in r for r in report["batches"]):
        lines += ["", "Against a bare-generate reference measured earlier on an H100 (ratio llem / reference):", ""]
        for r in report["batches"]:
            if "bare_reference" in r:
                lines.append(f"- batch {r['batch']}: " + ", ".join(
                    f"{k} {f(v, '.3f')}" for k, v in r["bare_reference"]["ratio_llem_to_reference"].items()))
    return "\n".join(lines) + "\n"


def _commit() -> Optional[str]:
    # a copy of the tree whose git metadata lags its files (copied to a GPU machine) names the real one here
    if os.environ.get("LLEM_COMMIT"):
        return os.environ["LLEM_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except Exception:
        return None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory for validation.json / validation.md")
    p.add_argument("--batches", default="1,8,32,128", help="comma-separated batch sizes")
    p.add_argument("--cycles", type=int, default=12,
                   help="measured windows per batch, for llem and for bare (even: ABBA blocks of two each)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--model", default=None)
    p.add_argument("--precision", default=None)
    p.add_argument("--input-len", type=int, default=None)
    p.add_argument("--output-len", type=int, default=None)
    p.add_argument("--quantisation-target", type=float, default=0.005)
    p.add_argument("--min-window-s", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu", action="store_true", help="tiny CPU mode: tiny model, no meters, wall time only")
    p.add_argument("--bare-model", choices=("shared", "separate"), default="shared",
                   help="shared: the bare loop runs plain generate on llem's own model object (default: "
                        "with torch.compile/CUDA graphs two models can interfere); separate: its own model")
    p.add_argument("--override", action="append", default=[],
                   help="extra llem override for the llem arm, e.g. energy.sample_interval_s=null (repeatable)")
    p.add_argument("--no-observers", action="store_true",
                   help="no Zeus / raw-counter observers inside llem's windows (agreement not checked): "
                        "isolates llem's own overhead from the observers'")
    p.add_argument("--bare-inputs", choices=("random", "llem"), default="random",
                   help="random: the bare loop's own random ids (plain transformers usage); llem: the input "
                        "tensors llem's backend prepared (with --bare-model shared, the two arms then differ "
                        "only in llem's harness around the call)")
    p.add_argument("--switch-warmup", type=int, default=0, metavar="N",
                   help="after llem's first window and the bare warm-up, N rounds of one llem pass then one "
                        "bare call, outside every window: one-off costs of switching call paths paid there "
                        "(0: the design of the runs pooled so far)")
    p.add_argument("--per-call", action="store_true",
                   help="record every generate call's duration in llem's arm too (the bare arm always does) and "
                        "split each window into time inside and outside the calls (attributes an overhead; "
                        "adds a wrapper frame and a list append per llem call)")
    p.add_argument("--static-cache", action="store_true",
                   help="both arms generate with cache_implementation=static, which transformers compiles "
                        "into CUDA graphs on a GPU: the host no longer paces the GPU, so throughput stops "
                        "wandering with host-CPU noise and a 1%% overhead becomes resolvable")
    p.add_argument("--bare-cache", choices=("reuse", "per-call"), default="reuse",
                   help="with --static-cache, the bare loop's cache: reuse: one StaticCache reset before each "
                        "call, as llem does by default (pytorch.reuse_static_cache); per-call: transformers "
                        "builds a new one per call (the runs pooled before this flag; llem did the same then)")
    a = p.parse_args(argv)
    if a.switch_warmup < 0:
        p.error(f"--switch-warmup={a.switch_warmup}: a count of rounds, 0 or more")
    cpu_defaults = {"model": "tiny", "precision": "fp32", "input_len": 32, "output_len": 16, "min_window_s": 0.3}
    gpu_defaults = {"model": "llama-3.2-1b", "precision": "bf16", "input_len": 128, "output_len": 128,
                    "min_window_s": 0.0}
    for k, v in (cpu_defaults if a.cpu else gpu_defaults).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.batch_list = [int(b) for b in a.batches.split(",") if b.strip()]
    return a


def idle_baseline_first(args) -> dict[str, Any]:
    """Measure (and cache) llem's idle baseline before any model touches the GPU: the bare model
    loads and warms up before llem's experiment in each batch, and a baseline taken right after it would
    catch the GPU still at high clocks. llem's experiments then reuse the cached idle value."""
    from llem.config.compose import load_config
    from llem.devices import resolve_devices
    from llem.measure.baseline import measure_baseline
    from llem.meters.select import select_meter

    cfg = load_config(llem_overrides(args, args.batch_list[0]))
    devices = resolve_devices()
    meter, _ = select_meter(cfg.energy, devices)
    b = measure_baseline(meter, devices, cfg.energy.baseline)
    meter.close()
    print(f"idle baseline: {b.total_power_w} W (cached={b.cached}, settle={b.settle})", flush=True)
    return b.describe()


def _machine() -> dict[str, Any]:
    """Which machine ran this: runs on several GPUs of one host share its CPU and its noise, so
    pool_overhead.py counts machines as well as GPUs. The boot id tells machines apart where
    every VM has the same host name."""
    from llem.environment.snapshot import boot_id, cpu_model

    return {"node": platform.node(), "boot_id": boot_id(), "cpu": cpu_model(), "cpus": os.cpu_count()}


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/gpu_validation/gpu_validation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    device = "cpu: " + (platform.processor() or platform.machine())
    if not args.cpu:
        import torch

        if not torch.cuda.is_available():
            print("no CUDA GPU: run with --cpu for the CPU mode", file=sys.stderr)
            return 2
        device = torch.cuda.get_device_name(0)
    t0 = time.perf_counter()
    report: dict[str, Any] = {"device": device, "machine": _machine(), "command": command, "commit": _commit(),
                              "args": {k: v for k, v in vars(args).items() if k != "batch_list"}, "batches": []}
    if not args.cpu:
        report["idle_baseline"] = idle_baseline_first(args)
    for b in args.batch_list:
        report["batches"].append(validate_batch(args, b, out))
        # written after every batch, so a command killed by its time limit keeps what it finished
        (out / "validation.json").write_text(json.dumps(report, indent=2, default=str))
        (out / "validation.md").write_text(markdown(report))
    report["wall_s"] = time.perf_counter() - t0
    (out / "validation.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "validation.md").write_text(markdown(report))
    print(markdown(report))
    print(f"reproduce: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
