"""Reading what is stored: lists with filters, sorting and pages; one study; one job; comparisons;
the leaderboard files. Every filter value is a bound parameter; sort keys come from a fixed list."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import and_, asc, desc, func, select
from sqlalchemy.engine import Connection

from llem.serve.db import iso, job_documents, jobs, studies, study_documents, to_utc, uploads, users

JOB_SORT = {"id": jobs.c.id, "started_at": jobs.c.started_at, "batch": jobs.c.batch, "backend": jobs.c.backend,
            "model": jobs.c.model, "precision": jobs.c.precision, "gpu_name": jobs.c.gpu_name,
            "energy_per_output_token_j": jobs.c.energy_per_output_token_j,
            "energy_adjusted_per_output_token_j": jobs.c.energy_adjusted_per_output_token_j,
            "tokens_per_joule": jobs.c.tokens_per_joule, "output_tokens_per_s": jobs.c.output_tokens_per_s}
STUDY_SORT = {"id": studies.c.id, "uploaded_at": studies.c.uploaded_at, "updated_at": studies.c.updated_at,
              "name": studies.c.name, "n_jobs": studies.c.n_jobs}

_JOB_COLUMNS = [jobs.c.id, jobs.c.study_id, studies.c.name.label("study_name"), jobs.c.job_id, jobs.c.status,
                jobs.c.backend, jobs.c.model, jobs.c.precision, jobs.c.batch, jobs.c.device, jobs.c.gpu_name,
                jobs.c.started_at, jobs.c.ended_at, jobs.c.energy_measured, jobs.c.energy_estimated, jobs.c.synthetic,
                jobs.c.energy_per_output_token_j, jobs.c.energy_per_output_token_j_ci95_low,
                jobs.c.energy_per_output_token_j_ci95_high, jobs.c.energy_adjusted_per_output_token_j,
                jobs.c.tokens_per_joule, jobs.c.output_tokens_per_s, jobs.c.energy_j, jobs.c.llem_version,
                jobs.c.config_hash]
_STUDY_COLUMNS = [studies.c.id, studies.c.name, studies.c.slug, studies.c.kind, studies.c.study_design_hash,
                  studies.c.study_created_at, studies.c.study_finished_at, studies.c.llem_version,
                  users.c.name.label("owner"), studies.c.uploaded_at, studies.c.updated_at, studies.c.verified,
                  studies.c.n_jobs, studies.c.n_results]


def _job(row) -> dict:
    d = dict(row._mapping)
    for k in ("started_at", "ended_at"):
        d[k] = iso(d[k])
    return d


def _study(row) -> dict:
    d = dict(row._mapping)
    d["created_at"], d["finished_at"] = iso(d.pop("study_created_at")), iso(d.pop("study_finished_at"))
    d["uploaded_at"], d["updated_at"] = iso(d["uploaded_at"]), iso(d["updated_at"])
    d["leaderboard_url"] = f"/leaderboard/{d['slug']}.json"
    return d


def list_jobs(conn: Connection, *, gpu: Optional[str] = None, backend: Optional[str] = None,
              model: Optional[str] = None, precision: Optional[str] = None, batch: Optional[int] = None,
              study: Optional[int] = None, status: Optional[str] = None, since: Optional[datetime] = None,
              until: Optional[datetime] = None, measured: Optional[bool] = None, sort: str = "id",
              order: str = "asc", limit: int = 50, offset: int = 0) -> dict:
    conds = []
    for col, value in ((jobs.c.gpu_name, gpu), (jobs.c.backend, backend), (jobs.c.model, model),
                       (jobs.c.precision, precision), (jobs.c.batch, batch), (jobs.c.study_id, study),
                       (jobs.c.status, status), (jobs.c.energy_measured, measured)):
        if value is not None:
            conds.append(col == value)
    if since is not None:
        conds.append(jobs.c.started_at >= to_utc(since))
    if until is not None:
        conds.append(jobs.c.started_at < to_utc(until))
    where = and_(*conds) if conds else None
    count = select(func.count()).select_from(jobs)
    page = select(jobs.c.id)
    if where is not None:
        count, page = count.where(where), page.where(where)
    key = JOB_SORT[sort]
    # missing values last in both directions: a number that was not measured never ranks first
    ordering = (key.is_(None), asc(key) if order == "asc" else desc(key), jobs.c.id)
    # the page's ids first (sorted from narrow rows), then the 50 rows themselves
    ids = page.order_by(*ordering).limit(limit).offset(offset).subquery()
    q = (select(*_JOB_COLUMNS).join(studies, studies.c.id == jobs.c.study_id).join(ids, ids.c.id == jobs.c.id)
         .order_by(*ordering))
    total = conn.execute(count).scalar_one()
    return {"total": total, "limit": limit, "offset": offset, "items": [_job(r) for r in conn.execute(q)]}


def list_studies(conn: Connection, *, owner: Optional[str] = None, sort: str = "id", order: str = "desc",
                 limit: int = 50, offset: int = 0) -> dict:
    count = select(func.count()).select_from(studies)
    q = select(*_STUDY_COLUMNS).join(users, users.c.id == studies.c.owner_id)
    if owner is not None:
        uid = select(users.c.id).where(users.c.name == owner).scalar_subquery()
        count, q = count.where(studies.c.owner_id == uid), q.where(studies.c.owner_id == uid)
    key = STUDY_SORT[sort]
    q = q.order_by(asc(key) if order == "asc" else desc(key), studies.c.id).limit(limit).offset(offset)
    return {"total": conn.execute(count).scalar_one(), "limit": limit, "offset": offset,
            "items": [_study(r) for r in conn.execute(q)]}


def get_study(conn: Connection, study_id: int) -> Optional[dict]:
    row = conn.execute(select(*_STUDY_COLUMNS, study_documents.c.manifest_json)
                       .join(users, users.c.id == studies.c.owner_id)
                       .join(study_documents, study_documents.c.id == studies.c.id)
                       .where(studies.c.id == study_id)).first()
    if row is None:
        return None
    d = _study(row)
    manifest = d.pop("manifest_json")
    d["manifest"] = json.loads(manifest) if manifest else None
    d["jobs"] = [_job(r) for r in conn.execute(select(*_JOB_COLUMNS).join(studies, studies.c.id == jobs.c.study_id)
                                               .where(jobs.c.study_id == study_id).order_by(jobs.c.job_id))]
    d["uploads"] = [dict(r._mapping, created_at=iso(r.created_at), environment=json.loads(r.environment_json))
                    for r in conn.execute(
        select(uploads.c.id, users.c.name.label("user"), uploads.c.created_at, uploads.c.client_llem_version,
               uploads.c.client_python, uploads.c.client_platform, uploads.c.body_bytes, uploads.c.body_sha256,
               uploads.c.results_added, uploads.c.results_replaced, uploads.c.results_unchanged,
               uploads.c.environment_json, uploads.c.verified)
        .join(users, users.c.id == uploads.c.user_id).where(uploads.c.study_id == study_id).order_by(uploads.c.id))]
    for u in d["uploads"]:
        del u["environment_json"]
    return d


def get_job_text(conn: Connection, job_id: int) -> Optional[tuple[dict, dict, str, Optional[str]]]:
    """(job summary, its study, result.json text, time series text or None)."""
    row = conn.execute(select(*_JOB_COLUMNS, job_documents.c.result_json, job_documents.c.timeseries_json)
                       .join(studies, studies.c.id == jobs.c.study_id)
                       .join(job_documents, job_documents.c.id == jobs.c.id).where(jobs.c.id == job_id)).first()
    if row is None:
        return None
    d = _job(row)
    result, ts = d.pop("result_json"), d.pop("timeseries_json")
    srow = conn.execute(select(*_STUDY_COLUMNS).join(users, users.c.id == studies.c.owner_id)
                        .where(studies.c.id == d["study_id"])).first()
    return d, _study(srow), result, ts


def get_jobs_full(conn: Connection, ids: list[int]) -> list[tuple[dict, dict]]:
    rows = {r.id: r for r in conn.execute(select(*_JOB_COLUMNS, job_documents.c.result_json)
                                          .join(studies, studies.c.id == jobs.c.study_id)
                                          .join(job_documents, job_documents.c.id == jobs.c.id)
                                          .where(jobs.c.id.in_(ids)))}
    out = []
    for i in ids:
        if i in rows:
            d = _job(rows[i])
            out.append((d, json.loads(d.pop("result_json"))))
    return out


def leaderboard_index_lines(conn: Connection) -> list[dict]:
    return [json.loads(t) for t in conn.execute(select(studies.c.index_entry_json)).scalars()]


def leaderboard_text(conn: Connection, slug: str) -> Optional[str]:
    return conn.execute(select(study_documents.c.leaderboard_json)
                        .join(studies, studies.c.id == study_documents.c.id)
                        .where(studies.c.slug == slug)).scalar_one_or_none()


#: why a stored job's file has no time series although the job wrote a result
NO_UPLOADED_TIMESERIES = ("no time series was uploaded with this result (pushed with --no-timeseries, "
                          "or the job had no timeseries.parquet)")


def leaderboard_job(conn: Connection, folder: str, name: str) -> Optional[dict]:
    """The job file ``<folder>/<name>.json`` of a stored study (docs/leaderboard-schema.md, "Job
    files"), built from what is stored: the study's leaderboard document (the entry, exactly as the
    study file has it), the job's ``result.json`` and the time series uploaded with it."""
    from llem.result import ExperimentResult
    from llem.results.job_detail import job_document, timeseries_from_columns
    from llem.results.load import Entry

    row = conn.execute(select(studies.c.id, study_documents.c.leaderboard_json)
                       .join(study_documents, study_documents.c.id == studies.c.id)
                       .where(studies.c.slug == folder)).first()
    if row is None:
        return None
    doc = json.loads(row.leaderboard_json)
    target = f"{folder}/{name}.json"
    lb = next((e for e in doc.get("entries", []) if e.get("detail") == target), None)
    if lb is None:
        return None
    job = conn.execute(select(job_documents.c.result_json, job_documents.c.timeseries_json)
                       .join(jobs, jobs.c.id == job_documents.c.id)
                       .where(jobs.c.study_id == row.id, jobs.c.job_id == lb["job_id"])).first()
    result = ExperimentResult.model_validate_json(job.result_json) if job is not None else None
    if result is None:
        ts = {"gpus": [], "not_available_reason": "the job wrote no result"}
    elif job.timeseries_json is None:
        ts = {"gpus": [], "not_available_reason": NO_UPLOADED_TIMESERIES}
    else:
        ts = timeseries_from_columns(json.loads(job.timeseries_json)["columns"])
    return job_document(lb, Entry(None, result, None), doc["study"], doc["generated_at"], timeseries=ts)


