"""PNG figures of a study or a result.

- ``energy_per_token_vs_batch``: J/output token against batch (log-2 axis), one series per
  backend (and model/precision when those vary), 95% CI error bars; the dotted lines only join
  measured batches, and the caption says so;
- ``pareto_throughput_vs_energy``: output tokens/s against J/output token with 95% CI bars on both
  axes, every point labelled (backend, batch), and the Pareto frontier (no other job is both
  cheaper and faster) drawn as a line when it has several points;
- ``throughput_latency_vs_batch``: throughput (95% CI), TTFT and ITL (p50, bar to p90) against
  batch per backend: drawn whenever throughput was measured, energy or not;
- ``backends_side_by_side``: one panel per batch and metric (J/token, tok/s, TTFT), a bar per
  backend with its CI and value, "not measured" where a value is missing;
- ``phases_prefill_decode``: prefill and decode energy per request (per workload pass where a
  result lacks per-prompt values) from ``result.phases``, with +-1 standard error and every
  segment labelled (small ones beside the bar);
- ``timeseries_<job>``: per-GPU power and temperature from the job's ``timeseries.parquet``,
  with the measured window shaded;
- ``quality_vs_energy`` (results with quality only): each task's score against J/output token,
  error bars on both axes, Pareto frontier marked (llem/results/quality.py).

Every figure's caption names the model(s), precision(s), device(s) and, for energy, its scope
(the job's GPUs, or host CPU + DRAM) and whether it is an estimate. Missing data never becomes a
plotted 0: a job without a value is left out and counted in a note on the figure; a figure with
nothing to show is skipped and the reason is returned. A backend keeps one colour and marker in
every figure. Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, without
pyplot, so nothing global (backend, open figures) changes in the caller's process.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from llem.errors import LlemError

ESTIMATED_TAG = " [estimated]"
MARKERS = "osD^vP*X"
SCOPE_WORDS = {"gpu": "GPU", "host": "host CPU+DRAM"}
CI_NOTE = "error bars: 95% CI of the ratio of totals over cycles"
JOIN_NOTE = "dotted lines only join measured batches: nothing was measured between them"


@dataclass
class Plot:
    name: str
    figure: object = None            # matplotlib Figure, or None when skipped
    skipped: Optional[str] = None    # why there is no figure
    path: Optional[Path] = None


def _mpl():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise LlemError("llem results plot needs matplotlib: pip install 'llenergymeasure[plot]'") from None
    return Figure, FigureCanvasAgg


def _new_figure(w=7.0, h=4.5, rows=1, sharex=False, cols=1, squeeze=True):
    Figure, Canvas = _mpl()
    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    Canvas(fig)
    axes = fig.subplots(rows, cols, sharex=sharex, squeeze=squeeze)
    return fig, axes


# --- series, styles and captions --------------------------------------------------------------

def _series_keys(df: pd.DataFrame) -> list[str]:
    keys = ["backend"]
    for k in ("model", "precision"):
        if k in df.columns and df[k].nunique(dropna=True) > 1:
            keys.append(k)
    return keys


def _series_label(row_or_key, keys) -> str:
    vals = row_or_key if isinstance(row_or_key, tuple) else (row_or_key,)
    return " · ".join(str(v) for v in vals)


def _key_of(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)


class _Styles:
    """One colour and marker per series, the same in every figure of a set of results."""

    def __init__(self, df: pd.DataFrame) -> None:
        # series of the jobs that completed: a failed job's precision must not split every label
        done = df[_completed(df)]
        df = done if len(done) else df
        self.keys = _series_keys(df)
        sub = df[self.keys].dropna()
        self.order = sorted({tuple(str(v) for v in r) for r in sub.itertuples(index=False, name=None)})

    def style(self, key) -> dict:
        k = tuple(str(v) for v in _key_of(key))
        i = self.order.index(k) if k in self.order else len(self.order)
        return {"color": f"C{i % 10}", "marker": MARKERS[i % len(MARKERS)]}

    def label(self, key) -> str:
        return _series_label(_key_of(key), self.keys)


def _completed(df: pd.DataFrame) -> pd.Series:
    if "status" in df.columns:
        return df["status"].fillna("") == "completed"
    return pd.Series(True, index=df.index)


def _measured(df: pd.DataFrame, col: str) -> pd.Series:
    ok = df[col].notna()
    if "energy_measured" in df.columns:
        ok &= df["energy_measured"].fillna(False).astype(bool)
    return ok & _completed(df)


def _estimated(g: pd.DataFrame) -> bool:
    return bool(g["energy_estimated"].fillna(False).any()) if "energy_estimated" in g.columns else False


def _floats(g: pd.DataFrame, col: str) -> np.ndarray:
    if col not in g.columns:
        return np.full(len(g), np.nan)
    return g[col].astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _yerr(g: pd.DataFrame, metric: str) -> np.ndarray:
    """Asymmetric error bars from a metric's CI columns; NaN (no bar) where a CI is missing, never a
    zero-length bar that would claim certainty."""
    y = _floats(g, metric)
    return np.vstack([y - _floats(g, f"{metric}_ci95_low"), _floats(g, f"{metric}_ci95_high") - y])


def _uniq(df: pd.DataFrame, col: str) -> list[str]:
    return sorted({str(v) for v in df[col].dropna()}) if col in df.columns else []


def _device_words(df: pd.DataFrame) -> list[str]:
    out = set()
    for r in df.to_dict("records"):
        gpu, cpu, dev = r.get("gpu_name"), r.get("cpu_name"), r.get("device")
        if isinstance(gpu, str) and gpu and not (isinstance(dev, str) and dev == "cpu"):
            out.add(gpu)
        elif isinstance(dev, str) and dev == "cpu":
            out.add("CPU" + (f" ({cpu})" if isinstance(cpu, str) and cpu else ""))
        elif isinstance(dev, str) and dev:
            out.add(dev)
    return sorted(out)


def energy_scope_words(df: pd.DataFrame) -> str:
    """What the energy numbers cover and how they were read: "GPU (nvml)", "host CPU+DRAM,
    estimated (codecarbon)", several joined when jobs differ; "not measured" when none was."""
    parts = []
    measured = df[_completed(df) & df.get("energy_measured", pd.Series(False, index=df.index)).fillna(False)
                  .astype(bool)]
    for r in measured.to_dict("records"):
        scope, est, meter = r.get("energy_scope"), r.get("energy_estimated"), r.get("energy_meter")
        words = SCOPE_WORDS.get(scope, scope) if isinstance(scope, str) else "scope not recorded"
        if _true(est):
            words += ", estimated"
        if isinstance(meter, str):
            words += f" ({meter})"
        if words not in parts:
            parts.append(words)
    return "; ".join(parts) if parts else "not measured"


