"""Static leaderboard files: one JSON per study plus ``index.json`` (schema: docs/leaderboard-schema.md).

A web page renders them with no llem installed, so each file carries its own column
definitions (label, unit, direction), the ranking rule, and for every entry the reason a number
is missing. Unmeasured or failed entries are listed unranked, never ranked as 0 J.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from llem.errors import ConfigError
from llem.results.export import _jsonable, write_text_atomic
from llem.results.table import coerce, higher_is_better, unit_of

# 1.1: quality metrics and entry.quality; 1.2: job files (environment, methodology, time series,
# phase split), p99 latencies, reasons for missing metrics, synthetic_reason (docs/leaderboard-schema.md)
SCHEMA_VERSION = "1.2"
STUDY_SCHEMA = "llem.leaderboard.study"
INDEX_SCHEMA = "llem.leaderboard.index"
RANK_METRIC = "energy_per_output_token_j"

CONFIG_KEYS = ["backend", "backend_version", "model", "precision", "batch", "device", "gpu_name", "output_len",
               "input_len", "num_prompts", "dataset"]
# metric -> (label, description); metrics with a CI carry ci95_low/ci95_high/n beside the value
METRICS: dict[str, tuple[str, str]] = {
    "energy_per_output_token_j": ("Energy per output token", "raw GPU energy over measured cycles / output tokens"),
    "energy_adjusted_per_output_token_j": ("Energy per output token (baseline-adjusted)",
                                           "energy minus idle baseline power x duration, per output token"),
    "tokens_per_joule": ("Tokens per joule", "output tokens per joule of raw energy"),
    "output_tokens_per_s": ("Throughput", "output tokens per second over measured cycles"),
    "energy_j": ("Energy (raw)", "total raw energy of the measured cycles"),
    "energy_adjusted_j": ("Energy (baseline-adjusted)", "total energy minus baseline power x duration"),
    "baseline_power_w": ("Idle baseline power", "idle power measured before the model loaded"),
    "ttft_ms_p50": ("TTFT p50", "time to first token, median"),
    "ttft_ms_p95": ("TTFT p95", "time to first token, 95th percentile"),
    "ttft_ms_p99": ("TTFT p99", "time to first token, 99th percentile"),
    "itl_ms_p50": ("ITL p50", "inter-token latency, median"),
    "itl_ms_p99": ("ITL p99", "inter-token latency, 99th percentile"),
    "tpot_ms_mean": ("TPOT mean", "time per output token, mean"),
    "e2e_latency_ms_p50": ("End-to-end latency p50", "request latency, median"),
    "prefill_energy_per_prompt_j": ("Prefill energy per prompt", "prefill phase energy per prompt"),
    "decode_energy_per_output_token_j": ("Decode energy per output token", "decode phase energy per output token"),
}
CI_METRICS = ["energy_per_output_token_j", "energy_adjusted_per_output_token_j", "tokens_per_joule",
              "output_tokens_per_s"]
# metrics with one standard error beside the value (metrics[key].se, 1.2)
SE_METRICS = {"prefill_energy_per_prompt_j": "prefill_energy_per_prompt_se_j",
              "decode_energy_per_output_token_j": "decode_energy_per_output_token_se_j"}
CARBON_KEYS = {"carbon_gco2e": "gco2e", "carbon_gco2e_per_output_token": "gco2e_per_output_token"}
# entry keys copied from the table as they are (1.2 added the last four)
ENTRY_TEXT_KEYS = ["energy_not_measured_reason", "energy_estimated", "energy_meter", "energy_source", "energy_scope",
                   "energy_adjusted_reason", "synthetic_reason"]
_ENERGY_KEYS = {"energy_per_output_token_j", "tokens_per_joule", "energy_j"}
_ADJUSTED_KEYS = {"energy_adjusted_per_output_token_j", "energy_adjusted_j", "baseline_power_w"}


def study_slug(name: str, design_hash: Optional[str]) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.").lower() or "study"
    return f"{s}-{design_hash[:8]}" if design_hash else s


def _opt(row: pd.Series, col: str):
    if col not in row.index:
        return None
    return _jsonable(None if pd.isna(row[col]) else row[col])


def _label(row: pd.Series) -> str:
    parts = [str(_opt(row, k)) for k in ("backend", "model", "precision") if _opt(row, k) is not None]
    if _opt(row, "batch") is not None:
        parts.append(f"batch {_opt(row, 'batch')}")
    return " · ".join(parts)


def columns_block(carbon: bool) -> list[dict]:
    cols = [{"key": k, "label": k.replace("_", " "), "group": "config", "unit": None, "higher_is_better": None,
             "has_ci": False} for k in CONFIG_KEYS]
    for k, (label, desc) in METRICS.items():
        group = "latency" if "_ms_" in k else ("throughput" if k == "output_tokens_per_s" else "energy")
        cols.append({"key": k, "label": label, "description": desc, "group": group, "unit": unit_of(k),
                     "higher_is_better": higher_is_better(k), "has_ci": k in CI_METRICS})
    if carbon:
        cols += [{"key": "gco2e", "label": "Carbon (measured cycles)", "group": "carbon", "unit": "gCO2e",
                  "higher_is_better": False, "has_ci": False,
                  "description": "raw energy x grid intensity x PUE; derived, not measured"},
                 {"key": "gco2e_per_output_token", "label": "Carbon per output token", "group": "carbon",
                  "unit": "gCO2e", "higher_is_better": False, "has_ci": False,
                  "description": "energy per output token x grid intensity x PUE"}]
    return cols


def study_document(df: pd.DataFrame, *, name: str, design_hash: Optional[str] = None,
                   study_meta: Optional[dict] = None, loaded=None) -> dict:
    """The leaderboard document for one study, from its results table.

    With ``loaded`` (what ``df`` was made from) each entry's warnings are the result's own list; from
    the table alone they are its ``"; "``-joined text split again, which also splits a warning
    that itself holds ``"; "``."""
    from llem._version import __version__

    carbon = "carbon_gco2e" in df.columns
    # --- quality (llem/results/quality.py): each task's score and quality_per_joule ---
    from llem.results.quality import leaderboard_columns, leaderboard_metric_keys

    qkeys = leaderboard_metric_keys(df)
    # --- end quality ---
    measured = df["energy_measured"].fillna(False).astype(bool) & df[RANK_METRIC].notna()
    ok = df["status"].fillna("") == "completed"
    ranked = df[measured & ok].sort_values([RANK_METRIC, "job_id"], kind="mergesort")
    rest = df[~(measured & ok)].sort_values("job_id", kind="mergesort")
    warnings = ({e.job_id: list(e.result.warnings) for e in loaded.entries if e.result is not None}
                if loaded is not None else {})
    entries = []
    rank = 0
    prev = None
    for n, (_, row) in enumerate(ranked.iterrows(), start=1):
        v = float(row[RANK_METRIC])
        rank = rank if prev is not None and v == prev else n  # ties share a rank
        prev = v
        entries.append(_entry(row, rank, carbon, qkeys, warnings.get(_opt(row, "job_id"))))
    for _, row in rest.iterrows():
        entries.append(_entry(row, None, carbon, qkeys, warnings.get(_opt(row, "job_id"))))
    status_counts = {str(k): int(v) for k, v in df["status"].fillna("unknown").value_counts().sort_index().items()}
    doc: dict[str, Any] = {
        "schema": STUDY_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generator": {"name": "llem", "version": __version__},
        "study": {"id": study_slug(name, design_hash), "name": name, "study_design_hash": design_hash,
                  "n_jobs": int(len(df)), "n_ranked": int(len(ranked)), "status_counts": status_counts,
                  "synthetic": bool(df["synthetic"].fillna(False).any()) if "synthetic" in df.columns else False,
                  **(study_meta or {})},
        "ranking": {"metric": RANK_METRIC, "order": "ascending",
                    "rule": "completed entries with measured energy, by point estimate; ties share a rank; "
                            "entries without measured energy follow, unranked (rank null)"},
        "columns": columns_block(carbon) + leaderboard_columns(qkeys),
        "carbon": None,
        "entries": entries,
    }
    if carbon:
        first = df.iloc[0]
        doc["carbon"] = {"country": _opt(first, "carbon_country"),
                         "intensity_g_per_kwh": _opt(first, "carbon_intensity_g_per_kwh"),
                         "pue": _opt(first, "carbon_pue"), "source": _opt(first, "carbon_source"),
                         "note": "derived from raw measured energy; never part of the energy figures"}
    return doc


def metric_reason(row: pd.Series, key: str) -> str:
    """Why ``key`` has no value in this row: the job's state, the energy's own reason, or the step
    that did not run. A missing number always says why (it is never shown as 0)."""
    status = _opt(row, "status")
    if status not in (None, "completed"):
        err = ": ".join(str(x) for x in (_opt(row, "error_type"), _opt(row, "error_message")) if x)
        return f"job {status}" + (f" ({err})" if err else "")
    if _opt(row, "result_problem"):
        return str(_opt(row, "result_problem"))
    energy = _opt(row, "energy_not_measured_reason")
    if key in _ENERGY_KEYS:
        return energy or "energy not recorded"
    if key in _ADJUSTED_KEYS:
        return _opt(row, "energy_adjusted_reason") or energy or "no idle baseline recorded"
    if key in SE_METRICS:
        if _opt(row, "phase_energy_not_measured_reason"):
            return str(_opt(row, "phase_energy_not_measured_reason"))
        if energy:
            return energy
        return "no prefill/decode split recorded" if _opt(row, "phase_method") is None else "not recorded"
    if "_ms_" in key:
        return "no latency pass recorded"
    return "not recorded"


def _entry(row: pd.Series, rank: Optional[int], carbon: bool, qkeys=(), warning_list=None) -> dict:
    metrics = {}
    for k in METRICS:
        m = {"value": _opt(row, k)}
        if k in CI_METRICS:
            m.update({"ci95_low": _opt(row, f"{k}_ci95_low"), "ci95_high": _opt(row, f"{k}_ci95_high"),
                      "n": _opt(row, f"{k}_n")})
        if k in SE_METRICS:
            m["se"] = _opt(row, SE_METRICS[k])
        if m["value"] is None:
            m["not_measured_reason"] = metric_reason(row, k)
        metrics[k] = m
    # --- quality (llem/results/quality.py) ---
    if qkeys:
        from llem.results.quality import leaderboard_metrics

        qm = leaderboard_metrics(row, list(qkeys), _opt)
        for m in qm.values():
            if m["value"] is None:  # a missing score says why, like every other metric
                m["not_measured_reason"] = (metric_reason(row, "quality") if _opt(row, "status") not in (None, "completed")
                                            else _opt(row, "quality_reason") or "no quality result for this task")
        metrics.update(qm)
    # --- end quality ---
    warnings = _opt(row, "warnings")
    entry = {
        "rank": rank,
        "job_id": _opt(row, "job_id"),
        "config_hash": _opt(row, "config_hash"),
        "status": _opt(row, "status"),
        "label": _label(row),
        "config": {k: _opt(row, k) for k in CONFIG_KEYS},
        "energy_measured": _opt(row, "energy_measured"),
        **{k: _opt(row, k) for k in ENTRY_TEXT_KEYS},
        "metrics": metrics,
        "warnings": warning_list if warning_list is not None else (warnings.split("; ") if warnings else []),
        "error": ({"type": _opt(row, "error_type"), "message": _opt(row, "error_message")}
                  if _opt(row, "error_type") or _opt(row, "error_message") else None),
        "synthetic": _opt(row, "synthetic"),
        "detail": None,  # the job file, relative to the study file (write_leaderboard fills it in)
    }
    if carbon:
        entry["carbon"] = {v: _opt(row, k) for k, v in CARBON_KEYS.items()}
        entry["carbon"]["not_computed_reason"] = _opt(row, "carbon_not_computed_reason")
    if qkeys:  # --- quality ---
        from llem.results.quality import leaderboard_entry_block

        entry["quality"] = leaderboard_entry_block(row, _opt)
    return entry


def study_args(loaded) -> dict:
    """``name``, ``design_hash`` and ``study_meta`` of a ``LoadedResults``, as the export and the
    server (``llem serve``) both pass them to :func:`study_document`, so the two documents agree."""
    study = loaded.study
    meta = {}
    if study is not None:
        meta = {"created_at": study.created_at, "finished_at": study.finished_at, "llem_version": study.llem_version}
    return {"name": loaded.label, "design_hash": study.study_design_hash if study is not None else None,
            "study_meta": meta}


def write_leaderboard(df: pd.DataFrame, out_dir: str | Path, *, name: str, design_hash: Optional[str] = None,
                      study_meta: Optional[dict] = None, loaded=None) -> tuple[Path, Path]:
    """Write ``<out_dir>/<study id>.json`` and add/replace its line in ``<out_dir>/index.json``.

    Given ``loaded`` (the :class:`llem.results.load.LoadedResults` ``df`` was made from), also one
    job file per entry, ``<out_dir>/<study id>/<job id>.json`` (llem/results/job_detail.py), which
    each entry's ``detail`` names; they are written before the study file that points at them."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {str(out)!r} is a file; the leaderboard export writes a directory",
                          field="out", value=str(out), allowed="a directory")
    doc = study_document(df, name=name, design_hash=design_hash, study_meta=study_meta, loaded=loaded)
    sid = doc["study"]["id"]
    if loaded is not None:
        from llem.results.job_detail import write_job_documents

        write_job_documents(doc, loaded, out)
    # compact: a web page loads every study file at once (10,000 entries: ~25% fewer bytes than indented)
    study_path = write_text_atomic(out / f"{sid}.json", json.dumps(doc, allow_nan=False, separators=(",", ":")))
    index_path = out / "index.json"
    studies = []
    if index_path.is_file():
        try:
            old = json.loads(index_path.read_text())
            if old.get("schema") == INDEX_SCHEMA:
                studies = [s for s in old.get("studies", []) if s.get("id") != sid]
        except ValueError:
            studies = []  # an unreadable index is rebuilt rather than trusted
    studies.append(index_line(doc, study_path.name))
    index = index_document(studies, generated_at=doc["generated_at"])
    write_text_atomic(index_path, json.dumps(index, indent=1, allow_nan=False))
    return study_path, index_path


