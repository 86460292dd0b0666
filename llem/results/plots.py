"""PNG figures of a study or a result.

- ``energy_per_token_vs_batch``: J/output token against batch, one series per backend
  (and model/precision when those vary), with the 95% CI of each point as an error bar;
- ``pareto_throughput_vs_energy``: output tokens/s against J/output token, with the Pareto
  frontier (no other job is both cheaper and faster);
- ``timeseries_<job>``: per-GPU power and temperature from the job's ``timeseries.parquet``,
  with the measured window shaded;
- ``phases_prefill_decode``: prefill and decode energy per job, from ``result.phases``;
- ``quality_vs_energy`` (results with quality only): each task's score against J/output token,
  error bars on both axes, Pareto frontier marked (llem/results/quality.py).

Missing data never becomes a plotted 0: a job without measured energy is left out of the
energy figures and counted in a note on the figure; a figure with nothing to show is skipped and
the reason is returned. Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas,
without pyplot, so nothing global (backend, open figures) changes in the caller's process.
"""
from __future__ import annotations

import os
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from llem.errors import LlemError

ESTIMATED_TAG = " [estimated]"


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


def _new_figure(w=7.0, h=4.5, rows=1, sharex=False):
    Figure, Canvas = _mpl()
    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    Canvas(fig)
    axes = fig.subplots(rows, 1, sharex=sharex)
    return fig, axes


def _series_keys(df: pd.DataFrame) -> list[str]:
    keys = ["backend"]
    for k in ("model", "precision"):
        if k in df.columns and df[k].nunique(dropna=True) > 1:
            keys.append(k)
    return keys


def _series_label(row_or_key, keys) -> str:
    vals = row_or_key if isinstance(row_or_key, tuple) else (row_or_key,)
    return " · ".join(str(v) for v in vals)


def _measured(df: pd.DataFrame, col: str) -> pd.Series:
    ok = df[col].notna()
    if "energy_measured" in df.columns:
        ok &= df["energy_measured"].fillna(False).astype(bool)
    if "status" in df.columns:
        ok &= df["status"].fillna("") == "completed"
    return ok


def _excluded_note(df: pd.DataFrame, mask: pd.Series) -> Optional[str]:
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
            reasons.append("value missing")
    counts = pd.Series(reasons).value_counts()
    return f"not shown: {len(left)} job(s) (" + ", ".join(f"{n} {why}" for why, n in counts.items()) + ")"


def _footnote(fig, text: Optional[str]) -> None:
    # anchored to the axes (not the figure) so constrained layout makes room below the x label
    if text:
        ax = fig.axes[-1]
        ax.annotate(text, xy=(0, 0), xycoords="axes fraction", xytext=(0, -34), textcoords="offset points",
                    fontsize=7, color="0.35", ha="left", va="top")


def fig_energy_vs_batch(df: pd.DataFrame, metric: str = "energy_per_output_token_j") -> Plot:
    name = "energy_per_token_vs_batch"
    mask = _measured(df, metric) & df["batch"].notna()
    data = df[mask]
    if data.empty:
        return Plot(name, skipped=f"no job has a measured {metric}" + _reason_suffix(df))
    fig, ax = _new_figure()
    keys = _series_keys(data)
    for key, g in data.groupby(keys, sort=True, dropna=False):
        g = g.sort_values("batch")
        x = g["batch"].astype(float).to_numpy()
        y = g[metric].astype(float).to_numpy()
        lo = g.get(f"{metric}_ci95_low", pd.Series(np.nan, index=g.index)).astype("Float64").to_numpy(
            dtype=float, na_value=np.nan)
        hi = g.get(f"{metric}_ci95_high", pd.Series(np.nan, index=g.index)).astype("Float64").to_numpy(
            dtype=float, na_value=np.nan)
        # a point without a CI gets no bar (NaN), not a zero-length bar that would claim certainty
        yerr = np.vstack([y - lo, hi - y])
        est = bool(g["energy_estimated"].fillna(False).any()) if "energy_estimated" in g.columns else False
        label = _series_label(key if isinstance(key, tuple) else (key,), keys) + (ESTIMATED_TAG if est else "")
        ax.errorbar(x, y, yerr=yerr, fmt="o--" if est else "o-", capsize=4, label=label,
                    mfc="none" if est else None)
    batches = sorted(set(data["batch"].astype(int)))
    if batches and batches[0] > 0 and batches[-1] / batches[0] >= 4:
        ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_xlabel("batch")
    ax.set_ylabel(f"{metric} (J/token)")
    ax.set_title("Energy per output token vs batch (error bars: 95% CI over cycles)")
    ax.grid(True, alpha=0.3)
    ax.legend(title=" · ".join(keys))
    _footnote(fig, _excluded_note(df, mask))
    return Plot(name, fig)


