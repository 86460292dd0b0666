"""One row per job, flattened under the shared vocabulary.

Column names are the names the result schema uses (``energy_j``, ``energy_per_output_token_j``,
``output_tokens_per_s``, ``ttft_ms`` ...), with the statistic appended after the unit
(``energy_per_output_token_j_ci95_low``, ``ttft_ms_p50``). A value that was not measured is a
missing value (``<NA>``), never 0, and ``energy_not_measured_reason`` says why.

Column dtypes are pandas' nullable dtypes, fixed by :func:`column_dtype`, so that a table read
back from CSV, Parquet or JSON is equal to the one written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

import pandas as pd

from llem.result import ExperimentResult

# --- the columns -------------------------------------------------------------------------------

ID_COLUMNS = ["study_name", "study_design_hash", "job_id", "index", "grid_index", "cycle", "status",
              "error_type", "error_message", "result_problem", "experiment_id", "config_hash"]
CONFIG_COLUMNS = ["backend", "backend_version", "model", "precision", "batch", "device", "gpu_name", "cpu_name",
                  "output_len", "input_len", "num_prompts", "dataset", "country_iso_code", "overrides"]
ENERGY_COLUMNS = ["energy_measured", "energy_not_measured_reason", "energy_meter", "energy_source",
                  "energy_estimated", "energy_scope", "energy_j", "energy_adjusted_j", "energy_adjusted_reason",
                  "baseline_power_w", "cpu_energy_j", "dram_energy_j", "load_energy_j"]
# headline metrics that carry a per-cycle CI in result.stats
STAT_METRICS = ["energy_per_output_token_j", "energy_adjusted_per_output_token_j", "tokens_per_joule",
                "output_tokens_per_s"]
STAT_SUFFIXES = ["ci95_low", "ci95_high", "std", "cv", "n"]
WORK_COLUMNS = ["input_tokens", "output_tokens", "duration_s", "n_cycles", "load_time_s"]
LATENCY_METRICS = ["ttft_ms", "itl_ms", "itl_trimmed_ms", "tpot_ms", "e2e_latency_ms"]
LATENCY_STATS = ["mean", "p50", "p90", "p95", "p99"]
PHASE_COLUMNS = ["phase_method", "phase_error", "prefill_duration_s", "prefill_energy_j",
                 "prefill_energy_adjusted_j", "prefill_tokens", "decode_duration_s", "decode_energy_j",
                 "decode_energy_adjusted_j", "decode_tokens", "prefill_energy_per_prompt_j",
                 "decode_energy_per_output_token_j", "prefill_energy_per_prompt_se_j",
                 "decode_energy_per_output_token_se_j", "phase_per", "phase_energy_not_measured_reason"]
META_COLUMNS = ["n_warnings", "warnings", "synthetic", "synthetic_reason", "llem_version", "schema_version", "started_at",
                "ended_at", "job_dir"]


def stat_columns(metric: str) -> list[str]:
    return [metric] + [f"{metric}_{s}" for s in STAT_SUFFIXES]


def latency_columns() -> list[str]:
    # + the latency pass's throughput over the measured windows' (None before result schema 1.2)
    return [f"{m}_{s}" for m in LATENCY_METRICS for s in LATENCY_STATS] + ["latency_throughput_ratio"]


def base_columns() -> list[str]:
    cols = ID_COLUMNS + CONFIG_COLUMNS + ENERGY_COLUMNS
    for m in STAT_METRICS:
        cols += stat_columns(m)
    return cols + ["ci_method"] + WORK_COLUMNS + latency_columns() + PHASE_COLUMNS + META_COLUMNS


_BASE = frozenset(base_columns())
_INT = {"index", "grid_index", "cycle", "batch", "output_len", "input_len", "num_prompts", "input_tokens",
        "output_tokens", "n_cycles", "prefill_tokens", "decode_tokens", "n_warnings"}
_BOOL = {"energy_measured", "energy_estimated", "synthetic"}
_FLOAT_SUFFIXES = ("_se_j", "_j", "_w", "_s", "_per_s", "_ci95_low", "_ci95_high", "_std", "_cv", "_mean", "_p50",
                   "_p90", "_p95", "_p99", "_kwh", "_per_kwh", "_gco2e", "_per_output_token", "_pue", "_pct",
                   "_ratio", "tokens_per_joule")


def column_dtype(name: str) -> Optional[str]:
    """The nullable pandas dtype of a known column, or None for free-form (config) columns."""
    # --- quality columns (llem/results/quality.py) ---
    if name.startswith("quality_"):
        from llem.results.quality import column_dtype as quality_dtype

        return quality_dtype(name)
    # --- end quality ---
    if name in _INT or name.endswith("_n"):
        return "Int64"
    if name in _BOOL or name.endswith("_overlap"):
        return "boolean"
    if name.endswith(_FLOAT_SUFFIXES) or name.startswith("carbon_") and name.endswith(("_gco2e", "_kwh")):
        return "Float64"
    if name in _BASE or name.startswith(("carbon_", "rel_", "diff_")):
        return "string"
    return None


def coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Give every column its canonical nullable dtype (also used when reading exports back)."""
    out = df.copy()
    for c in out.columns:
        dt = column_dtype(c)
        if dt == "string":
            s = out[c].astype("object").where(out[c].notna(), None)
            s = s.map(lambda v: None if v is None or v == "" else str(v))
            out[c] = s.astype("string")
        elif dt == "boolean":
            out[c] = out[c].map(_to_bool).astype("boolean")
        elif dt is not None:
            out[c] = pd.to_numeric(out[c].astype("object").where(out[c].notna(), None),
                                   errors="coerce").astype(dt)
        else:
            out[c] = _coerce_free(out[c])
    return out