def caption(df: pd.DataFrame, energy: bool = True) -> str:
    """"model X · precision fp32 · device ... · energy: ...", lists where jobs differ."""
    done = df[_completed(df)] if len(df[_completed(df)]) else df
    bits = []
    for col, word in (("model", "model"), ("precision", "precision")):
        vals = _uniq(done, col)
        if vals:
            bits.append(f"{word}{'s' if len(vals) > 1 else ''} {', '.join(vals)}")
    devs = _device_words(done)
    if devs:
        bits.append(f"device{'s' if len(devs) > 1 else ''} {', '.join(devs)}")
    if energy:
        bits.append(f"energy: {energy_scope_words(done)}")
    return textwrap.fill(" · ".join(bits), 110)


def _titles(fig, ax, title: str, df: pd.DataFrame, energy: bool = True, estimated: bool = False) -> None:
    fig.suptitle(title + (ESTIMATED_TAG if estimated else ""), fontsize=11)
    cap = caption(df, energy)
    if ax is not None:
        ax.set_title(cap, fontsize=7.5, color="0.25")
    else:
        fig.text(0.5, 0.0, cap, ha="center", va="bottom", fontsize=7.5, color="0.25")


def _excluded_note(df: pd.DataFrame, mask: pd.Series, what: str = "value") -> Optional[str]:
    left = df[~mask]
    if not len(left):
        return None
    reasons = []
    for _, r in left.iterrows():
        if "status" in r.index and r["status"] is not pd.NA and r["status"] != "completed":
            reasons.append(f"job {r['status']}")
        elif "energy_not_measured_reason" in r.index and not pd.isna(r["energy_not_measured_reason"]):
            reasons.append("energy not measured")
        else:
            reasons.append(f"{what} missing")
    counts = pd.Series(reasons).value_counts()
    return f"not shown: {len(left)} job(s) (" + ", ".join(f"{n} {why}" for why, n in counts.items()) + ")"