def _reason_suffix(df: pd.DataFrame) -> str:
    if "energy_not_measured_reason" in df.columns:
        reasons = df["energy_not_measured_reason"].dropna().unique().tolist()
        if reasons:
            r = str(reasons[0])
            return f" ({r[:160]}{'...' if len(r) > 160 else ''})"
    return ""


def pareto_frontier(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of points no other point beats on both (lower x, higher y), ordered by x."""
    order = np.lexsort((-y, x))
    front, best_y = [], -np.inf
    for i in order:
        if y[i] > best_y:
            front.append(i)
            best_y = y[i]
    return np.array(front, dtype=int)


def fig_pareto(df: pd.DataFrame, x_metric: str = "energy_per_output_token_j",
               y_metric: str = "output_tokens_per_s") -> Plot:
    name = "pareto_throughput_vs_energy"
    mask = _measured(df, x_metric) & df[y_metric].notna()
    data = df[mask].reset_index(drop=True)
    if data.empty:
        return Plot(name, skipped=f"no job has both a measured {x_metric} and {y_metric}" + _reason_suffix(df))
    fig, ax = _new_figure()
    keys = _series_keys(data)
    for key, g in data.groupby(keys, sort=True, dropna=False):
        est = bool(g["energy_estimated"].fillna(False).any()) if "energy_estimated" in g.columns else False
        label = _series_label(key if isinstance(key, tuple) else (key,), keys) + (ESTIMATED_TAG if est else "")
        ax.scatter(g[x_metric].astype(float), g[y_metric].astype(float), label=label,
                   facecolors="none" if est else None, edgecolors="C0" if est else None)
    x = data[x_metric].astype(float).to_numpy()
    y = data[y_metric].astype(float).to_numpy()
    front = pareto_frontier(x, y)
    ax.plot(x[front], y[front], "-", color="k", lw=1.2, alpha=0.7, marker="o", ms=13, mfc="none",
            label="Pareto frontier", zorder=0)
    for i in front:
        b = data.loc[i, "batch"]
        ax.annotate(f"{data.loc[i, 'backend']} b{b}", (x[i], y[i]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    ax.set_xlabel(f"{x_metric} (J/token, lower is better)")
    ax.set_ylabel(f"{y_metric} (tokens/s, higher is better)")
    ax.set_title("Throughput vs energy per output token")
    ax.grid(True, alpha=0.3)
    ax.legend()
    _footnote(fig, _excluded_note(df, mask))
    return Plot(name, fig)


TIME_COLUMNS = ("t_s", "time_s", "elapsed_s", "relative_s", "timestamp_s")
# llem.sampler.COLUMNS names them t_s / gpu_index / power_w / temperature_c / cycle; the
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


def fig_phases(df: pd.DataFrame) -> Plot:
    name = "phases_prefill_decode"
    cols = ("prefill_energy_j", "decode_energy_j")
    if not all(c in df.columns for c in cols):
        return Plot(name, skipped="no phase columns in these results")
    mask = df[cols[0]].notna() & df[cols[1]].notna()
    if "status" in df.columns:
        mask &= df["status"].fillna("") == "completed"
    data = df[mask]
    if data.empty:
        return Plot(name, skipped="no job recorded a prefill/decode energy split (result.phases is empty)")
    fig, ax = _new_figure(w=max(6.0, 0.6 * len(data) + 2))
    labels = [f"{r.backend} b{r.batch}" + (f"\n{r.job_id}" if len(data) > 1 else "") for r in data.itertuples()]
    x = np.arange(len(data))
    pre = data["prefill_energy_j"].astype(float).to_numpy()
    dec = data["decode_energy_j"].astype(float).to_numpy()
    ax.bar(x, pre, label="prefill", color="C1")
    ax.bar(x, dec, bottom=pre, label="decode", color="C0")
    ax.set_xticks(x, labels, fontsize=7)
    pers = sorted(set(data["phase_per"].dropna().astype(str))) if "phase_per" in data.columns else []
    ax.set_ylabel("energy_j (J)" + (f", per {pers[0]}" if len(pers) == 1 else ""))
    est = bool(data["energy_estimated"].fillna(False).any()) if "energy_estimated" in data.columns else False
    ax.set_title("Prefill vs decode energy per job" + (ESTIMATED_TAG if est else ""))
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    methods = sorted(set(data["phase_method"].dropna().astype(str))) if "phase_method" in data.columns else []
    notes = [textwrap.fill("split: " + m, 90) for m in methods]
    excluded = _excluded_note(df, mask)
    _footnote(fig, "\n".join(notes + ([excluded] if excluded else [])) or None)
    return Plot(name, fig)


def build_plots(loaded, df: pd.DataFrame, *, progress: Optional[Callable[[int, int, str], None]] = None,
                timeseries_limit: Optional[int] = None) -> list[Plot]:
    """Every figure for these results (skipped ones carry the reason)."""
    plots = [fig_energy_vs_batch(df), fig_pareto(df), fig_phases(df)]
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