def _to_bool(v):
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return pd.NA
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        return pd.NA
    return bool(v)


def _coerce_free(s: pd.Series) -> pd.Series:
    """Config columns of unknown type: numbers stay numbers, everything else becomes a string."""
    vals = [v for v in s.tolist() if not _missing(v)]
    if vals and all(isinstance(v, bool) for v in vals):
        return s.map(_to_bool).astype("boolean")
    num = pd.to_numeric(s.astype("object").where(s.notna(), None), errors="coerce")
    if vals and num.notna().sum() == len(vals) and not any(isinstance(v, bool) for v in vals):
        if all(float(v).is_integer() for v in num.dropna()) and not any(
                isinstance(v, float) or (isinstance(v, str) and "." in v) for v in vals):
            return num.astype("Int64")
        return num.astype("Float64")
    if vals and all(isinstance(v, str) and v.strip().lower() in ("true", "false") for v in vals):
        return s.map(_to_bool).astype("boolean")
    return s.map(lambda v: None if _missing(v) or v == "" else str(v)).astype("string")


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


# --- flattening ---------------------------------------------------------------------------------

def result_row(result: ExperimentResult) -> dict[str, Any]:
    """The metrics and config of one ``ExperimentResult`` as a flat dict."""
    r = result
    e = r.energy
    cfg = r.config or {}
    ds = cfg.get("dataset") or {}
    gpus = (r.environment or {}).get("gpus") or []
    gpu_name = None
    if gpus and isinstance(gpus[0], dict):
        names = sorted({str(g.get("name")) for g in gpus if g.get("name")})
        gpu_name = " + ".join(names) if names else None
    row: dict[str, Any] = {
        "experiment_id": r.experiment_id, "config_hash": r.config_hash, "status": r.status,
        "error_type": r.error_type, "error_message": r.error_message,
        "backend": r.backend, "backend_version": r.backend_version, "model": r.model,
        "precision": r.precision, "batch": r.batch, "device": r.device, "gpu_name": gpu_name,
        "cpu_name": (r.environment or {}).get("cpu"),
        "output_len": cfg.get("output_len"), "input_len": ds.get("input_len"),
        "num_prompts": ds.get("num_prompts"), "dataset": ds.get("name") or ds.get("kind"),
        "country_iso_code": (cfg.get("energy") or {}).get("country_iso_code"),
        "energy_measured": e.measured,
        "energy_not_measured_reason": None if e.measured else (e.not_measured_reason or "not recorded"),
        "energy_meter": e.meter, "energy_source": e.source, "energy_estimated": e.estimated,
        # what the energy covers: "gpu" (the job's GPUs) or "host" (CPU + RAM of a CPU-only job)
        "energy_scope": e.scope if e.measured else None,
        "energy_j": e.energy_j, "energy_adjusted_j": e.energy_adjusted_j,
        "energy_adjusted_reason": e.energy_adjusted_reason if e.measured else None,
        "baseline_power_w": e.baseline_power_w,
        "cpu_energy_j": e.cpu_energy_j, "dram_energy_j": e.dram_energy_j, "load_energy_j": e.load_energy_j,
        "input_tokens": r.input_tokens, "output_tokens": r.output_tokens, "duration_s": r.duration_s,
        "n_cycles": len(r.cycles), "load_time_s": r.load_time_s,
        "n_warnings": len(r.warnings), "warnings": "; ".join(r.warnings) if r.warnings else None,
        "synthetic": synthetic_reason(r) is not None,
        "synthetic_reason": synthetic_reason(r),
        "llem_version": r.llem_version, "schema_version": r.schema_version,
        "started_at": r.started_at, "ended_at": r.ended_at,
    }
    stats = table_stats(r)
    row["ci_method"] = next((stats[m].method for m in STAT_METRICS if stats.get(m) is not None
                             and stats[m].method), None)
    for m in STAT_METRICS:
        st = stats.get(m)
        row[m] = st.value if st is not None else None
        for s in STAT_SUFFIXES:
            row[f"{m}_{s}"] = getattr(st, s) if st is not None else None
        if st is not None and st.value is None:
            # n counts cycles with a value; a Stat with no value had none measured
            row[f"{m}_n"] = None
    lat = r.latency
    for m in LATENCY_METRICS:
        pct = getattr(lat, m, None) if lat is not None else None
        for s in LATENCY_STATS:
            row[f"{m}_{s}"] = getattr(pct, s, None) if pct is not None and pct.n else None
    row["latency_throughput_ratio"] = getattr(lat, "latency_throughput_ratio", None) if lat is not None else None
    ph = r.phases
    if ph is not None:
        # getattr: fields added to Phases later are absent from older result files' models
        windows = getattr(ph, "windows", None) or {}
        row.update({"phase_method": ph.method, "phase_error": ph.error,
                    "prefill_energy_per_prompt_j": ph.prefill_energy_per_prompt_j,
                    "decode_energy_per_output_token_j": ph.decode_energy_per_output_token_j,
                    "prefill_energy_per_prompt_se_j": getattr(ph, "prefill_energy_per_prompt_se_j", None),
                    "decode_energy_per_output_token_se_j": getattr(ph, "decode_energy_per_output_token_se_j", None),
                    "phase_per": windows.get("per") if isinstance(windows, dict) else None,
                    "phase_energy_not_measured_reason": getattr(ph, "energy_not_measured_reason", None)})
        for name in ("prefill", "decode"):
            p = getattr(ph, name)
            row.update({f"{name}_duration_s": p.duration_s, f"{name}_energy_j": p.energy_j,
                        f"{name}_energy_adjusted_j": p.energy_adjusted_j, f"{name}_tokens": p.tokens})
    if not e.measured:
        # a meter that did not measure must not leave numbers behind that look measured
        for c in ("energy_j", "energy_adjusted_j", "energy_per_output_token_j",
                  "energy_adjusted_per_output_token_j", "tokens_per_joule"):
            row[c] = None if row.get(c) in (0, 0.0) else row.get(c)
    # --- quality columns (llem/results/quality.py) ---
    from llem.results.quality import quality_row

    row.update(quality_row(r))
    # --- end quality ---
    return row