def _footnote(fig, *parts: Optional[str]) -> None:
    """Notes under the whole figure (a left-aligned figure x label, so constrained layout makes
    room for it below every axis), wrapped to the figure's width."""
    chars = int(fig.get_figwidth() * 100 / 5.4)
    text = "\n".join(textwrap.fill(p, chars) for p in parts if p)
    if text:
        fig.supxlabel(text, x=0.01, ha="left", fontsize=7, color="0.35")


def _true(v) -> bool:
    """A table cell is True (pandas' nullable booleans are numpy bools, and NA is not False)."""
    return False if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else bool(v)


def _plain_log(ax, axis: str = "y") -> None:
    """Log scale with plain tick labels (1, 2, 5, 10, 20 ...), not 2 x 10^1."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    a = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    a.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    a.set_minor_formatter(NullFormatter())


def _batch_axis(ax, batches: list[int]) -> None:
    """Batch on a log-2 axis with a tick at every measured batch."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.minorticks_off()
    if len(batches) == 1:
        ax.set_xlim(batches[0] / 2, batches[0] * 2)
    else:
        ax.set_xlim(batches[0] / 2 ** 0.5, batches[-1] * 2 ** 0.5)
    ax.set_xlabel("batch (log 2 scale)")


def _dodge(i: int, n: int) -> float:
    """Multiplier that spreads n series a little along a log-2 batch axis, so bars do not overlap."""
    return 2 ** ((i - (n - 1) / 2) * 0.07) if n > 1 else 1.0


def _maybe_log_y(ax, values: np.ndarray) -> None:
    v = values[np.isfinite(values) & (values > 0)]
    if v.size and v.max() / v.min() >= 8:
        _plain_log(ax, "y")


# --- energy per token vs batch ------------------------------------------------------------------

def fig_energy_vs_batch(df: pd.DataFrame, metric: str = "energy_per_output_token_j") -> Plot:
    name = "energy_per_token_vs_batch"
    mask = _measured(df, metric) & df["batch"].notna()
    data = df[mask]
    if data.empty:
        return Plot(name, skipped=f"no job has a measured {metric}" + _reason_suffix(df))
    fig, ax = _new_figure(7.5, 5.0)
    styles = _Styles(df)
    groups = list(data.groupby(styles.keys, sort=True, dropna=False))
    for i, (key, g) in enumerate(groups):
        g = g.sort_values("batch")
        x = g["batch"].astype(float).to_numpy() * _dodge(i, len(groups))
        y = _floats(g, metric)
        est = _estimated(g)
        st = styles.style(key)
        ax.errorbar(x, y, yerr=_yerr(g, metric), fmt=st["marker"], color=st["color"], linestyle=":", lw=0.9,
                    capsize=4, label=styles.label(key) + (ESTIMATED_TAG if est else ""),
                    mfc="none" if est else st["color"], ms=6)
    batches = sorted(set(data["batch"].astype(int)))
    _batch_axis(ax, batches)
    _maybe_log_y(ax, _floats(data, metric))
    ax.set_ylabel(f"{metric} (J/token)")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(title=" · ".join(styles.keys), fontsize=8)
    _titles(fig, ax, "Energy per output token vs batch", data, estimated=_estimated(data))
    _footnote(fig, f"{CI_NOTE}; {JOIN_NOTE}", _excluded_note(df, mask))
    return Plot(name, fig)


def _reason_suffix(df: pd.DataFrame) -> str:
    if "energy_not_measured_reason" in df.columns:
        reasons = df["energy_not_measured_reason"].dropna().unique().tolist()
        if reasons:
            r = str(reasons[0])
            return f" ({r[:160]}{'...' if len(r) > 160 else ''})"
    return ""


# --- Pareto ---------------------------------------------------------------------------------------

