"""Quality in the results tools: columns, ``show`` cells, ``compare`` metrics, the accuracy-vs-energy
figure and the leaderboard block (docs/quality.md, docs/leaderboard-schema.md).

Kept apart from the energy tables so that each tool gains quality through one call here.

Columns (one set per evaluated task; ``<metric>`` is lm-eval's metric name, with ``_<filter>``
appended when its filter is not ``none``)::

    quality_<task>_<metric>                  the score
    quality_<task>_<metric>_stderr           lm-eval's standard error
    quality_<task>_<metric>_ci95_low/high    score +- 1.96 stderr, clipped to [0, 1] for fractions
    quality_<task>_n                         samples evaluated
    quality_<task>_per_joule                 quality_per_joule (correct answers per joule)
    quality_<task>_per_joule_ci95_low/high   its 95% interval (llem/quality/stats.py)
    quality_<task>_energy_j, _energy_adjusted_j, _energy_per_sample_j, _energy_per_generated_token_j
    quality_<task>_status, quality_<task>_reason (why per_joule or the task is missing)
    quality_task, quality_metric, quality_value (+ _stderr, _ci95_low/high), quality_per_joule (+ interval):
                                             the same for the first task of quality.tasks
    quality_status, quality_meaningless      the job's quality part (random weights: meaningless)
"""
from __future__ import annotations

import re
from typing import Any, Optional

import numpy as np
import pandas as pd

Z95 = 1.959963984540054
_FRACTION_METRICS = ("acc", "acc_norm", "acc_mutual_info", "exact_match", "em", "acc_all", "f1", "mcc")
_ENERGY_KEYS = ("energy_j", "energy_adjusted_j", "energy_per_sample_j", "energy_per_generated_token_j")
_INT_SUFFIXES = ("_n", "_generated_tokens")
_STR_SUFFIXES = ("_status", "_reason", "_task", "_metric")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def metric_key(name: str) -> str:
    """lm-eval's ``metric,filter`` as a column part: ``acc,none`` -> ``acc``; ``exact_match,first_word``
    -> ``exact_match_first_word``."""
    metric, _, filt = name.partition(",")
    return _slug(metric if filt in ("", "none") else f"{metric}_{filt}")


def _ci(value, stderr, metric: str) -> tuple[Optional[float], Optional[float]]:
    if value is None or stderr is None:
        return None, None
    lo, hi = value - Z95 * stderr, value + Z95 * stderr
    if metric.split(",")[0] in _FRACTION_METRICS:
        lo, hi = max(0.0, lo), min(1.0, hi)
    return lo, hi


# --- one result -> columns ---------------------------------------------------------------------

def quality_row(result) -> dict[str, Any]:
    """The quality columns of one ``ExperimentResult`` (empty when it evaluated nothing)."""
    q = getattr(result, "quality", None)
    if q is None:
        return {}
    row: dict[str, Any] = {"quality_status": q.status, "quality_meaningless": bool(q.meaningless)}
    for i, t in enumerate(q.tasks):
        p = f"quality_{_slug(t.task)}"
        row[f"{p}_status"] = t.status
        row[f"{p}_n"] = t.samples if t.status == "completed" else None
        for m in t.metrics:
            k = f"{p}_{metric_key(m.name)}"
            row[k] = m.value
            row[f"{k}_stderr"] = m.stderr
            row[f"{k}_ci95_low"], row[f"{k}_ci95_high"] = _ci(m.value, m.stderr, m.name)
        row[f"{p}_per_joule"] = t.quality_per_joule
        row[f"{p}_per_joule_ci95_low"] = t.quality_per_joule_ci95_low
        row[f"{p}_per_joule_ci95_high"] = t.quality_per_joule_ci95_high
        e = t.energy
        for key in _ENERGY_KEYS:
            row[f"{p}_{key}"] = getattr(e, key, None) if e is not None and e.measured else None
        row[f"{p}_reason"] = (f"{t.error_type}: {t.error_message}" if t.status != "completed"
                              else t.quality_per_joule_reason)
        if i == 0:
            m = t.primary()
            row["quality_task"] = t.task
            row["quality_metric"] = metric_key(m.name) if m is not None else None
            row["quality_value"] = m.value if m is not None else None
            row["quality_value_stderr"] = m.stderr if m is not None else None
            row["quality_value_ci95_low"], row["quality_value_ci95_high"] = (
                _ci(m.value, m.stderr, m.name) if m is not None else (None, None))
            row["quality_per_joule"] = t.quality_per_joule
            row["quality_per_joule_ci95_low"] = t.quality_per_joule_ci95_low
            row["quality_per_joule_ci95_high"] = t.quality_per_joule_ci95_high
    if q.status == "failed" and not q.tasks:
        row["quality_reason"] = f"{q.error_type}: {q.error_message}"
    return row


