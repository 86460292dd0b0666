"""``llem run -m ... --dry-run``: the grid, one row per job, with its estimated GPU memory.

Runs nothing and writes nothing."""
from __future__ import annotations

import sys
from typing import Optional, TextIO


def dry_run_rows(plan, keys: Optional[set[str]] = None) -> tuple[list[dict], Optional[str], list[int]]:
    """``keys``: the override keys that vary between jobs, where the caller has them."""
    from llem.study.memory import GIB, architecture_of, estimate, fits, gpu_capacities

    from llem.study.progress import shown, varying

    caps, none_reason = gpu_capacities()
    if keys is None:
        keys, _ = varying([j.overrides for j in plan.jobs])
    rows, cache, archs = [], {}, {}
    for j in plan.jobs:
        c = j.config
        key = j.config_hash
        if key not in cache:
            # jobs of one model share its validated section: its architecture is read once
            arch = archs.get(id(c.model))
            if arch is None:
                arch = archs[id(c.model)] = (c.model, architecture_of(c))
            est = estimate(c, arch[1])
            cache[key] = (est, fits(c, est, caps, none_reason))
        est, fit = cache[key]
        rows.append({"job": j.job_id, "overrides": shown(j.overrides, keys or None), "backend": c.backend,
                     "model": c.model.name, "precision": c.precision, "batch": c.batch,
                     "est_gpu_mem_gib": None if est.per_gpu_bytes is None else round(est.per_gpu_bytes / GIB, 2),
                     "fits": fit if est.per_gpu_bytes is not None else f"unknown ({est.reason})",
                     "config_hash": j.config_hash, "quality": _quality_estimate(c)})
    return rows, none_reason, caps


def backend_only_lines(plan) -> list[str]:
    """One line per override of a backend's own section: which grid points took it, which left
    it out (``vllm.enforce_eager=true: backend=vllm only, in 2 grid points; left out of 2 (pytorch)``)."""
    from llem.config.compose import override_key

    lines = []
    for arg, backend in getattr(plan, "backend_only", {}).items():
        key = override_key(arg)
        took = sum(any(override_key(o) == key for o in p.overrides) for p in plan.points)
        left = [p.config.backend for p in plan.points if any(override_key(o) == key for o in p.omitted)]
        line = f"{arg}: backend={backend} only, in {took} grid point{'s' if took != 1 else ''}"
        if left:
            line += f"; left out of {len(left)} ({', '.join(sorted(set(left)))})"
        lines.append(line)
    merged = getattr(plan, "merged_points", 0)
    if merged:
        lines.append(f"{merged} combination{'s' if merged != 1 else ''} of the sweep {'were' if merged != 1 else 'was'} "
                     "the same job as another once another backend's keys were left out: planned once")
    return lines


def _quality_estimate(config) -> Optional[str]:
    """The quality evaluation's length (samples / model requests per task), or None when off."""
    if not config.quality.enabled:
        return None
    from llem.config.quality_tasks import estimate_text

    return estimate_text(config.quality)


def print_dry_run(plan, stream: Optional[TextIO] = None) -> None:
    from llem.study.plan import collector_paused

    with collector_paused():
        _print_dry_run(plan, stream)


def _print_dry_run(plan, stream: Optional[TextIO]) -> None:
    from llem.study.memory import GIB

    from llem.study.progress import varying

    out = stream or sys.stdout
    keys, common = varying([j.overrides for j in plan.jobs])
    rows, none_reason, caps = dry_run_rows(plan, keys)
    ex = plan.execution
    gpus = "no GPU found" if not caps else ", ".join(f"{c / GIB:.0f} GiB" for c in caps)
    print(f"llem dry run: {len(plan.jobs)} jobs ({len(plan.points)} grid points x {ex.grid_cycles} grid cycles, "
          f"order {ex.order}); GPUs: {gpus}; nothing was run or written", file=out)
    if common and len(plan.jobs) > 1:
        print("all jobs: " + " ".join(common), file=out)
    for line in backend_only_lines(plan):
        print(line, file=out)
    cols = [("job", "job"), ("overrides", "overrides"), ("backend", "backend"), ("model", "model"),
            ("precision", "precision"), ("batch", "batch"), ("est_gpu_mem_gib", "est. GPU GiB"), ("fits", "fits")]
    if any(r["quality"] for r in rows):
        cols.append(("quality", "quality eval (est.)"))
    table = [[h for _, h in cols]] + [["" if r[k] is None else str(r[k]) for k, _ in cols] for r in rows]
    widths = [min(60 if k != "quality" else 120, max(map(len, column))) for (k, _), column in zip(cols, zip(*table))]
    # each cell cut to its column's width and padded to it: one format per row (10,000 rows)
    fmt = "  ".join(f"{{:<{w}.{w}}}" for w in widths)
    lines = [fmt.format(*row).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    out.write("\n".join(lines) + "\n")
    out.write("estimate = what NVML will report used: weights + KV cache (input_len + output_len; twice for "
              "PyTorch) + prefill activations, or the load's peak if larger, + 1.3 GiB of CUDA context "
              "and allocator cache; vLLM counts against gpu_memory_utilization\n")
    if any(r["quality"] for r in rows):
        out.write("quality eval = per task, samples/model requests the evaluation makes after the measured cycles "
                  "(multiple choice: one loglikelihood request per choice); its energy is measured in its own windows\n")


def print_search_dry_run(plan, stream: Optional[TextIO] = None) -> None:
    """A search's dry run: what it optimises, its space, and the configs checked at the space's
    edges (every choice, each range's ends), with their estimated GPU memory."""
    from llem.study.memory import GIB, estimate, fits, gpu_capacities

    out = stream or sys.stdout
    spec = plan.spec
    caps, none_reason = gpu_capacities()
    gpus = "no GPU found" if not caps else ", ".join(f"{c / GIB:.0f} GiB" for c in caps)
    cons = ", ".join(f"{c['metric']}{c['op']}{float(c['bound']):g}" for c in spec.constraints) or "none"
    print(f"llem dry run: a search of {spec.n_trials} trials ({spec.sampler}); GPUs: {gpus}; nothing was run or written",
          file=out)
    print("objectives: " + ", ".join(f"{m} ({d})" for m, d in zip(spec.objectives, spec.directions))
          + f"; constraints: {cons}; confirm: {spec.confirm}", file=out)
    print("space: " + " ".join(f"{k}={v}" for k, v in spec.space.items()), file=out)
    if spec.fixed:
        print("every trial: " + " ".join(spec.fixed), file=out)
    rows = [["checked", "est. GPU GiB", "fits"]]
    for ovr, c in plan.checked:
        est = estimate(c)
        fit = fits(c, est, caps, none_reason) if est.per_gpu_bytes is not None else f"unknown ({est.reason})"
        rows.append([" ".join(o for o in ovr if o.split("=", 1)[0] in spec.space),
                     "" if est.per_gpu_bytes is None else f"{est.per_gpu_bytes / GIB:.2f}", str(fit)])
    widths = [min(60, max(len(r[i]) for r in rows)) for i in range(3)]
    for n, r in enumerate(rows):
        out.write("  ".join(r[i][:widths[i]].ljust(widths[i]) for i in range(3)).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")