def pareto_frontier(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of points no other point beats on both (lower x, higher y), ordered by x."""
    order = np.lexsort((-y, x))
    front, best_y = [], -np.inf
    for i in order:
        if y[i] > best_y:
            front.append(i)
            best_y = y[i]
    return np.array(front, dtype=int)


def _point_label(r: dict, keys: list[str]) -> str:
    extra = [str(r[k]) for k in keys if k != "backend"]
    return f"{r['backend']} b{r['batch']}" + (f" ({', '.join(extra)})" if extra else "")


def _place_labels(ax, x: np.ndarray, y: np.ndarray, labels: list[str], fontsize: float = 7) -> None:
    """Annotate each point, choosing among a few offsets the one whose (estimated) text box
    overlaps the fewest labels already placed and other points: a greedy placement, enough for the
    tens of points a study has."""
    ax.figure.canvas.draw()  # settle the axes size, limits and scales before reading positions
    pts = ax.transData.transform(np.column_stack([x, y]))
    char_w, h = fontsize * 0.62, fontsize * 1.4  # pixels at 100 dpi
    placed: list[tuple[float, float, float, float]] = []

    def overlap(a, b) -> float:
        w = min(a[2], b[2]) - max(a[0], b[0])
        hh = min(a[3], b[3]) - max(a[1], b[1])
        return max(0.0, w) * max(0.0, hh)

    for i in sorted(range(len(labels)), key=lambda k: pts[k][0]):
        w = len(labels[i]) * char_w
        px, py = pts[i]
        best, best_cost = None, None
        for dx, dy in ((6, 4), (6, -4 - h), (-6 - w, 4), (-6 - w, -4 - h), (8, -h / 2), (-8 - w, -h / 2),
                       (-w / 2, 8), (-w / 2, -8 - h)):
            box = (px + dx, py + dy, px + dx + w, py + dy + h)
            cost = sum(overlap(box, b) for b in placed)
            cost += sum(200.0 for j, (qx, qy) in enumerate(pts) if j != i and box[0] - 4 <= qx <= box[2] + 4
                        and box[1] - 4 <= qy <= box[3] + 4)
            if best_cost is None or cost < best_cost:
                best, best_cost = (dx, dy, box), cost
        dx, dy, box = best
        placed.append(box)
        # offsets in points (= pixels at 100 dpi x 0.72); the box's lower-left corner
        ax.annotate(labels[i], (x[i], y[i]), textcoords="offset pixels", xytext=(dx, dy), fontsize=fontsize,
                    color="0.15", ha="left", va="bottom")


def fig_pareto(df: pd.DataFrame, x_metric: str = "energy_per_output_token_j",
               y_metric: str = "output_tokens_per_s") -> Plot:
    name = "pareto_throughput_vs_energy"
    mask = _measured(df, x_metric) & df[y_metric].notna()
    data = df[mask].reset_index(drop=True)
    if data.empty:
        return Plot(name, skipped=f"no job has both a measured {x_metric} and {y_metric}" + _reason_suffix(df))
    fig, ax = _new_figure(7.5, 5.2)
    styles = _Styles(df)
    for key, g in data.groupby(styles.keys, sort=True, dropna=False):
        est = _estimated(g)
        st = styles.style(key)
        ax.errorbar(_floats(g, x_metric), _floats(g, y_metric), xerr=_yerr(g, x_metric), yerr=_yerr(g, y_metric),
                    fmt=st["marker"], color=st["color"], linestyle="none", capsize=3, elinewidth=0.9, ms=6,
                    mfc="none" if est else st["color"], label=styles.label(key) + (ESTIMATED_TAG if est else ""))
    x = _floats(data, x_metric)
    y = _floats(data, y_metric)
    front = pareto_frontier(x, y)
    if len(front) > 1:
        ax.plot(x[front], y[front], "-", color="k", lw=1.1, alpha=0.6, label="Pareto frontier", zorder=0)
    else:
        ax.plot(x[front], y[front], "o", color="k", ms=14, mfc="none", alpha=0.6, label="Pareto frontier (1 job)",
                zorder=0)
    _maybe_log_y(ax, y)
    if np.nanmax(x) / np.nanmin(x) >= 8:
        _plain_log(ax, "x")
    # every point labelled, each label placed where it covers the fewest other labels and points
    _place_labels(ax, x, y, [_point_label(r, styles.keys) for r in data.to_dict("records")])
    ax.set_xlabel(f"{x_metric} (J/token, lower is better)")
    ax.set_ylabel(f"{y_metric} (tokens/s, higher is better)")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _titles(fig, ax, "Throughput vs energy per output token", data, estimated=_estimated(data))
    _footnote(fig, f"{CI_NOTE}, on both axes; frontier: jobs no other job beats on both",
              _excluded_note(df, mask))
    return Plot(name, fig)


# --- throughput and latency vs batch (no energy needed) -----------------------------------------

LATENCY_PANELS = (("ttft_ms", "time to first token, p50 (ms)"), ("itl_ms", "inter-token latency, p50 (ms)"))


def fig_throughput_latency(df: pd.DataFrame) -> Plot:
    """Throughput (95% CI) and TTFT / ITL (p50, bar up to p90) against batch, one series per
    backend. Needs no energy, so backends compare even where energy could not be measured."""
    name = "throughput_latency_vs_batch"
    mask = _completed(df) & df["output_tokens_per_s"].notna() & df["batch"].notna()
    data = df[mask]
    if data.empty:
        return Plot(name, skipped="no completed job has a throughput")
    panels = [("output_tokens_per_s", "output_tokens_per_s (tokens/s)")]
    panels += [(m, label) for m, label in LATENCY_PANELS if f"{m}_p50" in data.columns
               and data[f"{m}_p50"].notna().any()]
    fig, axes = _new_figure(4.2 * len(panels) + 0.6, 4.6, cols=len(panels), squeeze=False)
    axes = axes[0]
    styles = _Styles(df)
    groups = list(data.groupby(styles.keys, sort=True, dropna=False))
    batches = sorted(set(data["batch"].astype(int)))
    for ax, (metric, label) in zip(axes, panels):
        for i, (key, g) in enumerate(groups):
            g = g.sort_values("batch")
            st = styles.style(key)
            x = g["batch"].astype(float).to_numpy() * _dodge(i, len(groups))
            if metric == "output_tokens_per_s":
                y, err = _floats(g, metric), _yerr(g, metric)
            else:
                y = _floats(g, f"{metric}_p50")
                err = np.vstack([np.zeros_like(y), _floats(g, f"{metric}_p90") - y])
                err[:, ~np.isfinite(y)] = np.nan
            ok = np.isfinite(y)
            if not ok.any():
                continue
            ax.errorbar(x[ok], y[ok], yerr=err[:, ok], fmt=st["marker"], color=st["color"], linestyle=":", lw=0.9,
                        capsize=3, ms=5, label=styles.label(key))
        _batch_axis(ax, batches)
        vals = _floats(data, metric if metric == "output_tokens_per_s" else f"{metric}_p50")
        _maybe_log_y(ax, vals)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3, which="both")
    axes[0].legend(title=" · ".join(styles.keys), fontsize=8)
    fig.suptitle("Throughput and latency by backend and batch", fontsize=11)
    _footnote(fig, caption(data, energy=False), "throughput: ratio of totals over cycles, bars 95% CI; latency: p50 "
              f"of a separate latency pass, bar up to p90; {JOIN_NOTE}", _excluded_note(df, mask, "throughput"))
    return Plot(name, fig)


# --- backends side by side -----------------------------------------------------------------------

SIDE_BY_SIDE = (("energy_per_output_token_j", "J/token", True), ("output_tokens_per_s", "tokens/s", False),
                ("ttft_ms_p50", "TTFT p50 (ms)", False))


def _fmt_bar(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _side_bar(ax, x: float, width: float, row, metric: str, is_energy: bool, st: dict, n_series: int) -> float:
    """One job's bar (with its CI whisker and value), or the reason it has none; returns the top."""
    ok = row is not None and row.get("status") == "completed" and not pd.isna(row.get(metric))
    if is_energy and ok and "energy_measured" in row.index:
        ok = _true(row.get("energy_measured"))
    if not ok:
        why = ("no job" if row is None else row.get("status") if row.get("status") != "completed"
               else "not\nmeasured")
        ax.text(x, 0.02, str(why), transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontsize=7, color="0.4", style="italic", rotation=90 if n_series > 3 else 0)
        return 0.0
    v = float(row[metric])
    lo, hi = row.get(f"{metric}_ci95_low"), row.get(f"{metric}_ci95_high")
    est = is_energy and _true(row.get("energy_estimated"))
    ax.bar(x, v, width * 0.9, color=st["color"], alpha=0.45 if est else 0.85, hatch="//" if est else None,
           edgecolor=st["color"])
    top = label_at = v
    if not pd.isna(lo) and not pd.isna(hi):
        ax.errorbar([x], [v], yerr=[[v - float(lo)], [float(hi) - v]], color="k", capsize=3, lw=0.9)
        top = label_at = max(v, float(hi))  # the value above the whisker, not on it
    ax.annotate(_fmt_bar(v), (x, label_at), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                fontsize=7)
    return top


def fig_backends_side_by_side(df: pd.DataFrame) -> Plot:
    """A panel per batch (columns) and metric (rows): one bar per backend with its 95% CI and its
    value printed; a missing value says "not measured" (or the job's status) where its bar would be."""
    name = "backends_side_by_side"
    done = df[_completed(df) & df["batch"].notna()] if "batch" in df.columns else df.iloc[0:0]
    styles = _Styles(df)
    series = styles.order
    if done.empty or len(series) < 1:
        return Plot(name, skipped="no completed job to compare")
    metrics = [(m, lab, e) for m, lab, e in SIDE_BY_SIDE if m in df.columns and (done[m].notna().any() or e)]
    batches = sorted(set(done["batch"].astype(int)))
    fig, axes = _new_figure(max(6.0, 2.2 * len(batches) + 1.0), 2.1 * len(metrics) + 2.0, rows=len(metrics),
                            cols=len(batches), squeeze=False)
    width = 0.8 / max(1, len(series))
    for c, batch in enumerate(batches):
        at = df[df["batch"].astype("Float64") == batch]
        for r, (metric, label, is_energy) in enumerate(metrics):
            ax = axes[r][c]
            top = 0.0
            for i, key in enumerate(series):
                rows = at[[tuple(str(v) for v in t) == key for t in at[styles.keys].itertuples(index=False,
                                                                                               name=None)]]
                # repeats of one configuration (hydra.sweeper.grid_cycles) share the slot, one bar each
                jobs = [None] if not len(rows) else [rows.iloc[k] for k in range(len(rows))]
                sub = width / len(jobs)
                for k, row in enumerate(jobs):
                    x = i * width - 0.4 + sub * (k + 0.5)
                    top = max(top, _side_bar(ax, x, sub, row, metric, is_energy, styles.style(key), len(series)))
            ax.set_xticks([])  # the colours name the backends (legend above)
            ax.set_xlim(-0.5, 0.5)
            ax.set_ylim(0, top * 1.2 if top > 0 else 1)
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(True, axis="y", alpha=0.3)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == 0:
                ax.set_title(f"batch {batch}", fontsize=9)
    fig.suptitle("Backends side by side, per batch", fontsize=11)
    est_any = _estimated(done[done.get("energy_measured", pd.Series(False, index=done.index)).fillna(False)
                              .astype(bool)]) if len(done) else False
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=styles.style(k)["color"], label=" · ".join(k)) for k in series],
               loc="outside right upper", fontsize=8, title=" · ".join(styles.keys), title_fontsize=8)
    _footnote(fig, caption(done), "bars: ratio of totals over cycles (TTFT: p50 of the latency pass); whiskers: 95% "
              "CI; a missing value is written where its bar would be, never drawn as 0"
              + ("; hatched, paler bars: estimated energy" if est_any else ""),
              _excluded_note(df, _completed(df) & df["batch"].notna(), "batch"))
    return Plot(name, fig)