def quality_columns(rows: list[dict]) -> list[str]:
    """The quality columns present in these rows, in a stable order (first-task summary first)."""
    seen: dict[str, None] = {}
    lead = ["quality_status", "quality_meaningless", "quality_task", "quality_metric", "quality_value",
            "quality_value_stderr", "quality_value_ci95_low", "quality_value_ci95_high", "quality_per_joule",
            "quality_per_joule_ci95_low", "quality_per_joule_ci95_high", "quality_reason"]
    present = {k for r in rows for k in r if k.startswith("quality_")}
    for k in lead:
        if k in present:
            seen[k] = None
    for r in rows:
        for k in r:
            if k.startswith("quality_") and k not in seen:
                seen[k] = None
    return list(seen)


def column_dtype(name: str) -> Optional[str]:
    """The nullable dtype of a quality column (None: not a quality column)."""
    if not name.startswith("quality_"):
        return None
    if name == "quality_meaningless":
        return "boolean"
    if name.endswith(_STR_SUFFIXES):
        return "string"
    if name.endswith(_INT_SUFFIXES):
        return "Int64"
    return "Float64"


def tasks_in(df: pd.DataFrame) -> list[str]:
    """Task slugs with a ``quality_<task>_per_joule`` column."""
    out = []
    for c in df.columns:
        m = re.fullmatch(r"quality_(.+)_per_joule", c)
        if m and c != "quality_per_joule":
            out.append(m.group(1))
    return out


def primary_column(df: pd.DataFrame, task: str) -> Optional[str]:
    """The column of the task's primary metric (from the rows whose first task it is), or its first score."""
    if "quality_task" in df.columns and "quality_metric" in df.columns:
        rows = df[df["quality_task"].astype("string").map(_slug) == task]["quality_metric"].dropna()
        if len(rows):
            col = f"quality_{task}_{rows.iloc[0]}"
            if col in df.columns:
                return col
    skip = ("_stderr", "_ci95_low", "_ci95_high", "_n", "_status", "_reason", "_per_joule") + _ENERGY_KEYS
    for c in df.columns:
        if c.startswith(f"quality_{task}_") and not c.endswith(skip) and "_per_joule" not in c:
            return c
    return None


# --- llem results show ---------------------------------------------------------------------------

def show_columns(df: pd.DataFrame) -> list[str]:
    """Default quality columns for ``llem results show``: each task's primary score and quality_per_joule."""
    cols = []
    for task in tasks_in(df):
        pc = primary_column(df, task)
        if pc is not None:
            cols.append(pc)
        cols.append(f"quality_{task}_per_joule")
    return cols


def show_specs(df: pd.DataFrame) -> list:
    """The ``ShowColumn`` (llem/results/view.py) of each default quality column: a score prints
    ``value ± stderr``, quality_per_joule ``value [low, high]``; '†' marks random weights. When the
    table is too wide, scores give way last of all hideable columns, quality_per_joule just before."""
    from llem.results.view import ShowColumn

    out = []
    for task in tasks_in(df):
        pc = primary_column(df, task)
        if pc is not None:  # short headers; the "columns:" note under the table maps them to column names
            out.append(ShowColumn(pc, f"{task} {pc.removeprefix(f'quality_{task}_')} ± stderr", hide_rank=1,
                                  stderr=True, random_weights_mark=True))
        out.append(ShowColumn(f"quality_{task}_per_joule", f"{task} correct/J [95% CI]", hide_rank=2, ci=True,
                              energy=True, random_weights_mark=True))
    return out


