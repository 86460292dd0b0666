"""Terminal tables of results: what ``llem results show`` and ``compare`` print.

``show`` fits a 120-column terminal by default. Its columns are :data:`SHOW_COLUMNS`, each with a
short header and a rank saying how early it gives way when the table is too wide; columns whose
value is the same in every row go to one "all jobs:" line above the table, columns with no value
in any row are left out, and whatever still does not fit is hidden with a note naming it (``--wide``
shows everything, ``--columns`` picks). A metric with a CI prints ``value [low, high]``
(llem/results/fmt.py). To show a new metric (quality scores, ...), add a :class:`ShowColumn`; a metric
whose table row has ``<name>_ci95_low``/``_ci95_high`` can set ``ci=True``.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from llem.results.fmt import fmt_ci, fmt_num

DEFAULT_WIDTH = 120
SEP = "  "


@dataclass(frozen=True)
class ShowColumn:
    name: str                          # the results-table column (the shared vocabulary)
    label: str                         # the header printed over it
    hide_rank: int = 0                 # 0: always shown; when too wide, the highest rank goes first
    ci: bool = False                   # print the column's 95% CI after the value
    energy: bool = False               # an energy number: '*' marks an estimate
    max_width: Optional[int] = None    # text longer than this is cut when fitting
    stderr: bool = False               # print " ± <name>_stderr" after the value (quality scores)
    random_weights_mark: bool = False  # '†' where the row's quality was evaluated on random weights


SHOW_COLUMNS: list[ShowColumn] = [
    # what identifies a row is never hidden (a long model name is cut instead)
    ShowColumn("job_id", "job"),
    ShowColumn("status", "status"),
    ShowColumn("backend", "backend"),
    ShowColumn("model", "model", max_width=28),
    ShowColumn("precision", "precision"),
    ShowColumn("batch", "batch"),
    # raw and adjusted energy stay together as long as they can; the reciprocal tokens/J goes first
    ShowColumn("energy_per_output_token_j", "J/token [95% CI]", ci=True, energy=True),
    ShowColumn("energy_adjusted_per_output_token_j", "adj. J/token [95% CI]", hide_rank=3, ci=True, energy=True),
    ShowColumn("output_tokens_per_s", "tok/s [95% CI]", ci=True),
    ShowColumn("tokens_per_joule", "tokens/J [95% CI]", hide_rank=9, ci=True, energy=True),
    ShowColumn("ttft_ms_p50", "TTFT p50 ms", hide_rank=6),
    ShowColumn("itl_ms_p50", "ITL p50 ms", hide_rank=7),
    ShowColumn("n_warnings", "warnings", hide_rank=8),
]
#: config columns that may move to the "all jobs:" line when every row has the same value
CONSTANT_OK = {"model", "precision", "backend", "batch", "status"}


def column_spec(name: str, available: Sequence[str] = (), more: Sequence[ShowColumn] = ()) -> ShowColumn:
    """The registered spec of ``name`` (in SHOW_COLUMNS or ``more``), or a plain one (header = the
    column name; its CI shown when the table has ``<name>_ci95_low``/``_ci95_high``)."""
    for c in [*SHOW_COLUMNS, *more]:
        if c.name == name:
            return c
    ci = f"{name}_ci95_low" in available and f"{name}_ci95_high" in available
    return ShowColumn(name, name + (" [95% CI]" if ci else ""), ci=ci)


def _isna(v) -> bool:
    if v is None or v is pd.NA:
        return True
    try:
        return bool(isinstance(v, float) and math.isnan(v))
    except TypeError:
        return False


def fmt_value(v, digits: int = 4) -> str:
    """One cell: numbers with ``digits`` significant digits, booleans yes/no, missing as n/a."""
    if _isna(v):
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return fmt_num(float(v), digits)
    return str(v)


def cell(row: dict, col: ShowColumn) -> str:
    v = row.get(col.name)
    if _isna(v):
        return "n/a"
    s = fmt_value(v)
    if col.stderr and not _isna(row.get(f"{col.name}_stderr")):
        s += f" ± {fmt_num(float(row[f'{col.name}_stderr']), 2)}"
    if col.ci and not isinstance(v, str):
        ci = fmt_ci(row.get(f"{col.name}_ci95_low"), row.get(f"{col.name}_ci95_high"), v)
        if ci:
            s += f" {ci}"
    if col.random_weights_mark and row.get("quality_meaningless") is True:
        s += " †"
    elif col.energy and row.get("energy_estimated") is True:
        s += " *"
    return s


def _cut(text: str, width: Optional[int]) -> str:
    if width is None or len(text) <= width:
        return text
    return text[: max(1, width - 3)] + "..."


def render(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    out = [SEP.join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
           SEP.join("-" * w for w in widths)]
    for r in rows:
        out.append(SEP.join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(out)


def table_width(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return sum(widths) + len(SEP) * max(0, len(widths) - 1)


@dataclass
class ShowTable:
    text: str                  # the table itself
    common: list               # "name=value" of columns equal in every row (moved out of the table)
    hidden: list               # names hidden to fit the width
    empty: list                # names left out because no row has a value
    shown: list                # the ShowColumns in the table


def show_table(df: pd.DataFrame, columns: Optional[Sequence[str]] = None, *, wide: bool = False,
               width: int = DEFAULT_WIDTH, extra: Sequence[str] = (), more: Sequence[ShowColumn] = ()) -> ShowTable:
    """The ``show`` table of ``df``. ``columns``: exactly these (no fitting); ``wide``: every
    default column, unfitted; else the default columns fitted to ``width``. ``extra``: columns
    the caller needs shown in any case (the ``--sort`` column). ``more``: default columns that
    depend on the results (each quality task's score and quality_per_joule, llem/results/quality.py)."""
    records = df.to_dict("records")
    if columns:
        specs = [column_spec(c, list(df.columns), more) for c in columns]
        return _table(records, specs, [], [], [])
    specs = [c for c in [*SHOW_COLUMNS, *more] if c.name in df.columns]
    specs += [column_spec(c, list(df.columns), more) for c in extra if c not in {s.name for s in specs}]
    if wide:
        return _table(records, specs, [], [], [])
    keep_names = set(extra)
    empty = [s.name for s in specs if s.name not in keep_names and s.hide_rank > 0
             and all(_isna(r.get(s.name)) for r in records)]
    common = []
    if len(records) > 1:
        for s in specs:
            vals = {fmt_value(r.get(s.name)) for r in records}
            if s.name in CONSTANT_OK and s.name not in keep_names and len(vals) == 1:
                common.append(f"{s.name}={vals.pop()}")
    common_names = {c.split("=")[0] for c in common}
    specs = [s for s in specs if s.name not in empty and s.name not in common_names]
    cut = list(specs)
    hidden: list[str] = []
    while True:
        headers, rows = _cells(records, cut, fitted=True)
        if table_width(headers, rows) <= width:
            break
        droppable = [s for s in cut if s.hide_rank > 0 and s.name not in keep_names]
        if not droppable:
            break
        worst = max(droppable, key=lambda s: s.hide_rank)
        hidden.append(worst.name)
        cut = [s for s in cut if s is not worst]
    return _table(records, cut, common, hidden, empty, fitted=True)


def _cells(records, specs, fitted=False):
    headers = [s.label for s in specs]
    rows = [[_cut(cell(r, s), s.max_width if fitted else None) for s in specs] for r in records]
    return headers, rows


def _table(records, specs, common, hidden, empty, fitted=False) -> ShowTable:
    headers, rows = _cells(records, specs, fitted)
    return ShowTable(render(headers, rows), common, hidden, empty, list(specs))


def column_key(specs: Sequence[ShowColumn]) -> Optional[str]:
    """"J/token = energy_per_output_token_j, ...": the names ``--sort``/``--columns`` take."""
    labels = [(s.label.replace(" [95% CI]", ""), s.name) for s in specs]
    pairs = [f"{label} = {name}" for label, name in labels if label != name]
    return ", ".join(pairs) if pairs else None


def warnings_block(entries, df: pd.DataFrame, width: int = DEFAULT_WIDTH) -> list[str]:
    """Every measurement warning, grouped by job, wrapped to ``width``."""
    order = {str(j): i for i, j in enumerate(df["job_id"].astype(str))} if "job_id" in df.columns else {}
    out = []
    for e in sorted(entries, key=lambda e: order.get(str(e.job_id), 1 << 30)):
        r = e.result
        if r is None or not r.warnings:
            continue
        out.append(f"  {e.job_id} ({r.backend} {r.model} {r.precision} batch {r.batch}): {len(r.warnings)}")
        for w in r.warnings:
            out.extend(textwrap.wrap(w, width=width, initial_indent="    - ", subsequent_indent="      "))
    return out


def wrap_note(text: str, width: int = DEFAULT_WIDTH, indent: str = "  - ") -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=" " * len(indent))