def index_line(doc: dict, file: str) -> dict:
    """The line of ``index.json`` that lists the study document ``doc``, stored as ``file``."""
    best = next((e for e in doc["entries"] if e["rank"] == 1), None)
    return {"id": doc["study"]["id"], "name": doc["study"]["name"], "file": file,
            "study_design_hash": doc["study"]["study_design_hash"], "n_jobs": doc["study"]["n_jobs"],
            "n_ranked": doc["study"]["n_ranked"], "generated_at": doc["generated_at"],
            "synthetic": doc["study"]["synthetic"],
            "best": ({"job_id": best["job_id"], "label": best["label"],
                      RANK_METRIC: best["metrics"][RANK_METRIC]["value"]} if best else None)}


def index_document(lines: list[dict], *, generated_at: Optional[str] = None) -> dict:
    """``index.json``: the given study lines, sorted by id (then file, for equal ids)."""
    return {"schema": INDEX_SCHEMA, "schema_version": SCHEMA_VERSION,
            "generated_at": generated_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "studies": sorted(lines, key=lambda s: (s["id"], s["file"]))}


def leaderboard_frame_columns(carbon: bool = False, quality_keys=()) -> list[str]:
    cols = ["job_id", "config_hash", "status"] + CONFIG_KEYS + ["energy_measured"] + ENTRY_TEXT_KEYS
    for k in METRICS:
        cols.append(k)
        if k in CI_METRICS:
            cols += [f"{k}_ci95_low", f"{k}_ci95_high", f"{k}_n"]
        if k in SE_METRICS:
            cols.append(SE_METRICS[k])
    cols += ["error_type", "error_message", "synthetic"]
    if carbon:
        cols += list(CARBON_KEYS) + ["carbon_not_computed_reason"]
    if quality_keys:  # --- quality (llem/results/quality.py) ---
        from llem.results.quality import leaderboard_frame_columns as quality_frame_columns

        cols += quality_frame_columns(list(quality_keys))
    return cols


