"""Pool the ABBA overhead blocks of several ``gpu_validation.py`` runs (issue 3, item 10).

One run gives 4-8 blocks; on an H100 under its power cap, adjacent 5 s windows of the same
``generate`` vary by several per cent, so one run's 95% CI is about +/-1-2% wide. This reads the
per-block relative differences (llem vs bare, time per call and J/token) of every run given, per
batch, and reports their mean with a seeded bootstrap 95% CI that resamples blocks within each
run (a stratified bootstrap: every run keeps its block count, so no run can stand in for another
host's). The verdict's CI is the widest envelope of that, a Student-t interval over all blocks
(a percentile bootstrap of few blocks runs narrow) and, with two runs or more, two estimates
over runs: the inverse-variance weighted (fixed-effect) mean, which trusts a quiet run more, and
a random-effects mean (DerSimonian-Laird between-run variance, Hartung-Knapp t interval on
runs - 1 df), which counts the run, not the block, as the unit of replication. A run's variance
estimated from 4-8 blocks is itself noisy: the fixed effect then overweights runs whose blocks
happened to agree (its CI runs narrow), and Cochran's Q runs above its df even when the runs share
one value. Runs on one machine (its GPUs side by side, or one after another) share its CPU and
background load, so with two machines or more the envelope also holds a random-effects mean over
machines (each machine's runs pooled first; Hartung-Knapp on machines - 1 df): it counts the
machine as the unit of replication, and with few machines it is the widest. Runs are pooled only
when they measured the same workload with the same llem configuration; anything else is refused.

    python benchmarks/overhead/pool_overhead.py RUN_DIR_OR_VALIDATION_JSON ... [--out DIR] [--looks N]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# what must match for two runs' blocks to measure the same thing
# (the window length too: a window of 2 calls carries its edges' costs over 2 calls, one of 13 over 13)
# (and the bare arm's inputs: one fixed prompt at batch 1 is one fixed greedy path, and GPU power
# depends on the data, so random ids and llem's prompt may draw different power at the same speed)
SAME = ("model", "precision", "input_len", "output_len", "static_cache", "bare_model", "override", "no_observers",
        "switch_warmup", "quantisation_target", "min_window_s", "bare_inputs")
# what runs made before an argument existed did, as it is now spelled
BEFORE = {"switch_warmup": 0, "bare_inputs": "random"}


def arg(rep: dict[str, Any], key: str) -> Any:
    return rep["args"].get(key, BEFORE.get(key))


def static_caches(rep: dict[str, Any]) -> Optional[dict[str, str]]:
    """Which arm reused one StaticCache and which let transformers build one per call (a few
    percent apart at batch 1): recorded per batch since --bare-cache; before it the bare loop
    built one per call, and llem did too unless its result.json says reuse_static_cache."""
    if not arg(rep, "static_cache"):
        return None
    for b in rep["batches"]:
        if b["overhead"].get("static_cache"):
            return b["overhead"]["static_cache"]
    llem = "per-call"
    for res in sorted(Path(rep["_path"]).parent.glob("batch*/result.json")):
        pt = json.loads(res.read_text()).get("config", {}).get("pytorch", {})
        llem = "reuse" if pt.get("reuse_static_cache") and pt.get("cache_implementation") == "static" else "per-call"
    return {"llem": llem, "bare": "per-call"}


class Refused(Exception):
    """Bad input: a run that is not there or does not pool with the others."""


def load(path: str) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        p = p / "validation.json"
    if not p.is_file():
        raise Refused(f"run={path!r}: no validation.json there (a gpu_validation.py --out folder is expected)")
    try:
        rep = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        rep = None
    if not isinstance(rep, dict) or "args" not in rep or "batches" not in rep:
        raise Refused(f"run={path!r}: not a gpu_validation.py validation.json (a run's --out folder or its "
                      "validation.json is expected)")
    rep["_path"] = str(p)
    return rep


def gpu(rep: dict[str, Any]) -> Optional[str]:
    uuids = sorted((rep.get("idle_baseline") or {}).get("power_w") or {})
    return ",".join(uuids) or None


def machine(rep: dict[str, Any]) -> Optional[str]:
    """The machine's boot id; runs from before gpu_validation.py recorded it all ran on one-GPU
    machines, where the GPU names the machine."""
    return (rep.get("machine") or {}).get("boot_id") or gpu(rep)


def pooled(per_run: list[list[float]], machines: Optional[list[str]] = None, samples: int = 10000,
           seed: int = 0, looks: int = 1) -> dict[str, Any]:
    """``machines[i]`` names the machine run i ran on (default: every run on its own machine).
    ``looks`` > 1 adds the ``sequential`` reading: the pool has been read that many times as its
    runs accumulated, and adding runs until a reading says "shown" makes a false "shown" likelier
    than 5%, so the same envelope is also taken at the Bonferroni level 1 - 0.05 / looks, which
    keeps the chance that any reading falsely says "shown" at or under 5% (conservative:
    successive readings share most of their runs)."""
    import numpy as np

    from benchmarks.gpu_validation.gpu_validation import ci_verdict, envelope
    from llem.measure.stats import mean_ci

    machines = machines or [str(i) for i in range(len(per_run))]
    groups: dict[str, list] = {}
    for a, m in zip(per_run, machines):
        if len(a):
            groups.setdefault(m, []).append(np.asarray(a, dtype=float))
    arrs = [np.asarray(a, dtype=float) for a in per_run if len(a)]
    allv = np.concatenate(arrs)
    rng = np.random.default_rng(seed)
    boot = [np.concatenate([a[rng.integers(0, len(a), len(a))] for a in arrs]).mean() for _ in range(samples)]

    def estimates(level: float):
        q = (1 + level) / 2  # exactly 0.975 at 95%
        ci_boot = [float(np.percentile(boot, 100 - 100 * q)), float(np.percentile(boot, 100 * q))]
        return ci_boot, list(mean_ci(allv, level, "t")), [fixed_effect(arrs, level), random_effects(arrs, level),
                                                          machine_effects(groups, level)]

    # the verdict uses the widest envelope of the stratified bootstrap, a Student-t interval and
    # the fixed- and random-effects estimates over runs and over machines: each weighs the runs
    # differently, and each assumes a different unit of replication
    ci_boot, ci_t, (fe, rnd, by_machine) = estimates(0.95)
    if rnd is not None:
        rnd["if_runs_agree"] = agreeing_runs(arrs, rnd["q"], seed=seed)
    lo, hi = envelope(ci_boot, ci_t, *[e["ci95"] for e in (fe, rnd, by_machine) if e])
    out = {"mean": float(allv.mean()), "ci95": [lo, hi], "ci95_bootstrap": ci_boot, "ci95_t": ci_t,
           "fixed_effect": fe, "random_effects": rnd, "by_machine": by_machine, "blocks": int(allv.size),
           "verdict": ci_verdict([lo, hi])}
    if looks > 1:
        level = 1 - 0.05 / looks
        b, t, more = estimates(level)
        ci = envelope(b, t, *[e["ci95"] for e in more if e])  # "ci95" here: the interval at ``level``
        out["sequential"] = {"looks": looks, "level": level, "ci": ci,
                             "verdict": ci_verdict(ci, f"{level:.2%} CI (Bonferroni over {looks} readings)")}
    return out


def _runs_with_variance(arrs) -> list:
    return [a for a in arrs if len(a) > 1 and a.std(ddof=1) > 0]


def fixed_effect(arrs, level: float = 0.95) -> Optional[dict[str, Any]]:
    """Inverse-variance weighted mean of the runs' mean differences (a run with noisier blocks
    counts less), its 95% CI (t with the blocks' pooled degrees of freedom) and Cochran's Q: Q
    well above its degrees of freedom (runs - 1) says the runs do not measure one common value."""
    import numpy as np

    from llem.measure.stats import t_quantile

    runs = _runs_with_variance(arrs)
    if len(runs) < 2:
        return None
    m = np.array([a.mean() for a in runs])
    w = np.array([len(a) / a.var(ddof=1) for a in runs])
    est, se = float((w * m).sum() / w.sum()), float(1 / np.sqrt(w.sum()))
    half = t_quantile((1 + level) / 2, int(sum(len(a) - 1 for a in runs))) * se
    return {"mean": est, "ci95": [est - half, est + half], "runs": len(runs),
            "q": float((w * (m - est) ** 2).sum()), "q_df": len(runs) - 1}


def random_effects(arrs, level: float = 0.95) -> Optional[dict[str, Any]]:
    """Random-effects mean of the runs' mean differences: each run's own value scatters around
    the common one with a between-run variance tau^2 (DerSimonian-Laird, from Cochran's Q), so a
    run counts 1 / (its within-run variance + tau^2). The 95% CI is Hartung-Knapp's (t on runs - 1
    df, its variance scale kept at 1 or more): with few runs it is wide, as it should be. I^2 is
    the share of the runs' scatter that the within-run noise does not explain."""
    import numpy as np

    runs = _runs_with_variance(arrs)
    if len(runs) < 2:
        return None
    return _dl_hk(np.array([a.mean() for a in runs]), np.array([a.var(ddof=1) / len(a) for a in runs]), level)


def _dl_hk(m, v, level: float = 0.95) -> dict[str, Any]:
    """DerSimonian-Laird tau^2 and the Hartung-Knapp interval for estimates m with variances v."""
    import numpy as np

    from llem.measure.stats import t_quantile

    k = len(m)
    w = 1 / v
    fe = (w * m).sum() / w.sum()
    q = float((w * (m - fe) ** 2).sum())
    c = w.sum() - (w ** 2).sum() / w.sum()
    tau2 = max(0.0, (q - (k - 1)) / c)
    ws = 1 / (v + tau2)
    est = float((ws * m).sum() / ws.sum())
    scale = max(1.0, float((ws * (m - est) ** 2).sum()) / (k - 1))
    se2 = scale / ws.sum()
    half = t_quantile((1 + level) / 2, k - 1) * float(np.sqrt(se2))
    return {"mean": est, "ci95": [est - half, est + half], "runs": k, "se2": float(se2), "tau": float(np.sqrt(tau2)),
            "i2": max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0, "q": q, "q_df": k - 1,
            "method": "DerSimonian-Laird tau^2, Hartung-Knapp t interval (scale >= 1)"}


def machine_effects(groups: dict[str, list], level: float = 0.95) -> Optional[dict[str, Any]]:
    """The random-effects estimate with the machine, not the run, as the unit: runs on GPUs of one
    machine (or one after another on it) share its CPU and its background load, so a machine can
    shift all its runs alike, and counting its runs as independent would then make the CI too
    narrow. Each machine's estimate is the random-effects mean of its runs (Hartung-Knapp
    variance), or a lone run's block mean; machines then pool by DerSimonian-Laird and
    Hartung-Knapp on machines - 1 df. ``groups`` maps a machine's name to its runs' blocks; each
    ``per_machine`` entry names its machine."""
    import numpy as np

    est, var, names = [], [], []
    for name, arrs in groups.items():
        runs = _runs_with_variance(arrs)
        if len(runs) == 1:
            est.append(runs[0].mean())
            var.append(runs[0].var(ddof=1) / len(runs[0]))
            names.append(name)
        elif runs:
            r = random_effects(runs, level)
            est.append(r["mean"])
            var.append(r["se2"])
            names.append(name)
    if len(est) < 2:
        return None
    out = _dl_hk(np.array(est), np.array(var), level)
    out["machines"] = out.pop("runs")
    out["per_machine"] = [{"machine": n, "mean": float(e), "se": float(np.sqrt(v))} for n, e, v in zip(names, est, var)]
    return out


def agreeing_runs(arrs, q_observed: float, sims: int = 2000, seed: int = 0) -> dict[str, Any]:
    """What tau and Q look like when every run measures one value: pools of simulated runs with
    the real block counts and the real pool's mean block variance (normal blocks, seeded). Few
    blocks per run make tau > 0 and Q > df common even then; a real between-run scatter shows as
    an observed Q that few of these pools reach."""
    import numpy as np

    runs = _runs_with_variance(arrs)
    sd = float(np.sqrt(np.mean([a.var(ddof=1) for a in runs])))
    rng = np.random.default_rng(seed)
    taus, qs = [], []
    for _ in range(sims):
        r = random_effects([rng.normal(0.0, sd, len(a)) for a in runs])
        taus.append(r["tau"])
        qs.append(r["q"])
    return {"simulated_pools": sims, "block_sd": sd, "tau_median": float(np.median(taus)),
            "tau_p95": float(np.percentile(taus, 95)), "q_median": float(np.median(qs)),
            "share_with_q_at_least_observed": float(np.mean(np.asarray(qs) >= q_observed))}


def _mean_se(xs) -> dict[str, Any]:
    import numpy as np

    xs = np.asarray(xs, dtype=float)
    return {"runs": int(xs.size), "mean": float(xs.mean()),
            "se": float(xs.std(ddof=1) / np.sqrt(xs.size)) if xs.size > 1 else None}


def by_block_position(arrs) -> list[dict[str, Any]]:
    """Mean and SE over runs of each run's k-th block (its k-th ABBA block in time). A start-up
    transient in one arm shows as early blocks off the later ones; the verdict averages it in."""
    return [{"block": k + 1, **_mean_se([a[k] for a in arrs if len(a) > k])}
            for k in range(max(len(a) for a in arrs))]


def by_window_position(runs: list[dict[str, Any]]) -> Optional[list[dict[str, Any]]]:
    """Each run's windows in time order (llem 1, bare 1, bare 2, llem 2, llem 3, ...), time per
    call over the median of the run's windows, as mean and SE over runs. A one-off cost shows in
    one position of one arm (a block averages it with three other windows). None when the runs
    carry no per-window figures."""
    import numpy as np

    seqs = []
    for b in runs:
        order = [(f"{PLACES[p].split()[0]} {2 * k + 1 + (p in ('B2', 'L2'))}", c)
                 for k, w in enumerate(_block_windows(b)) for p, c in w.items()]
        if not order:
            continue
        t = np.array([c["duration_s"] / c["calls"] for _, c in order])
        seqs.append([(name, x) for (name, _), x in zip(order, t / np.median(t) - 1)])
    if not seqs:
        return None
    return [{"position": pos + 1, "window": next(q[pos][0] for q in seqs if len(q) > pos),
             **_mean_se([q[pos][1] for q in seqs if len(q) > pos])} for pos in range(max(len(q) for q in seqs))]


# a block's windows in time order: llem window 2k, bare windows 2k and 2k+1, llem window 2k+1
PLACES = {"L1": "llem 1", "B1": "bare 1", "B2": "bare 2", "L2": "llem 2"}


def _block_windows(b: dict[str, Any], energy: bool = False) -> list[dict[str, Any]]:
    """A run's ABBA blocks as {L1, B1, B2, L2: cycle}, in time order; [] without per-window
    figures (or, with ``energy``, without a counter reading in every window)."""
    L, B = (b.get("llem") or {}).get("cycles"), (b.get("bare") or {}).get("cycles")
    if not L or not B or (energy and any(c.get("energy_j") is None for c in L + B)):
        return []
    return [{"L1": L[2 * k], "B1": B[2 * k], "B2": B[2 * k + 1], "L2": L[2 * k + 1]}
            for k in range(min(len(L), len(B)) // 2)]


def power_rel_per_block(b: dict[str, Any]) -> list[float]:
    """Per block, the mean power of llem's two windows over the bare arm's two, minus 1: the
    part of the J/token difference that is not a time difference."""
    def watts(cs):
        return sum(c["energy_j"] for c in cs) / sum(c["duration_s"] for c in cs)
    return [watts([w["L1"], w["L2"]]) / watts([w["B1"], w["B2"]]) - 1 for w in _block_windows(b, energy=True)]


def mean_power(runs: list[dict[str, Any]], machines: list[str]) -> Optional[dict[str, Any]]:
    """``power_rel_per_block`` pooled like time and energy (no verdict: item 10 limits those two)."""
    per_run = [power_rel_per_block(b) for b in runs]
    if not all(per_run):
        return None
    out = pooled(per_run, machines)
    out.pop("verdict", None)
    return out


def by_position_in_block(runs: list[dict[str, Any]]) -> Optional[dict[str, list[dict[str, Any]]]]:
    """Each window's mean power and time per call over its block's mean, by its place in the block
    (llem 1, bare 1, bare 2, llem 2), as mean and SE over every block of every run: a cost tied
    to the arm shows in both llem places, a drift inside the block in the order of all four."""
    import numpy as np

    blocks = [w for b in runs for w in _block_windows(b, energy=True)]
    if not blocks:
        return None
    out: dict[str, list[dict[str, Any]]] = {}
    for metric, fn in (("mean_power", lambda c: c["energy_j"] / c["duration_s"]),
                       ("time_per_call", lambda c: c["duration_s"] / c["calls"])):
        rel: dict[str, list[float]] = {k: [] for k in PLACES}
        for w in blocks:
            ref = float(np.mean([fn(c) for c in w.values()]))
            for k, c in w.items():
                rel[k].append(fn(c) / ref - 1)
        out[metric] = [{"window": PLACES[k], "blocks": len(v), **{x: y for x, y in _mean_se(v).items() if x != "runs"}}
                       for k, v in rel.items()]
    return out


def pool(reports: list[dict[str, Any]], looks: int = 1) -> dict[str, Any]:
    """``looks`` > 1 adds each verdict's ``sequential`` reading (see ``pooled``)."""
    ref = reports[0]
    theirs = static_caches(ref)  # reads result.json files for runs from before --bare-cache: once
    for r in reports[1:]:
        for k in SAME:
            if arg(r, k) != arg(ref, k):
                raise Refused(f"{k}={arg(r, k)!r} in {r['_path']} differs from {arg(ref, k)!r} in "
                              f"{reports[0]['_path']}: only runs of the same workload and llem configuration pool")
        mine = static_caches(r)
        if mine != theirs:
            raise Refused(f"static caches {mine} in {r['_path']} differ from {theirs} in "
                          f"{reports[0]['_path']}: only runs of the same workload and llem configuration pool")
    by_batch: dict[int, list[tuple[dict, dict]]] = {}
    for r in reports:
        for b in r["batches"]:
            if b["overhead"].get("time_per_call_rel_per_block"):
                by_batch.setdefault(b["batch"], []).append((r, b))
    out = {"runs": [{"path": r["_path"], "gpu": gpu(r), "machine": machine(r), "commit": r.get("commit"),
                     "command": r.get("command")} for r in reports],
           "workload": {**{k: arg(ref, k) for k in SAME}, "static_caches": theirs},
           "design": __doc__.split("\n\n")[1].replace("\n", " ").replace("``", "`"), "batches": []}
    if looks > 1:
        out["looks"] = looks
    for batch, rows in sorted(by_batch.items()):
        machines = [machine(r) or "?" for r, _ in rows]
        metrics = {m: pooled([b["overhead"][f"{m}_rel_per_block"] for _, b in rows], machines, looks=looks)
                   for m in ("time_per_call", "energy_per_output_token")}
        out["batches"].append({
            "batch": batch, "runs": len(rows), "gpus": sorted({gpu(r) or "?" for r, _ in rows}),
            "machines": sorted(set(machines)), **metrics,
            "by_block_position": {
                m: by_block_position([b["overhead"][key] for _, b in rows])
                for m, key in (("time_per_call", "time_per_call_rel_per_block"),
                               ("energy_per_output_token", "energy_per_output_token_rel_per_block"))},
            "time_per_call_by_window_position": by_window_position([b for _, b in rows]),
            "mean_power": mean_power([b for _, b in rows], machines),
            "by_position_in_block": by_position_in_block([b for _, b in rows]),
            "per_run": [{"path": r["_path"], "time_per_call_rel": b["overhead"]["time_per_call_rel"],
                         "time_per_call_ci95": b["overhead"]["time_per_call_ci95"],
                         "energy_per_output_token_rel": b["overhead"]["energy_per_output_token_rel"],
                         "energy_per_output_token_ci95": b["overhead"]["energy_per_output_token_ci95"],
                         "blocks": b["overhead"]["blocks"]} for r, b in rows],
        })
    return out


def markdown(rep: dict[str, Any]) -> str:
    def f(m):
        return f"{m['mean']:+.2%} [{m['ci95'][0]:+.2%}, {m['ci95'][1]:+.2%}]"

    lines = ["# llem vs bare generate: ABBA blocks pooled over runs", "",
             f"Reproduce: `python benchmarks/overhead/pool_overhead.py {' '.join(r['path'] for r in rep['runs'])}"
             + (f" --looks {rep['looks']}`" if rep.get("looks") else "`"), "",
             rep["design"], "",
             "| batch | runs | GPUs | machines | blocks | time/call vs bare [95% CI] | J/token vs bare [95% CI] | "
             "time | energy |",
             "|---|---|---|---|---|---|---|---|---|"]

    def fe(m):
        x = m["fixed_effect"]
        return f"{x['mean']:+.2%} (Q {x['q']:.2f}, {x['q_df']} df)" if x else "n/a (one run)"

    def rand(x, one):
        return f"{f(x)} (tau {x['tau']:.2%}, I² {x['i2']:.0%})" if x else f"n/a (one {one})"

    for b in rep["batches"]:
        t, e = b["time_per_call"], b["energy_per_output_token"]
        lines.append(f"| {b['batch']} | {b['runs']} | {len(b['gpus'])} | {len(b['machines'])} | {t['blocks']} | "
                     f"{f(t)} | {f(e)} | {t['verdict'].split(':')[0]} | {e['verdict'].split(':')[0]} |")
    seq = [b for b in rep["batches"] if b["time_per_call"].get("sequential")]
    if seq:
        n = seq[0]["time_per_call"]["sequential"]["looks"]
        lines += ["", f"Read {n} times as its runs accumulated (`--looks {n}`): stopping when a reading says \"shown\" "
                  "makes a false \"shown\" likelier than 5%, so each reading is also held to the Bonferroni level "
                  f"1 - 0.05/{n} (the same envelope at that level), which keeps the chance that any reading falsely "
                  "says \"shown\" at or under 5%:", "",
                  "| batch | metric | level | CI | verdict |", "|---|---|---|---|---|"]
        for b in seq:
            for name, m in (("time/call", b["time_per_call"]), ("J/token", b["energy_per_output_token"])):
                x = m["sequential"]
                lines.append(f"| {b['batch']} | {name} | {x['level']:.2%} | [{x['ci'][0]:+.2%}, {x['ci'][1]:+.2%}] | "
                             f"{x['verdict'].split(':')[0]} |")
    lines += ["", "The estimates whose envelope (with the bootstrap and the t interval) gives the CIs above:", "",
              "| batch | metric | fixed effect over runs | random effects over runs | random effects over machines |",
              "|---|---|---|---|---|"]
    for b in rep["batches"]:
        for name, m in (("time/call", b["time_per_call"]), ("J/token", b["energy_per_output_token"])):
            lines.append(f"| {b['batch']} | {name} | {fe(m)} | {rand(m['random_effects'], 'run')} | "
                         f"{rand(m.get('by_machine'), 'machine')} |")
    lines += ["", "If the runs all measured one value (simulated pools with these block counts and the "
              "mean block variance): median DL tau, and the share of pools whose Q reaches the observed Q:", ""]
    for b in rep["batches"]:
        parts = []
        for name, m in (("time", b["time_per_call"]), ("J/token", b["energy_per_output_token"])):
            x = (m["random_effects"] or {}).get("if_runs_agree")
            if x:
                parts.append(f"{name}: tau {x['tau_median']:.2%}, Q reached in {x['share_with_q_at_least_observed']:.0%}")
        if parts:
            lines.append(f"- batch {b['batch']}: " + "; ".join(parts))
    def cell(x):
        return f"{x['mean']:+.2%}" + (f" ± {x['se']:.2%}" if x["se"] is not None else "")

    with_power = [b for b in rep["batches"] if b.get("mean_power")]
    if with_power:
        lines += ["", "Mean power of llem's windows over the bare windows' in the same block (J/token at equal time per "
                  "call differs by this much): pooled like the two above; then each window's power and time per call "
                  "over its block's mean, by its place in the block, as mean ± SE over all blocks:", ""]
        for b in with_power:
            m, pos = b["mean_power"], b.get("by_position_in_block") or {}
            lines.append(f"- batch {b['batch']}: {f(m)}; random effects over runs {rand(m['random_effects'], 'run')}; "
                         f"over machines {rand(m.get('by_machine'), 'machine')}")
            for metric, name in (("mean_power", "power"), ("time_per_call", "time/call")):
                if pos.get(metric):
                    lines.append(f"  - {name} by place: " + "; ".join(f"{w['window']} {cell(w)}" for w in pos[metric]))

    lines += ["", "Each run's k-th block, k in time order, as mean [+/- SE] over the runs that have it (time / "
              "J/token; a start-up transient in one arm shows as early blocks apart from the later ones):", ""]
    for b in rep["batches"]:
        pos = b["by_block_position"]
        lines.append(f"- batch {b['batch']}: " + "; ".join(
            f"block {t['block']} ({t['runs']} run{'s' if t['runs'] > 1 else ''}) {cell(t)} / {cell(e)}"
            for t, e in zip(pos["time_per_call"], pos["energy_per_output_token"])))
    with_windows = [b for b in rep["batches"] if b.get("time_per_call_by_window_position")]
    if with_windows:
        lines += ["", "Each run's windows in time order, time per call over the median of the run's windows, as "
                  "mean [+/- SE] over runs (a one-off cost shows in one position of one arm):", ""]
        for b in with_windows:
            lines.append(f"- batch {b['batch']}: " + "; ".join(
                f"{w['window']} {cell(w)}" for w in b["time_per_call_by_window_position"] if w["runs"] > 1))
    lines += ["", "Runs:", ""] + [f"- `{r['path']}` (GPU {r['gpu']}, machine {r['machine']}, commit {r['commit']})"
                                  for r in rep["runs"]]
    return "\n".join(lines) + "\n"


def looks_arg(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1 (readings of the pool, this one included)")
    return int(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="gpu_validation.py --out folders (or their validation.json)")
    ap.add_argument("--out", default=None, help="write pooled.json and pooled.md here")
    ap.add_argument("--looks", type=looks_arg, default=1,
                    help="how many times this pool has been read as runs were added (this reading included): "
                         "each verdict is also given at the Bonferroni level 1 - 0.05/LOOKS")
    a = ap.parse_args(argv)
    try:
        rep = pool([load(p) for p in a.runs], a.looks)
    except Refused as err:
        print(f"pool_overhead: {err}", file=sys.stderr)
        return 2
    md = markdown(rep)
    print(md)
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "pooled.json").write_text(json.dumps(rep, indent=2))
        (out / "pooled.md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
