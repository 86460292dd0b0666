"""One leaderboard file per job: what a job page shows beyond the study table (schema:
docs/leaderboard-schema.md, "Job files").

The study file stays small enough to load 10,000 entries at once; each job's config,
environment, measurement methodology, warnings, cycles, prefill/decode split, quality results and
its power/temperature time series (downsampled) live in ``<study id>/<job id>.json`` beside it,
read only when someone opens that job.

Fields that identify the machine or a user's paths rather than the measurement (host name, boot
id, the Python executable, the baseline cache path, the container's cgroup text) are left out:
the files are meant to be published.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

#: at most this many points per GPU and series in a job file (equal-time buckets beyond it)
MAX_POINTS = 600
JOB_SCHEMA = "llem.leaderboard.job"
#: keys dropped wherever they appear in the environment and methodology (host identity, local paths)
PRIVATE_KEYS = frozenset({"hostname", "boot_id", "python_executable", "cache_path", "cgroup", "samples_path"})
# sampler columns kept in the job file, and the decimals each is rounded to (far below its resolution)
SERIES = {"power_w": 2, "temperature_c": 1, "sm_clock_mhz": 0, "memory_used_mib": 0, "utilization_gpu_pct": 1}
DOWNSAMPLE_METHOD = ("equal-time buckets per GPU: the mean of the samples in each bucket (power_w_min and power_w_max "
                     "keep each bucket's extremes); cycle is the highest cycle index sampled in the bucket "
                     "(-1: between measured windows)")


def job_file_name(job_id: str) -> str:
    """A file name for a job id (ids are usually ``0003`` or ``0003_c1``; anything else is made safe)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(job_id)).strip(".") or "job"


def scrub(obj: Any) -> Any:
    """``obj`` without the keys of :data:`PRIVATE_KEYS`, at any depth, and without NaN/Infinity."""
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items() if k not in PRIVATE_KEYS}
    if isinstance(obj, (list, tuple)):
        return [scrub(v) for v in obj]
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj


def _round(values: np.ndarray, decimals: int) -> list:
    out = []
    for v in values.tolist():
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            out.append(None)
        elif decimals == 0:
            out.append(int(round(v)))
        else:
            out.append(round(float(v), decimals))
    return out


def downsample_timeseries(ts: pd.DataFrame, max_points: int = MAX_POINTS) -> dict:
    """The sampler's table as one block per GPU, each at most ``max_points`` long.

    Up to ``max_points`` samples a GPU's series is kept as recorded; beyond it the span is cut into
    ``max_points`` equal-time buckets and each bucket is summarised (:data:`DOWNSAMPLE_METHOD`).
    Missing samples stay ``null``; a bucket without samples is dropped, so a gap stays a gap."""
    if "t_s" not in ts.columns or ts.empty:
        return {"gpus": [], "not_available_reason": "the time series has no t_s column or no rows"}
    dev = "gpu_index" if "gpu_index" in ts.columns else None
    groups = ts.groupby(dev, sort=True) if dev else [(0, ts)]
    gpus = []
    downsampled = False
    for key, g in groups:
        g = g.sort_values("t_s")
        t = pd.to_numeric(g["t_s"], errors="coerce").to_numpy(dtype=float)
        cols = {c: pd.to_numeric(g[c], errors="coerce").to_numpy(dtype=float) for c in SERIES if c in g.columns}
        cycle = pd.to_numeric(g["cycle"], errors="coerce").to_numpy(dtype=float) if "cycle" in g.columns else None
        block: dict[str, Any] = {"gpu_index": int(key) if dev else None,
                                 "uuid": str(g["uuid"].iloc[0]) if "uuid" in g.columns else None,
                                 "samples": int(len(g))}
        if len(g) > max_points and np.isfinite(t).any():
            downsampled = True
            edges = np.linspace(np.nanmin(t), np.nanmax(t), max_points + 1)
            bucket = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, max_points - 1)
            frame = pd.DataFrame({"b": bucket, "t_s": t, **cols, **({"cycle": cycle} if cycle is not None else {})})
            agg = frame.groupby("b", sort=True)
            means = agg.mean()
            block["t_s"] = _round(means["t_s"].to_numpy(), 3)
            for c, d in SERIES.items():
                if c in cols:
                    block[c] = _round(means[c].to_numpy(), d)
            if "power_w" in cols:
                block["power_w_min"] = _round(agg["power_w"].min().to_numpy(), 2)
                block["power_w_max"] = _round(agg["power_w"].max().to_numpy(), 2)
            if cycle is not None:
                block["cycle"] = _round(agg["cycle"].max().to_numpy(), 0)
        else:
            block["t_s"] = _round(t, 3)
            for c, d in SERIES.items():
                if c in cols:
                    block[c] = _round(cols[c], d)
            if cycle is not None:
                block["cycle"] = _round(cycle, 0)
        block["points"] = len(block["t_s"])
        gpus.append(block)
    return {"gpus": gpus, "downsampled": downsampled, "max_points": max_points,
            "method": DOWNSAMPLE_METHOD if downsampled else "every sample, as recorded",
            "t_s": "seconds since the experiment started (the clock of the cycles' start_s)",
            "not_available_reason": None}