# --- compare --------------------------------------------------------------------------------------

SCOPE_WORDS = {"gpu": "GPU", "host": "host CPU+DRAM"}


def energy_description(df: pd.DataFrame) -> str:
    """How a side's energy was measured, in a few words: "codecarbon (estimated, host CPU+DRAM)",
    "nvml (GPU)", "not measured in 2 of 4 jobs" (joined when jobs differ)."""
    parts = []
    done = df[df["status"].fillna("") == "completed"] if "status" in df.columns else df
    measured = done[done["energy_measured"].fillna(False).astype(bool)] if "energy_measured" in done.columns else done
    counts: dict = {}
    for r in measured.to_dict("records"):
        meter, est, scope = (None if _isna(r.get(k)) else r.get(k)
                             for k in ("energy_meter", "energy_estimated", "energy_scope"))
        how = ", ".join(x for x in ("estimated" if est is True else None, SCOPE_WORDS.get(scope, scope)) if x)
        key = f"{meter or 'unknown meter'}" + (f" ({how})" if how else "")
        counts[key] = counts.get(key, 0) + 1
    for key, n in counts.items():
        parts.append(key + (f" in {n} of {len(done)} jobs" if n != len(done) else ""))
    missing = len(done) - len(measured)
    if missing:
        parts.append("not measured" + (f" in {missing} of {len(done)} jobs" if len(done) > 1 else ""))
    return "; ".join(parts) or "no completed job"