TIME_COLUMNS = ("t_s", "time_s", "elapsed_s", "relative_s", "timestamp_s")
# llem.measure.sampler.COLUMNS names them t_s / gpu_index / power_w / temperature_c / cycle; the
# alternatives keep older or hand-made files readable
DEVICE_COLUMNS = ("gpu_index", "device_index", "device", "gpu", "index")
POWER_COLUMNS = ("power_w", "gpu_power_w")
TEMP_COLUMNS = ("temperature_c", "gpu_temperature_c", "temp_c")


def _pick(cols, options) -> Optional[str]:
    return next((c for c in options if c in cols), None)


def fig_timeseries(ts: pd.DataFrame, job_id: str, window: Optional[list[float]] = None) -> Plot:
    name = f"timeseries_{job_id}"
    tcol = _pick(ts.columns, TIME_COLUMNS)
    pcol = _pick(ts.columns, POWER_COLUMNS)
    ccol = _pick(ts.columns, TEMP_COLUMNS)
    if tcol is None or (pcol is None and ccol is None) or ts.empty:
        return Plot(name, skipped=f"timeseries.parquet of job {job_id} has no time with power/temperature columns "
                                  f"(found: {', '.join(map(str, ts.columns)) or 'no rows'})")
    panels = [c for c in (pcol, ccol) if c is not None]
    fig, axes = _new_figure(h=2.6 * len(panels) + 0.6, rows=len(panels), sharex=True)
    axes = np.atleast_1d(axes)
    dcol = _pick(ts.columns, DEVICE_COLUMNS)
    groups = ts.groupby(dcol, sort=True) if dcol else [(0, ts)]
    for dev, g in groups:
        g = g.sort_values(tcol)
        for ax, col in zip(axes, panels):
            vals = pd.to_numeric(g[col], errors="coerce")
            # gaps stay gaps: a missing sample is NaN and breaks the line
            ax.plot(g[tcol].astype(float), vals.astype(float), lw=1, label=f"GPU {dev}")
    spans = _cycle_spans(ts, tcol)
    if not spans and window and len(window) == 2 and all(w is not None for w in window):
        spans = [(float(window[0]), float(window[1]))]
    for ax, col in zip(axes, panels):
        ax.set_ylabel(f"{col} ({'W' if col == pcol else '°C'})")
        ax.grid(True, alpha=0.3)
        for i, (a, b) in enumerate(spans):
            ax.axvspan(a, b, color="C2", alpha=0.12, label="measured cycles" if i == 0 else None)
        ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel(f"{tcol} (s since experiment start)")
    axes[0].set_title(f"Job {job_id}: per-GPU power and temperature")
    return Plot(name, fig)