SIMULATED_NVML_NOTE = ("GPU facts and energy come from llem's simulated NVML (LLEM_SIMULATED_NVML), a test double: "
                       "the energy values are fabricated, not measured")


def synthetic_reason(r: ExperimentResult) -> Optional[str]:
    """Why a result's numbers are not measurements (fabricated test data, or energy from the simulated
    NVML), or None for a real result."""
    mark = (r.extra or {}).get("synthetic_test_data")
    if mark:
        return mark if isinstance(mark, str) else "synthetic test data: the energy values are fabricated, not measured"
    env = r.environment or {}
    # results written before the snapshot had the key say so only among its errors
    if env.get("simulated_nvml") or any("simulated NVML" in str(e) for e in env.get("errors") or []):
        return SIMULATED_NVML_NOTE
    return None


def table_stats(r: ExperimentResult) -> dict:
    """The headline ``Stat``s a row shows: the result's own, or, for a result written before the
    ratio-of-totals estimator (no ``value``; its CI was of the mean of per-cycle values and could
    exclude the reported point), recomputed from its cycles with its configured CI method, so that
    every table, export and plot shows one estimator."""
    stats = dict(r.stats)
    if r.cycles and any(st is not None and st.value is None and st.cycle_mean is not None for st in stats.values()):
        from llem.measure.stats import headline_stats

        mc = (r.config or {}).get("measurement") or {}
        fresh = headline_stats(r.cycles, method=mc.get("ci_method", "t"), samples=mc.get("bootstrap_samples", 2000),
                               seed=(r.config or {}).get("seed", 0))
        for m, st in fresh.items():
            if m in stats:
                stats[m] = st.model_copy(update={"method": f"{st.method}; recomputed from the cycles of a result "
                                                           f"written by llem {r.llem_version}"})
    return stats