def header(col: str) -> Optional[str]:
    if col.startswith("quality_") and col.endswith("_per_joule"):
        return f"{col} [95% CI]"
    if col.startswith("quality_") and not col.endswith(("_n", "_status", "_reason", "_j")):
        return f"{col} ± stderr"
    return None


def notes(df: pd.DataFrame) -> list[str]:
    out = []
    if "quality_meaningless" in df.columns and df["quality_meaningless"].fillna(False).any():
        jobs = ", ".join(df.loc[df["quality_meaningless"].fillna(False).astype(bool), "job_id"].astype(str))
        out.append(f"† quality of a model with random weights (job(s) {jobs}): chance, not a measurement of a model")
    for task in tasks_in(df):
        rc = f"quality_{task}_reason"
        if rc in df.columns:
            for r in df[df[rc].notna()].to_dict("records"):
                out.append(f"quality {task}, job {r.get('job_id')}: {r[rc]}")
    if "quality_reason" in df.columns:
        for r in df[df["quality_reason"].notna()].to_dict("records"):
            out.append(f"quality, job {r.get('job_id')}: {r['quality_reason']}")
    if tasks_in(df):
        out.append("quality_per_joule = correct answers per joule of the evaluation's own windows (docs/quality.md); "
                   "energy_per_output_token_j is the inference measurement of the same job")
    return out


# --- llem results compare ------------------------------------------------------------------------

