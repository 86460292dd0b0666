"""Pair two ``pool_overhead.py`` pools by machine (issue 3, item 10).

Two configurations run on the same fresh machines (say the sampler on and off, or the bare loop
fed random ids and llem's own tensors) pool apart, since ``pool_overhead.py`` refuses to mix
them. Their difference is best read per machine: each machine's llem-over-bare excess in pool A
minus its excess in pool B, then the mean of those differences with a Student-t interval on
machines - 1 df. Pairing removes what a machine adds to both configurations (its CPU speed, its
GPU's power draw), which an unpaired comparison of the two pools would count as noise.

    python benchmarks/overhead/pair_pools.py POOL_A POOL_B [--batch N] [--level 0.95]

POOL_A, POOL_B: ``pool_overhead.py --out`` folders (or their pooled.json). Only machines in both
are paired; at least two are needed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from llem.measure.stats import mean_ci

METRICS = {"mean_power": "mean power", "energy_per_output_token": "J/token", "time_per_call": "time/call"}


def per_machine(pool: dict, batch: int, metric: str) -> dict[str, float]:
    """Each machine's pooled llem-over-bare mean for one metric of one batch."""
    for b in pool["batches"]:
        if b["batch"] == batch:
            # no estimate over machines (a pool of one machine): nothing to pair
            return {m["machine"]: m["mean"] for m in (b[metric]["by_machine"] or {}).get("per_machine", [])}
    raise KeyError(batch)


def pair(a: dict, b: dict, batch: int, level: float) -> dict:
    """Per metric: A - B on each machine in both pools, and the mean with its t interval. Every
    metric pairs the same machines (those with an estimate of each metric in both pools), so a
    table of them has one column a machine. ValueError when fewer than two machines qualify."""
    pa = {metric: per_machine(a, batch, metric) for metric in METRICS}
    pb = {metric: per_machine(b, batch, metric) for metric in METRICS}
    machines = sorted(set.intersection(*(set(pa[m]) & set(pb[m]) for m in METRICS)))
    if len(machines) < 2:
        raise ValueError(f"{len(machines)} machine(s) in both pools: pairing needs at least 2 "
                         "(machines are named by boot id, or by GPU UUID where no boot id was recorded)")
    out = {}
    for metric in METRICS:
        d = np.array([pa[metric][m] - pb[metric][m] for m in machines])
        lo, hi = mean_ci(d, level)
        out[metric] = {"machines": machines, "a": [pa[metric][m] for m in machines],
                       "b": [pb[metric][m] for m in machines], "a_minus_b": d.tolist(), "mean": float(d.mean()),
                       "ci": [lo, hi], "level": level}
    return out


def _load(p: str) -> dict | None:
    path = Path(p)
    path = path / "pooled.json" if path.is_dir() else path
    try:
        pool = json.loads(path.read_text())
        ok = all(m in b for b in pool["batches"] for m in METRICS)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pool if ok else None


def _bad(msg: str) -> int:
    print(f"pair_pools.py: {msg}", file=sys.stderr)
    return 2


def render(res: dict, names: tuple[str, str], batch: int) -> str:
    level = next(iter(res.values()))["level"]
    lines = [f"Batch {batch}, paired by machine: {names[0]} minus {names[1]}, llem-over-bare excess "
             f"(mean with a Student-t {level:.0%} interval on machines - 1 df):", "",
             "| metric | " + " | ".join(m[:8] for m in res["mean_power"]["machines"]) + " | mean [CI] |",
             "|---|" + "---|" * (len(res["mean_power"]["machines"]) + 1)]
    for metric, r in res.items():
        cells = [f"{a:+.2%} / {b:+.2%} = {d:+.2%}" for a, b, d in zip(r["a"], r["b"], r["a_minus_b"])]
        lines.append(f"| {METRICS[metric]} | " + " | ".join(cells) + f" | {r['mean']:+.2%} [{r['ci'][0]:+.2%}, {r['ci'][1]:+.2%}] |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pool_a")
    p.add_argument("pool_b")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--level", type=float, default=0.95)
    args = p.parse_args(argv)
    if not 0.5 < args.level < 1:
        return _bad(f"--level {args.level}: expected a confidence level between 0.5 and 1, e.g. 0.95")
    a, b = _load(args.pool_a), _load(args.pool_b)
    for pool, name in ((a, args.pool_a), (b, args.pool_b)):
        if pool is None:
            return _bad(f"{name}: not a pool_overhead.py folder or its pooled.json")
    try:
        res = pair(a, b, args.batch, args.level)
    except KeyError:
        return _bad(f"--batch {args.batch}: not pooled in both {args.pool_a} and {args.pool_b}")
    except ValueError as e:
        return _bad(str(e))
    print(render(res, (Path(args.pool_a).name, Path(args.pool_b).name), args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