def _config_of(row: dict) -> str:
    bits = [str(row[k]) for k in ("backend", "model", "precision") if not _isna(row.get(k))]
    if not _isna(row.get("batch")):
        bits.append(f"batch {row['batch']}")
    return " ".join(bits)


def compare_text(cmp: pd.DataFrame, a, b, width: int = DEFAULT_WIDTH) -> str:
    """The ``compare`` report: both sides named with their energy meters, then one block per
    matched pair of jobs (a title line with the config, a row per metric), then the full reasons
    of missing values, each once, numbered, so that rows stay short where energy is missing."""
    (la, fa), (lb, fb) = a, b
    rows_a = {str(r["job_id"]): r for r in fa.to_dict("records")} if "job_id" in fa.columns else {}
    rows_b = {str(r["job_id"]): r for r in fb.to_dict("records")} if "job_id" in fb.columns else {}
    if len(fa) == 1 and not rows_a:
        rows_a = {None: fa.to_dict("records")[0]}
    if len(fb) == 1 and not rows_b:
        rows_b = {None: fb.to_dict("records")[0]}
    out = []
    for side, lab, frame in (("A", la, fa), ("B", lb, fb)):
        out.extend(textwrap.wrap(f"{side}: {lab.label} ({lab.path}); energy: {energy_description(frame)}",
                                 width=width, subsequent_indent="   "))
    out.append("")
    reasons: dict = {}   # reason -> (number, [(side, job)])

    def ref(side: str, job, reason) -> str:
        n, who = reasons.setdefault(reason, (len(reasons) + 1, []))
        if (side, job) not in who:
            who.append((side, job))
        return f"[{n}]"

    headers = ["metric", "A [95% CI]", "B [95% CI]", "B-A", "B vs A", "CIs overlap"]
    groups = []
    records = cmp.to_dict("records")
    keys = []
    for r in records:
        k = (r["match"], r["job_id_a"], r["job_id_b"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        rs = [r for r in records if (r["match"], r["job_id_a"], r["job_id_b"]) == k]
        match, ja, jb = k
        ra = rows_a.get(None if _isna(ja) else str(ja)) or (rows_a.get(None) if len(rows_a) == 1 else None)
        rb = rows_b.get(None if _isna(jb) else str(jb)) or (rows_b.get(None) if len(rows_b) == 1 else None)
        ca, cb = (_config_of(ra) if ra is not None else None), (_config_of(rb) if rb is not None else None)
        if ca and cb and ca != cb:
            title = f"A {fmt_value(ja)}: {ca} | B {fmt_value(jb)}: {cb}"
        else:
            title = f"{ca or cb or _config_of(rs[0])}: A {fmt_value(ja)}, B {fmt_value(jb)}"
        title += f" ({match})" if match not in ("single results",) else ""
        lines = []
        for r in rs:
            notes = []
            for part in ([] if _isna(r["note"]) else str(r["note"]).split("; ")):
                if part in ("no CI", "CI missing"):
                    continue  # said by the "CIs overlap" cell
                side = part[:1] if part[:3] in ("A: ", "B: ") else None
                reason = r.get(f"{side.lower()}_missing_reason") if side else None
                job = ja if side == "A" else jb
                notes.append(part + (f" {ref(side, job, reason)}" if side and not _isna(reason) else ""))
            rel = "n/a" if _isna(r["rel_diff_pct"]) else f"{r['rel_diff_pct']:+.1f}%"
            if not _isna(r["ci_overlap"]):
                ov = "yes" if r["ci_overlap"] else "NO (differ)"
            elif _isna(r["diff"]):
                ov = "n/a"
            else:
                ov = "no CI"
            lines.append(([str(r["metric"]), _side(r, "a"), _side(r, "b"),
                           "n/a" if _isna(r["diff"]) else fmt_value(r["diff"]), rel, ov], notes))
        groups.append((title, lines))
    all_rows = [ln for _, lines in groups for ln, _ in lines]
    widths = [max([len(h)] + [len(r[i]) for r in all_rows]) for i, h in enumerate(headers)]
    out.append("  " + SEP.join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    out.append("  " + SEP.join("-" * w for w in widths))
    for title, lines in groups:
        out.append(title)
        for ln, notes in lines:
            out.append("  " + SEP.join(c.ljust(w) for c, w in zip(ln, widths)).rstrip())
            # notes under their row: the table stays narrow where energy is missing
            if notes:
                out.extend(textwrap.wrap("; ".join(notes), width=width, initial_indent="      note: ",
                                         subsequent_indent="            "))
    if reasons:
        out.append("")
        out.append("reasons:")
        for reason, (n, who) in reasons.items():
            jobs = ", ".join(f"{side} {fmt_value(job)}" for side, job in who)
            out.extend(textwrap.wrap(f"[{n}] {jobs}: {reason}", width=width, initial_indent="  ",
                                     subsequent_indent="      "))
    out.append("")
    out.extend(textwrap.wrap("CIs overlap = the two 95% CIs intersect; that does not show the values are equal. "
                             "'NO (differ)' = the difference exceeds the cycle-to-cycle spread of both.", width=width))
    return "\n".join(out)


def _side(r: dict, p: str) -> str:
    v = r[p]
    if _isna(v):
        return "n/a"
    ci = fmt_ci(r[f"{p}_ci95_low"], r[f"{p}_ci95_high"], v)
    return fmt_value(v) + (f" {ci}" if ci else "")