def compare_metrics(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """Quality metrics both sides have: each shared task's primary score and quality_per_joule."""
    out = []
    for task in tasks_in(a):
        if task not in tasks_in(b):
            continue
        pc = primary_column(a, task)
        if pc is not None and pc in b.columns:
            out.append(pc)
        out.append(f"quality_{task}_per_joule")
    return out


# --- llem results plot ---------------------------------------------------------------------------

def fig_quality_vs_energy(df: pd.DataFrame, x_metric: str = "energy_per_output_token_j"):
    """Quality against inference J/token, one panel per task, error bars on both axes (the 95% CI of
    J/token over cycles; score +- 1.96 stderr), the Pareto frontier (no other job both cheaper and
    better) marked. Jobs without a score or a measured J/token are left out and counted."""
    from llem.results.plots import ESTIMATED_TAG, Plot, _excluded_note, _measured, _new_figure, pareto_frontier

    name = "quality_vs_energy"
    tasks = [t for t in tasks_in(df) if primary_column(df, t) is not None]
    if not tasks:
        return Plot(name, skipped="no job evaluated quality (quality=lm_eval)")
    panels = []
    for task in tasks:
        yc = primary_column(df, task)
        mask = _measured(df, x_metric) & df[yc].notna()
        if mask.any():
            panels.append((task, yc, mask))
    if not panels:
        return Plot(name, skipped=f"no job has both a quality score and a measured {x_metric}")
    fig, axes = _new_figure(w=7.0, h=4.2 * len(panels), rows=len(panels))
    axes = np.atleast_1d(axes)
    for ax, (task, yc, mask) in zip(axes, panels):
        data = df[mask].reset_index(drop=True)

        def col(c):
            return (data[c] if c in data.columns else pd.Series(np.nan, index=data.index)).astype("Float64") \
                .to_numpy(dtype=float, na_value=np.nan)

        x, y = col(x_metric), col(yc)
        xerr = np.vstack([x - col(f"{x_metric}_ci95_low"), col(f"{x_metric}_ci95_high") - x])
        yerr = np.vstack([y - col(f"{yc}_ci95_low"), col(f"{yc}_ci95_high") - y])
        est = data["energy_estimated"].fillna(False).astype(bool).to_numpy() if "energy_estimated" in data else \
            np.zeros(len(data), bool)
        rnd = data["quality_meaningless"].fillna(False).astype(bool).to_numpy() if "quality_meaningless" in data \
            else np.zeros(len(data), bool)
        for i in range(len(data)):
            label = " · ".join(str(data.loc[i, k]) for k in ("backend", "precision") if k in data and
                               not pd.isna(data.loc[i, k]))
            if "batch" in data and not pd.isna(data.loc[i, "batch"]):
                label += f" b{data.loc[i, 'batch']}"
            label += (ESTIMATED_TAG if est[i] else "") + (" [random weights]" if rnd[i] else "")
            ax.errorbar(x[i:i + 1], y[i:i + 1], xerr=xerr[:, i:i + 1], yerr=yerr[:, i:i + 1], fmt="o", capsize=4,
                        label=label, mfc="none" if est[i] or rnd[i] else None)
        front = pareto_frontier(x, y)
        ax.plot(x[front], y[front], "-", color="k", lw=1.2, alpha=0.7, marker="o", ms=13, mfc="none",
                label="Pareto frontier", zorder=0)
        ax.set_xlabel(f"{x_metric} (J/token, lower is better)")
        ax.set_ylabel(f"{yc.removeprefix(f'quality_{task}_')} (higher is better)")
        ax.set_title(f"{task}: quality vs energy per output token")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        ax.annotate("error bars: 95% CI of J/token over cycles; score ± 1.96 stderr", xy=(0, 1.0),
                    xycoords="axes fraction", xytext=(0, 3), textcoords="offset points", fontsize=6, color="0.35")
    note = _excluded_note(df, panels[-1][2])
    if note:
        from llem.results.plots import _footnote

        _footnote(fig, note)
    return Plot(name, fig)


# --- the leaderboard -----------------------------------------------------------------------------

def leaderboard_metric_keys(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(key, task) for the quality metrics a leaderboard study file carries: each task's primary
    score and its quality_per_joule."""
    keys = []
    for task in tasks_in(df):
        pc = primary_column(df, task)
        if pc is not None:
            keys.append((pc, task))
        keys.append((f"quality_{task}_per_joule", task))
    return keys


def leaderboard_columns(keys: list[tuple[str, str]]) -> list[dict]:
    out = []
    for k, task in keys:
        per_joule = k.endswith("_per_joule")
        out.append({"key": k, "task": task, "label": (f"{task}: correct answers per joule" if per_joule
                                        else k.removeprefix("quality_").replace("_", " ")),
                    "group": "quality", "unit": "1/J" if per_joule else None, "higher_is_better": True,
                    "has_ci": True,
                    "description": ("correct answers per joule of the evaluation (score x samples / energy_j), "
                                    "95% interval by a log-scale delta method" if per_joule else
                                    "lm-eval score on the engine that was measured; ci95 = score +- 1.96 stderr")})
    return out


def leaderboard_metrics(row: pd.Series, keys: list[tuple[str, str]], opt) -> dict[str, dict]:
    """``entry.metrics`` additions: value, ci95_low/high, n (samples) and, for scores, stderr."""
    out = {}
    for k, task in keys:
        m = {"value": opt(row, k), "ci95_low": opt(row, f"{k}_ci95_low"), "ci95_high": opt(row, f"{k}_ci95_high"),
             "n": opt(row, f"quality_{task}_n")}
        if not k.endswith("_per_joule"):
            m["stderr"] = opt(row, f"{k}_stderr")
        out[k] = m
    return out


def leaderboard_frame_columns(keys: list[tuple[str, str]]) -> list[str]:
    """The table columns a leaderboard file's quality metrics read back into."""
    cols = []
    for k, task in keys:
        cols += [k, f"{k}_ci95_low", f"{k}_ci95_high", f"quality_{task}_n"]
        if not k.endswith("_per_joule"):
            cols.append(f"{k}_stderr")
    return list(dict.fromkeys(cols))


def leaderboard_entry_block(row: pd.Series, opt) -> Optional[dict]:
    status = opt(row, "quality_status")
    if status is None:
        return None
    return {"status": status, "meaningless": opt(row, "quality_meaningless"), "task": opt(row, "quality_task"),
            "reason": opt(row, "quality_reason")}