def flatten_config(cfg: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (cfg or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_config(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = ",".join(str(x) for x in v) if v else None
        else:
            out[key] = v
    return out


# config keys that already have a base column under their vocabulary name
_REPRESENTED = {"backend", "precision", "batch", "output_len", "device", "model.name", "dataset.input_len",
                "dataset.num_prompts", "dataset.name", "energy.country_iso_code"}


def _frame(rows: list[dict], configs: list[dict]) -> pd.DataFrame:
    cols = base_columns()
    # --- quality columns (llem/results/quality.py): after the base ones, only when a job has them ---
    from llem.results.quality import quality_columns

    cols = cols + quality_columns(rows)
    # --- end quality ---
    df = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
    # config keys that differ between jobs are what a study sweeps: give each its own column
    flat = [flatten_config(c) for c in configs]
    present = [f for f in flat if f]
    keys = sorted({k for f in present for k in f})
    varying = [k for k in keys if k not in cols and k not in _REPRESENTED
               and len({repr(f.get(k)) for f in present}) > 1]
    for k in varying:
        df[k] = [f.get(k) for f in flat]
    return coerce(df) if len(df) else coerce(df.astype("object"))


def results_to_dataframe(results: Iterable[ExperimentResult]) -> pd.DataFrame:
    """One row per ``ExperimentResult`` (no manifest: study columns stay empty)."""
    results = list(results)
    return _frame([result_row(r) for r in results], [r.config for r in results])


def study_to_dataframe(study, base_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per planned job of a ``StudyResult``, including jobs that never wrote a result.

    ``base_dir`` is where the job paths are relative to (the manifest's directory);
    it defaults to the ``study_dir`` recorded in the manifest.
    """
    from llem.results.load import _load_study

    base = Path(base_dir) if base_dir is not None else Path(study.study_dir)
    loaded = _load_study(base, None, study=study)
    return loaded_to_dataframe(loaded)


def loaded_to_dataframe(loaded) -> pd.DataFrame:
    rows, configs = [], []
    study = loaded.study
    for e in loaded.entries:
        row = result_row(e.result) if e.result is not None else {}
        j = e.job
        if j is not None:
            row.update({"job_id": j.job_id, "index": j.index, "grid_index": j.grid_index, "cycle": j.cycle,
                        "status": j.status, "overrides": " ".join(j.overrides) if j.overrides else None})
            for k in ("config_hash", "backend", "model", "precision", "batch"):
                row.setdefault(k, getattr(j, k))
            # the manifest knows about failures that never produced a result.json
            if e.result is None or j.status in ("failed", "lost"):
                row["error_type"] = row.get("error_type") or j.error_type
                row["error_message"] = row.get("error_message") or j.error_message
        else:
            row["job_id"] = e.job_id
        if e.result is None:
            row["energy_measured"] = False
            row.setdefault("energy_not_measured_reason", "no result.json for this job"
                           + (f" (status {j.status})" if j is not None else ""))
        if study is not None:
            row["study_name"] = study.study_name
            row["study_design_hash"] = study.study_design_hash
        row["result_problem"] = e.load_problem
        if e.job_dir is not None:
            try:
                row["job_dir"] = str(e.job_dir.relative_to(loaded.path))
            except ValueError:
                row["job_dir"] = str(e.job_dir)
        rows.append(row)
        configs.append(e.result.config if e.result is not None else {})
    return _frame(rows, configs)


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Numeric columns: what ``--sort`` and ``compare`` accept."""
    return [c for c in df.columns if str(df[c].dtype) in ("Float64", "Int64", "float64", "int64")]


_LOWER_IS_BETTER_HINTS = ("_j", "_ms_", "_w", "gco2e", "duration_s", "load_time_s")


def unit_of(column: str) -> Optional[str]:
    """The unit a column is in, read from its name (units are part of the vocabulary)."""
    base = column
    for s in ("_ci95_low", "_ci95_high", "_std"):
        if base.endswith(s):
            base = base[: -len(s)]
    if base.endswith(("_cv", "_n")):
        return None
    if "_ms_" in base or base.endswith("_ms"):
        return "ms"
    if base == "tokens_per_joule":
        return "tokens/J"
    if base.endswith("tokens_per_s"):
        return "tokens/s"
    if base.endswith("_g_per_kwh"):
        return "gCO2e/kWh"
    if base.endswith("gco2e") or "gco2e_per" in base:
        return "gCO2e"
    if base.endswith("_j"):
        return "J"
    if base.endswith("_w"):
        return "W"
    if base.endswith("_s"):
        return "s"
    if base.endswith("_mhz"):
        return "MHz"
    if base.endswith("_c"):
        return "°C"
    return None


def higher_is_better(column: str) -> Optional[bool]:
    if column in ("tokens_per_joule",) or column.endswith("tokens_per_s"):
        return True
    if column.endswith(_LOWER_IS_BETTER_HINTS) or "_ms_" in column or "gco2e" in column:
        return False
    return None