def _timeseries_block(entry) -> dict:
    path = entry.timeseries_path()
    if path is None:
        why = ("the job wrote no result" if entry.result is None else
               "no timeseries.parquet beside the result (the sampler was off, or the file was not copied)")
        return {"gpus": [], "not_available_reason": why}
    try:
        ts = pd.read_parquet(path)
    except Exception as err:  # an unreadable file is reported on the job page, never fatal to the export
        return {"gpus": [], "not_available_reason": f"cannot read timeseries.parquet ({type(err).__name__}: {err})"}
    return downsample_timeseries(ts)


def _dump(model) -> Optional[dict]:
    return None if model is None else scrub(model.model_dump(mode="json"))


def timeseries_from_columns(columns: dict) -> dict:
    """The job file's ``timeseries`` block from a time series held as columns (``{name: [values]}``,
    as ``llem results push`` uploads ``timeseries.parquet`` and ``llem serve`` stores it)."""
    try:
        ts = pd.DataFrame(columns)
    except ValueError as err:  # columns of unequal length: the upload's schema refuses them, never fatal here
        return {"gpus": [], "not_available_reason": f"the stored time series cannot be read ({err})"}
    return downsample_timeseries(ts)


def job_document(lb_entry: dict, entry, study: dict, generated_at: str, *,
                 timeseries: Optional[dict] = None) -> dict:
    """The job file for one leaderboard entry and the loaded job it came from.

    ``timeseries`` is the ``timeseries`` block when the caller has the samples in hand (``llem
    serve``, from what was uploaded); without it the job's ``timeseries.parquet`` is read from disk."""
    from llem.results.leaderboard import SCHEMA_VERSION
    from llem.results.table import table_stats

    r = entry.result if entry is not None else None
    result = None
    windows: list[list[float]] = []
    if r is not None:
        result = {
            "schema_version": r.schema_version, "llem_version": r.llem_version, "experiment_id": r.experiment_id,
            "started_at": r.started_at, "ended_at": r.ended_at, "config": scrub(r.config),
            "backend_version": r.backend_version, "device": r.device, "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens, "duration_s": r.duration_s, "load_time_s": r.load_time_s,
            "energy": _dump(r.energy),
            "stats": {k: _dump(v) for k, v in table_stats(r).items()},
            "latency": _dump(r.latency), "phases": _dump(r.phases),
            "cycles": [_dump(c) for c in r.cycles], "flops": scrub(r.flops), "memory": scrub(r.memory),
            "steady_state_window": r.steady_state_window,
            "measurement_methodology": scrub(r.measurement_methodology),
            "environment": scrub(r.environment), "warnings": list(r.warnings), "quality": _dump(r.quality),
            "error": ({"type": r.error_type, "message": r.error_message}
                      if r.error_type or r.error_message else None),
        }
        windows = [[c.start_s, c.start_s + c.duration_s] for c in r.cycles]
    if timeseries is not None:
        ts = dict(timeseries)
    elif entry is not None:
        ts = _timeseries_block(entry)
    else:
        ts = {"gpus": [], "not_available_reason": "no job on disk"}
    ts["measured_windows_s"] = windows
    return {
        "schema": JOB_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated_at,
        "study": {"id": study["id"], "name": study["name"]},
        "job_id": lb_entry["job_id"],
        "entry": lb_entry,
        "result": result,
        "result_problem": entry.load_problem if entry is not None else None,
        "timeseries": ts,
    }


def assign_details(doc: dict, folder: Optional[str] = None) -> list[tuple[dict, str]]:
    """Set each entry's ``detail`` of the study document ``doc`` to ``<folder>/<job file>.json``
    (``folder``: the study's id unless given) and return ``(entry, file stem)`` pairs, in order."""
    folder = folder or doc["study"]["id"]
    out, used = [], set()
    for lb in doc["entries"]:
        name = job_file_name(lb["job_id"])
        while name in used:  # two ids that differ only in characters made safe
            name += "_"
        used.add(name)
        lb["detail"] = f"{folder}/{name}.json"
        out.append((lb, name))
    return out


def write_job_documents(doc: dict, loaded, out_dir: Path) -> list[Path]:
    """Write ``<out_dir>/<study id>/<job>.json`` for every entry of the study document ``doc``
    and set each entry's ``detail``; job files of an earlier export that no entry names are removed."""
    from llem.results.export import write_text_atomic

    folder = Path(out_dir) / doc["study"]["id"]
    by_id = {e.job_id: e for e in loaded.entries}
    written = []
    for lb, name in assign_details(doc):
        job = job_document(lb, by_id.get(lb["job_id"]), doc["study"], doc["generated_at"])
        written.append(write_text_atomic(folder / f"{name}.json", json.dumps(job, allow_nan=False,
                                                                            separators=(",", ":"))))
    keep = {p.name for p in written}
    for stale in folder.glob("*.json"):
        if stale.name not in keep:
            stale.unlink()
    return written