# --- compare -------------------------------------------------------------------------------------

COMPARE_METRICS = ["energy_per_output_token_j", "energy_adjusted_per_output_token_j", "tokens_per_joule",
                   "output_tokens_per_s", "energy_j", "ttft_ms_p50", "itl_ms_p50", "e2e_latency_ms_p50"]


def compare(pairs: list[tuple[dict, dict]]) -> dict:
    """2-4 jobs side by side: each metric's value and 95% CI per job, and each job against the first
    (difference, relative difference, whether the two CIs overlap)."""
    from llem.result import ExperimentResult
    from llem.results.compare import ci_overlap
    from llem.results.table import higher_is_better, result_row, unit_of

    rows = [result_row(ExperimentResult.model_validate(res)) for _, res in pairs]
    metrics = []
    for m in COMPARE_METRICS:
        values = []
        for (job, _), r in zip(pairs, rows):
            v = _num(r.get(m))
            reason = None
            if v is None:
                reason = (r.get("energy_not_measured_reason") if m.startswith(("energy", "tokens_per_joule"))
                          else None) or "not measured"
            values.append({"job": job["id"], "value": v, "ci95_low": _num(r.get(f"{m}_ci95_low")),
                           "ci95_high": _num(r.get(f"{m}_ci95_high")), "missing_reason": reason})
        first = values[0]
        against = []
        for v in values[1:]:
            diff = rel = None
            if first["value"] is not None and v["value"] is not None:
                diff = v["value"] - first["value"]
                rel = 100.0 * diff / first["value"] if first["value"] else None
            against.append({"job": v["job"], "diff": diff, "rel_diff_pct": rel,
                            "ci_overlap": ci_overlap(first["ci95_low"], first["ci95_high"], v["ci95_low"],
                                                     v["ci95_high"])})
        metrics.append({"metric": m, "unit": unit_of(m), "higher_is_better": higher_is_better(m), "values": values,
                        "against_first": against})
    return {"jobs": [job for job, _ in pairs], "metrics": metrics}


def _num(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if v == v and v not in (float("inf"), float("-inf")) else None