def read_leaderboard_study(path: str | Path) -> pd.DataFrame:
    """A leaderboard study file back as a table (the columns it carries), in file order."""
    doc = json.loads(Path(path).read_text())
    if doc.get("schema") != STUDY_SCHEMA:
        raise ConfigError(f"{str(path)!r} is not an llem leaderboard study file", field="path", value=str(path),
                          allowed=STUDY_SCHEMA)
    carbon = doc.get("carbon") is not None
    qkeys = [(c["key"], c["task"]) for c in doc.get("columns", []) if c.get("group") == "quality"]
    rows = []
    for e in doc["entries"]:
        r = {"job_id": e["job_id"], "config_hash": e["config_hash"], "status": e["status"], **e["config"],
             "energy_measured": e["energy_measured"], **{k: e.get(k) for k in ENTRY_TEXT_KEYS},
             "error_type": (e["error"] or {}).get("type"), "error_message": (e["error"] or {}).get("message"),
             "synthetic": e["synthetic"]}
        for k, m in e["metrics"].items():
            r[k] = m["value"]
            if "ci95_low" in m:
                r[f"{k}_ci95_low"], r[f"{k}_ci95_high"], r[f"{k}_n"] = m["ci95_low"], m["ci95_high"], m["n"]
            if k in SE_METRICS:
                r[SE_METRICS[k]] = m.get("se")
        if carbon:
            for k, v in CARBON_KEYS.items():
                r[k] = e["carbon"][v]
            r["carbon_not_computed_reason"] = e["carbon"]["not_computed_reason"]
        for k, task in qkeys:  # --- quality ---
            m = e["metrics"].get(k) or {}
            r[f"quality_{task}_n"] = m.get("n")
            if "stderr" in m:
                r[f"{k}_stderr"] = m["stderr"]
        rows.append(r)
    cols = leaderboard_frame_columns(carbon, qkeys)
    return coerce(pd.DataFrame([[r.get(c) for c in cols] for r in rows], columns=cols, dtype="object"))


def leaderboard_order(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` restricted to the leaderboard's columns, in the order the study file lists entries."""
    measured = df["energy_measured"].fillna(False).astype(bool) & df[RANK_METRIC].notna()
    ok = df["status"].fillna("") == "completed"
    ranked = df[measured & ok].sort_values([RANK_METRIC, "job_id"], kind="mergesort")
    rest = df[~(measured & ok)].sort_values("job_id", kind="mergesort")
    from llem.results.quality import leaderboard_metric_keys

    cols = leaderboard_frame_columns("carbon_gco2e" in df.columns, leaderboard_metric_keys(df))
    return pd.concat([ranked, rest])[cols].reset_index(drop=True)