def _cycle_spans(ts: pd.DataFrame, tcol: str) -> list[tuple[float, float]]:
    """Time spans of the measured cycles, from the sampler's ``cycle`` tag (-1 = between windows)."""
    if "cycle" not in ts.columns:
        return []
    c = pd.to_numeric(ts["cycle"], errors="coerce")
    spans = []
    for cyc, g in ts[c >= 0].groupby(c[c >= 0]):
        t = g[tcol].astype(float)
        spans.append((float(t.min()), float(t.max())))
    return sorted(spans)


def _phase_units(recs: list[dict]) -> tuple[str, np.ndarray]:
    """The unit the phase figure uses, and each job's divisor from the per-pass values to it.

    Per request (prompt) where every job records its prefill energy per prompt: a workload pass
    holds a different number of prompts at different batch sizes (rounded up to whole batches),
    so per-pass energies do not compare across jobs; per request they do. Otherwise per pass."""
    prompts = []
    for r in recs:
        per_prompt, pre = r.get("prefill_energy_per_prompt_j"), r.get("prefill_energy_j")
        ok = not pd.isna(per_prompt) and not pd.isna(pre) and float(per_prompt) > 0
        prompts.append(float(pre) / float(per_prompt) if ok else np.nan)
    prompts = np.asarray(prompts, dtype=float)
    if np.all(np.isfinite(prompts)):
        return "request", prompts
    return "workload pass", np.ones(len(recs))


