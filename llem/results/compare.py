"""Two results, or two studies, side by side.

For each matched pair of jobs and each metric: A, B, B - A, (B - A) / A in percent, and whether
the two 95% CIs overlap. A value that is missing gets a short ``note`` ("A: energy not measured")
and its full reason in ``a_missing_reason``/``b_missing_reason``. Non-overlapping CIs mean the difference is unlikely to be cycle-to-cycle
noise; overlapping CIs do *not* show the two are equal (the test is conservative), so the column
is named for what it checks, not for a conclusion.

Jobs are matched on ``config_hash`` first, then on the config columns (backend, model,
precision, batch and any swept config keys), so a study re-run with a newer llem (new hashes)
still lines up with the old one.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd

from llem.errors import ConfigError
from llem.measure.stats import ci_kind
from llem.results.table import STAT_METRICS, metric_columns

DEFAULT_METRICS = ["energy_per_output_token_j", "energy_adjusted_per_output_token_j", "tokens_per_joule",
                   "output_tokens_per_s", "energy_j", "ttft_ms_p50", "itl_ms_p50", "e2e_latency_ms_p50"]
DEFAULT_STUDY_METRICS = ["energy_per_output_token_j", "output_tokens_per_s"]
# totals over a job's measured windows: their size is set by window sizing and cycles, not by the
# configuration, so two jobs' totals differ whenever their windows do
TOTAL_METRICS = {"energy_j", "energy_adjusted_j", "cpu_energy_j", "dram_energy_j"}
MATCH_COLUMNS = ["backend", "model", "precision", "batch", "output_len", "input_len", "num_prompts"]

COMPARE_COLUMNS = ["match", "job_id_a", "job_id_b", "backend", "model", "precision", "batch", "metric",
                   "a", "a_ci95_low", "a_ci95_high", "b", "b_ci95_low", "b_ci95_high", "diff", "rel_diff_pct",
                   "ci_overlap", "note", "a_missing_reason", "b_missing_reason"]
_DTYPES = {"match": "string", "job_id_a": "string", "job_id_b": "string", "backend": "string", "model": "string",
           "precision": "string", "batch": "Int64", "metric": "string", "ci_overlap": "boolean", "note": "string",
           "a_missing_reason": "string", "b_missing_reason": "string"}
ENERGY_PREFIXES = ("energy", "tokens_per_joule", "prefill_energy", "decode_energy", "carbon_")


def check_metrics(metrics: Sequence[str], *frames: pd.DataFrame) -> list[str]:
    allowed = sorted(set.intersection(*(set(metric_columns(f)) for f in frames)))
    for m in metrics:
        if m not in allowed:
            raise ConfigError(f"--metric: {m!r} is not a metric column; allowed: {', '.join(allowed)}",
                              field="metric", value=m, allowed=allowed)
    return list(metrics)


def ci_overlap(a_lo, a_hi, b_lo, b_hi) -> Optional[bool]:
    vals = [a_lo, a_hi, b_lo, b_hi]
    if any(v is None or pd.isna(v) for v in vals):
        return None
    return bool(max(a_lo, b_lo) <= min(a_hi, b_hi))


def _val(row: Optional[pd.Series], col: str):
    if row is None or col not in row.index:
        return None
    v = row[col]
    return None if pd.isna(v) else v


def _why_missing(row: pd.Series, metric: str, side: str) -> tuple[str, Optional[str]]:
    """A short note (``"A: energy not measured"``) and the full reason, kept apart so that a table
    stays readable: the reason is the same for every energy metric of a job."""
    if row is None:
        return f"no job in {side}", None
    status = _val(row, "status")
    if status not in (None, "completed"):
        return f"{side}: job {status}", _val(row, "error_message")
    if metric.startswith(ENERGY_PREFIXES):
        reason = _val(row, "energy_not_measured_reason")
        if reason:
            return f"{side}: energy not measured", str(reason)
        if "adjusted" in metric and _val(row, "energy_adjusted_reason"):
            return f"{side}: no adjusted energy", str(_val(row, "energy_adjusted_reason"))
    return f"{side}: {metric} not recorded", None


def _pair_rows(a_row, b_row, metrics, match) -> list[dict]:
    out = []
    ref = a_row if a_row is not None else b_row
    for m in metrics:
        a, b = _val(a_row, m), _val(b_row, m)
        rec = {"match": match, "job_id_a": _val(a_row, "job_id"), "job_id_b": _val(b_row, "job_id"),
               "backend": _val(ref, "backend"), "model": _val(ref, "model"), "precision": _val(ref, "precision"),
               "batch": _val(ref, "batch"), "metric": m, "a": a, "b": b,
               "a_ci95_low": _val(a_row, f"{m}_ci95_low"), "a_ci95_high": _val(a_row, f"{m}_ci95_high"),
               "b_ci95_low": _val(b_row, f"{m}_ci95_low"), "b_ci95_high": _val(b_row, f"{m}_ci95_high"),
               "diff": None, "rel_diff_pct": None, "ci_overlap": None, "note": None,
               "a_missing_reason": None, "b_missing_reason": None}
        notes = []
        if a is None:
            short, rec["a_missing_reason"] = _why_missing(a_row, m, "A")
            notes.append(short)
        if b is None:
            short, rec["b_missing_reason"] = _why_missing(b_row, m, "B")
            notes.append(short)
        if a is not None and b is not None:
            rec["diff"] = float(b) - float(a)
            rec["rel_diff_pct"] = (float(b) - float(a)) / abs(float(a)) * 100 if a else None
            rec["ci_overlap"] = ci_overlap(rec["a_ci95_low"], rec["a_ci95_high"], rec["b_ci95_low"],
                                           rec["b_ci95_high"])
            if rec["ci_overlap"] is None:
                notes.append("no CI" if m not in STAT_METRICS else "CI missing")
            elif m in STAT_METRICS:
                ma, mb = ci_kind(_val(a_row, "ci_method")), ci_kind(_val(b_row, "ci_method"))
                if ma and mb and ma != mb:
                    notes.append(f"CIs made differently (A: {ma}, B: {mb}): the overlap is not like for like")
            ta, tb = _val(a_row, "output_tokens"), _val(b_row, "output_tokens")
            if m in TOTAL_METRICS and ta is not None and tb is not None and ta != tb:
                notes.append(f"a total over each job's windows (A: {ta}, B: {tb} output tokens); "
                             "compare per-token metrics")
        rec["note"] = "; ".join(notes) or None
        out.append(rec)
    return out


def _key(row: pd.Series, cols: list[str]) -> tuple:
    return tuple(None if pd.isna(row[c]) else str(row[c]) for c in cols)


def compare_frames(a: pd.DataFrame, b: pd.DataFrame, metrics: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Long table: one row per (matched pair of jobs, metric)."""
    if metrics is None:
        metrics = DEFAULT_METRICS if len(a) == 1 and len(b) == 1 else DEFAULT_STUDY_METRICS
        metrics = [m for m in metrics if m in a.columns and m in b.columns]
        # --- quality (llem/results/quality.py): shared tasks' scores and quality_per_joule ---
        from llem.results.quality import compare_metrics

        metrics += compare_metrics(a, b)
        # --- end quality ---
    else:
        metrics = check_metrics(metrics, a, b)
    recs: list[dict] = []
    if len(a) == 1 and len(b) == 1:
        recs += _pair_rows(a.iloc[0], b.iloc[0], metrics, "single results")
    else:
        extra = sorted((set(a.columns) & set(b.columns)) - set(MATCH_COLUMNS))
        swept = [c for c in extra if "." in c]
        cols = [c for c in MATCH_COLUMNS + swept if c in a.columns and c in b.columns]
        used_b: set[int] = set()
        for _, ra in a.iterrows():
            jb, how = None, None
            h = _val(ra, "config_hash")
            if h is not None:
                hits = [i for i in range(len(b)) if i not in used_b and _val(b.iloc[i], "config_hash") == h]
                if hits:
                    jb, how = hits[0], "config_hash"
            if jb is None:
                k = _key(ra, cols)
                hits = [i for i in range(len(b)) if i not in used_b and _key(b.iloc[i], cols) == k]
                if hits:
                    jb, how = hits[0], "config"
            if jb is not None:
                used_b.add(jb)
                recs += _pair_rows(ra, b.iloc[jb], metrics, how)
            else:
                recs += _pair_rows(ra, None, metrics, "only in A")
        for i in range(len(b)):
            if i not in used_b:
                recs += _pair_rows(None, b.iloc[i], metrics, "only in B")
    df = pd.DataFrame(recs, columns=COMPARE_COLUMNS)
    for c in COMPARE_COLUMNS:
        dt = _DTYPES.get(c, "Float64")
        if dt == "boolean":
            df[c] = df[c].astype("object").astype("boolean")
        elif dt == "string":
            df[c] = df[c].astype("object").where(df[c].notna(), None).astype("string")
        else:
            df[c] = pd.to_numeric(df[c].astype("object"), errors="coerce").astype(dt)
    return df