def _phase_se(r: dict, prompts: float, per_request: bool) -> tuple[float, float]:
    """One standard error of the prefill and decode energy (per request, or per pass), from the
    per-prompt and per-output-token standard errors the result records (NaN where it has none)."""
    pre_se, dec_se = np.nan, np.nan
    se = r.get("prefill_energy_per_prompt_se_j")
    if not pd.isna(se):
        pre_se = float(se) * (1.0 if per_request else prompts)
    tok, se = r.get("decode_tokens"), r.get("decode_energy_per_output_token_se_j")
    if not pd.isna(tok) and not pd.isna(se):
        dec_se = float(se) * float(tok) / prompts
    return pre_se, dec_se


def fig_phases(df: pd.DataFrame) -> Plot:
    name = "phases_prefill_decode"
    cols = ("prefill_energy_j", "decode_energy_j")
    if not all(c in df.columns for c in cols):
        return Plot(name, skipped="no phase columns in these results")
    mask = df[cols[0]].notna() & df[cols[1]].notna() & _completed(df)
    data = df[mask]
    if data.empty:
        return Plot(name, skipped="no job recorded a prefill/decode energy split (result.phases is empty)")
    styles = _Styles(df)
    fig, ax = _new_figure(w=max(6.5, 1.1 * len(data) + 2.5), h=5.0)
    recs = data.to_dict("records")
    labels = [_point_label(r, styles.keys) + (f"\n{r['job_id']}" if len(data) > 1 and "job_id" in r else "")
              for r in recs]
    unit, div = _phase_units(recs)
    x = np.arange(len(recs))
    pre = _floats(data, "prefill_energy_j") / div
    dec = _floats(data, "decode_energy_j") / div
    shown_dec = np.where(dec > 0, dec, 0.0)  # a decode estimate <= 0 is noise: labelled, not stacked
    ses = np.array([_phase_se(r, d, unit == "request") for r, d in zip(recs, div)]).reshape(-1, 2)
    ax.bar(x, pre, 0.6, label="prefill", color="C1")
    ax.bar(x, shown_dec, 0.6, bottom=pre, label="decode", color="C0")
    # +-1 standard error at the top of each segment (window-to-window scatter only), left of
    # centre: the labels sit right of centre
    ax.errorbar(x - 0.18, pre, yerr=ses[:, 0], fmt="none", color="0.1", capsize=3, lw=0.9)
    ax.errorbar(x - 0.18, pre + shown_dec, yerr=np.where(dec > 0, ses[:, 1], np.nan), fmt="none", color="0.1",
                capsize=3, lw=0.9)
    top = float(np.nanmax(pre + shown_dec + np.nan_to_num(ses[:, 1])))
    ax.set_ylim(0, top * 1.18)
    gap = 0.085 * top  # height of a two-line label, in data units
    for i in range(len(recs)):
        total = pre[i] + shown_dec[i]
        free = 0.0  # labels beside the bar stack upwards from here, so they never overlap
        for lo, h, what, colour in ((0.0, pre[i], "prefill", "C1"), (pre[i], dec[i], "decode", "C0")):
            text = f"{h:.3g} J" + (f"\n{h / total:.0%}" if total > 0 and h > 0 else "")
            if what == "decode" and h <= 0:
                ax.annotate(f"decode {h:.2g} J:\nnot resolved", (x[i], lo), xytext=(0, 4), textcoords="offset points",
                            ha="center", fontsize=7, color="0.2")
            elif h >= 0.1 * top:
                ax.text(x[i] + 0.07, lo + h / 2, text, ha="center", va="center", fontsize=7, color="white")
            else:  # too small to hold its label: beside the bar in the segment's colour, with a leader line
                y_text = max(lo + h / 2 + 0.03 * top, free + gap / 2)
                free = y_text + gap / 2
                ax.annotate(text, (x[i] + 0.3, lo + h / 2), xytext=(x[i] + 0.36, y_text),
                            fontsize=7, color=colour, va="center", fontweight="bold",
                            arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.8})
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_xlim(-0.6, len(recs) - 0.4 + 0.5)
    ax.set_ylabel(f"energy_j (J) per {unit}")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    _titles(fig, ax, f"Prefill vs decode energy per {unit}", data, estimated=_estimated(data))
    methods = sorted(set(data["phase_method"].dropna().astype(str))) if "phase_method" in data.columns else []
    _footnote(fig, "error bars: +-1 standard error (window-to-window scatter only; the split's bias is stated in "
              "each result's phases.error)" + ("; per request = per pass / prompts per pass, so batch sizes compare"
                                               if unit == "request" else ""),
              *("split: " + m for m in methods), _excluded_note(df, mask))
    return Plot(name, fig)


def build_plots(loaded, df: pd.DataFrame, *, progress: Optional[Callable[[int, int, str], None]] = None,
                timeseries_limit: Optional[int] = None) -> list[Plot]:
    """Every figure for these results (skipped ones carry the reason)."""
    plots = [fig_energy_vs_batch(df), fig_pareto(df), fig_throughput_latency(df), fig_backends_side_by_side(df),
             fig_phases(df)]
    # --- quality (llem/results/quality.py): only for results that evaluated quality ---
    if any(c.startswith("quality_") for c in df.columns):
        from llem.results.quality import fig_quality_vs_energy

        plots.append(fig_quality_vs_energy(df))
    # --- end quality ---
    ts_entries = [e for e in loaded.entries if e.timeseries_path() is not None]
    if timeseries_limit is not None:
        ts_entries = ts_entries[:timeseries_limit]
    if not ts_entries:
        plots.append(Plot("timeseries", skipped="no job directory holds a timeseries.parquet"))
    for i, e in enumerate(ts_entries):
        if progress:
            progress(i + 1, len(ts_entries), f"timeseries {e.job_id}")
        try:
            ts = pd.read_parquet(e.timeseries_path())
        except Exception as err:  # a broken file skips one figure, not the command
            plots.append(Plot(f"timeseries_{e.job_id}", skipped=f"cannot read {e.timeseries_path()}: {err}"))
            continue
        window = e.result.steady_state_window if e.result is not None else None
        plots.append(fig_timeseries(ts, e.job_id, window))
    return plots


def save_png(fig, path: Path) -> Path:
    """Render to a temporary file beside ``path`` and rename, so no half-written PNG is left."""
    from llem.fsio import write_file_atomic

    return write_file_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_plots(loaded, df: pd.DataFrame, out_dir: str | Path, *,
                progress: Optional[Callable[[int, int, str], None]] = None) -> list[Plot]:
    out = Path(out_dir)
    plots = build_plots(loaded, df, progress=progress)
    drawable = [p for p in plots if p.figure is not None]
    for i, p in enumerate(drawable):
        if progress:
            progress(i + 1, len(drawable), f"writing {p.name}.png")
        p.path = save_png(p.figure, out / f"{p.name}.png")
    return plots
