"""Storing uploads: idempotent, whole or nothing, with provenance; deleting a study.

A study is the same study when its design hash, its start time and its name are the same
(``study_key``): a push of a study already stored adds only the results not stored yet, matched
by job id and by the SHA-256 of each result's canonical JSON. Pushing the same study twice
stores it once; pushing it again after ``llem run --resume`` stores the jobs that finished since
(a job whose result changed replaces its earlier row). Each push that changed anything is an
upload row: who sent it, when, from which llem, how many results it added.

Two pushes of one study at the same moment meet at the database's unique constraints: the one
that commits second finds the study already there and retries as a push of a stored study.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from llem.result import ExperimentResult
from llem.results.manifest import StudyResult
from llem.serve.auth import Caller
from llem.serve.db import (Database, dumps, job_documents, jobs, studies, study_documents, to_utc, uploads, users,
                           utcnow)
from llem.serve.upload import UploadBody, UploadError

RETRIES = 5


@dataclass
class Prepared:
    """One uploaded result, ready to store."""

    job_id: str
    sha256: str
    result: ExperimentResult
    result_json: str
    timeseries_json: Optional[str]
    row: dict


@dataclass
class Outcome:
    created: bool          # something was stored (a new study, or new results in one)
    study_id: int
    upload_id: Optional[int]
    added: int
    replaced: int
    unchanged: int
    owner: str
    slug: str


def result_sha256(result: ExperimentResult) -> tuple[str, str]:
    text = dumps(result.model_dump(mode="json"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), text


def study_key(up: UploadBody, prepared: list[Prepared]) -> str:
    if up.study is not None:
        s = up.study
        key = dumps(["study", s.study_design_hash, s.created_at, s.study_name])
    else:
        key = dumps(["result", prepared[0].sha256])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _summary_row(result: ExperimentResult) -> dict:
    from llem.results.table import result_row

    r = result_row(result)

    def num(k):
        v = r.get(k)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def text(k):
        v = r.get(k)
        return None if v is None else str(v)

    return {"status": result.status, "experiment_id": result.experiment_id, "config_hash": result.config_hash[:64],
            "backend": result.backend, "model": result.model, "precision": result.precision, "batch": result.batch,
            "device": result.device, "gpu_name": text("gpu_name"),
            "started_at": to_utc(result.started_at), "ended_at": to_utc(result.ended_at),
            "energy_measured": bool(result.energy.measured), "energy_estimated": bool(result.energy.estimated),
            "synthetic": bool(r.get("synthetic")) if r.get("synthetic") is not None else False,
            "energy_per_output_token_j": num("energy_per_output_token_j"),
            "energy_per_output_token_j_ci95_low": num("energy_per_output_token_j_ci95_low"),
            "energy_per_output_token_j_ci95_high": num("energy_per_output_token_j_ci95_high"),
            "energy_adjusted_per_output_token_j": num("energy_adjusted_per_output_token_j"),
            "tokens_per_joule": num("tokens_per_joule"), "output_tokens_per_s": num("output_tokens_per_s"),
            "energy_j": num("energy_j"), "llem_version": result.llem_version[:64],
            "schema_version": result.schema_version[:16]}


def environment_summary(results: list[ExperimentResult]) -> dict:
    """The environment snapshots of an upload's results, summed up: each distinct value, sorted.
    The full snapshot of every job stays in its result.json."""
    out: dict[str, set] = {k: set() for k in ("llem_versions", "hosts", "gpus", "driver_versions",
                                              "cuda_driver_versions", "os", "python", "backends")}
    for r in results:
        env = r.environment or {}
        out["llem_versions"].add(r.llem_version)
        out["backends"].add(f"{r.backend} {r.backend_version or ''}".strip())
        for key, name in (("hosts", "hostname"), ("driver_versions", "driver_version"),
                          ("cuda_driver_versions", "cuda_driver_version"), ("os", "os"), ("python", "python")):
            if env.get(name) is not None:
                out[key].add(str(env[name]))
        for g in env.get("gpus") or []:
            if isinstance(g, dict) and g.get("name"):
                out["gpus"].add(str(g["name"]))
    return {k: sorted(v)[:50] for k, v in out.items()}


def prepare(up: UploadBody) -> list[Prepared]:
    out = []
    for r in up.results:
        sha, text = result_sha256(r.result)
        ts = dumps(r.timeseries.model_dump(mode="json")) if r.timeseries is not None else None
        out.append(Prepared(job_id=r.job_id or r.result.experiment_id, sha256=sha, result=r.result,
                            result_json=text, timeseries_json=ts, row=_summary_row(r.result)))
    return out


# --- the leaderboard document ---------------------------------------------------------------------

def stored_loaded(manifest: Optional[StudyResult], results: dict[str, ExperimentResult], name: str):
    """A :class:`llem.results.load.LoadedResults` of a stored study, as loading its directory would
    give (no job directory: nothing on disk is ever looked at)."""
    from llem.results.load import Entry, LoadedResults

    if manifest is not None:
        entries = [Entry(j, results.get(j.job_id), None) for j in manifest.jobs]
        return LoadedResults("study", Path(name), manifest, entries)
    ((_, res),) = results.items()
    return LoadedResults("result", Path(name), None, [Entry(None, res, None)])


def leaderboard_document(manifest: Optional[StudyResult], results: dict[str, ExperimentResult],
                         name: str, folder: Optional[str] = None) -> dict:
    """The document ``llem results export --format leaderboard`` writes for the same study, job
    files named (each entry's ``detail``: ``<folder>/<job>.json``, ``folder`` being the study's
    file stem on this server, the export's study id unless two stored studies share it).

    Built from the stored results and manifest only: no path in them is ever opened."""
    from llem.results.job_detail import assign_details
    from llem.results.leaderboard import study_args, study_document
    from llem.results.table import loaded_to_dataframe

    loaded = stored_loaded(manifest, results, name)
    doc = study_document(loaded_to_dataframe(loaded), **study_args(loaded), loaded=loaded)
    assign_details(doc, folder)
    return doc


def _study_name(up: UploadBody, prepared: list[Prepared]) -> str:
    if up.study is not None:
        return up.study.study_name
    return up.name or prepared[0].result.experiment_id


def _free_slug(conn: Connection, base: str, own_id: Optional[int]) -> str:
    """``base`` (the export's study id), or ``base-2``, ``base-3``... when another study has it."""
    taken = {r.slug: r.id for r in conn.execute(select(studies.c.slug, studies.c.id)
                                                 .where(studies.c.slug.like(base.replace("%", "").replace("_", "\\_")
                                                                            + "%", escape="\\")))}
    if taken.get(base, own_id) == own_id:
        return base
    n = 2
    while f"{base}-{n}" in taken and taken[f"{base}-{n}"] != own_id:
        n += 1
    return f"{base}-{n}"


# --- ingest --------------------------------------------------------------------------------------

def ingest(db: Database, caller: Caller, up: UploadBody, *, body_sha256: str, body_bytes: int) -> Outcome:
    prepared = prepare(up)
    key = study_key(up, prepared)
    for attempt in range(RETRIES):
        try:
            with db.write() as conn:
                return _ingest(conn, caller, up, prepared, key, body_sha256, body_bytes)
        except IntegrityError:
            # another push of the same study committed first: this one now sees it
            if attempt == RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _ingest(conn: Connection, caller: Caller, up: UploadBody, prepared: list[Prepared], key: str,
            body_sha256: str, body_bytes: int) -> Outcome:
    now = utcnow()
    study = conn.execute(select(studies.c.id, studies.c.owner_id, studies.c.slug, study_documents.c.manifest_json,
                                users.c.name.label("owner")).join(users, users.c.id == studies.c.owner_id)
                         .join(study_documents, study_documents.c.id == studies.c.id)
                         .where(studies.c.study_key == key)).first()
    stored: dict[str, str] = {}
    if study is not None:
        stored = {r.job_id: r.result_sha256 for r in
                  conn.execute(select(jobs.c.job_id, jobs.c.result_sha256).where(jobs.c.study_id == study.id))}
    new_manifest = dumps(up.study.model_dump(mode="json")) if up.study is not None else None
    todo = [p for p in prepared if stored.get(p.job_id) != p.sha256]
    manifest_changed = study is not None and up.study is not None and new_manifest != study.manifest_json
    if study is not None and not todo and not manifest_changed:
        return Outcome(False, study.id, None, 0, 0, len(prepared), study.owner, study.slug)
    if study is not None and study.owner_id != caller.user_id:
        raise UploadError(409, f"study {study.slug!r} was uploaded by {study.owner}; only they can add to it "
                               f"(this push has {len(todo)} result(s) the stored study lacks)")
    name = _study_name(up, prepared)
    if study is None:
        from llem.results.leaderboard import study_slug

        base = study_slug(name, up.study.study_design_hash if up.study is not None else None)[:180]
        slug = _free_slug(conn, base, None)
        study_id = conn.execute(insert(studies).values(
            study_key=key, study_design_hash=(up.study.study_design_hash[:64] if up.study is not None else None),
            name=name, slug=slug, kind="study" if up.study is not None else "result",
            study_created_at=to_utc(up.study.created_at) if up.study is not None else None,
            llem_version=(up.study.llem_version if up.study is not None else prepared[0].result.llem_version)[:64],
            owner_id=caller.user_id, uploaded_at=now, updated_at=now, verified=False, n_jobs=0, n_results=0,
            index_entry_json="{}").returning(studies.c.id)).scalar_one()
        conn.execute(insert(study_documents).values(id=study_id, manifest_json=new_manifest, leaderboard_json="{}"))
    else:
        study_id, slug = study.id, study.slug
    upload_id = conn.execute(insert(uploads).values(
        user_id=caller.user_id, study_id=study_id, token_id=caller.token_id, created_at=now,
        client_llem_version=up.client.llem_version, client_python=up.client.python,
        client_platform=up.client.platform, body_sha256=body_sha256, body_bytes=body_bytes,
        results_added=sum(1 for p in todo if p.job_id not in stored),
        results_replaced=sum(1 for p in todo if p.job_id in stored),
        results_unchanged=len(prepared) - len(todo),
        environment_json=dumps(environment_summary([p.result for p in prepared])),
        verified=False).returning(uploads.c.id)).scalar_one()
    for p in todo:
        values = {**p.row, "result_sha256": p.sha256, "upload_id": upload_id}
        docs = {"result_json": p.result_json, "timeseries_json": p.timeseries_json}
        if p.job_id in stored:
            pk = conn.execute(update(jobs).where(jobs.c.study_id == study_id, jobs.c.job_id == p.job_id)
                              .values(**values).returning(jobs.c.id)).scalar_one()
            conn.execute(update(job_documents).where(job_documents.c.id == pk).values(**docs))
        else:
            pk = conn.execute(insert(jobs).values(study_id=study_id, job_id=p.job_id, **values)
                              .returning(jobs.c.id)).scalar_one()
            conn.execute(insert(job_documents).values(id=pk, **docs))
    _refresh_study(conn, study_id, up.study, name, slug, now)
    added = sum(1 for p in todo if p.job_id not in stored)
    return Outcome(True, study_id, upload_id, added, len(todo) - added, len(prepared) - len(todo),
                   caller.user_name, slug)


def _refresh_study(conn: Connection, study_id: int, manifest: Optional[StudyResult], name: str, slug: str,
                   now) -> None:
    """Recompute the study's leaderboard document and index line from everything stored for it."""
    from llem.results.leaderboard import index_line

    if manifest is None:
        text = conn.execute(select(study_documents.c.manifest_json).where(study_documents.c.id == study_id)).scalar_one()
        manifest = StudyResult.model_validate_json(text) if text else None
    results = {r.job_id: ExperimentResult.model_validate_json(r.result_json)
               for r in conn.execute(select(jobs.c.job_id, job_documents.c.result_json)
                                     .join(job_documents, job_documents.c.id == jobs.c.id)
                                     .where(jobs.c.study_id == study_id))}
    doc = leaderboard_document(manifest, results, name, slug)
    line = index_line(doc, f"{slug}.json")
    conn.execute(update(studies).where(studies.c.id == study_id).values(
        study_finished_at=to_utc(manifest.finished_at) if manifest is not None else None,
        n_jobs=len(manifest.jobs) if manifest is not None else 1, n_results=len(results), updated_at=now,
        index_entry_json=json.dumps(line, allow_nan=False)))
    conn.execute(update(study_documents).where(study_documents.c.id == study_id).values(
        manifest_json=dumps(manifest.model_dump(mode="json")) if manifest is not None else None,
        leaderboard_json=json.dumps(doc, indent=1, allow_nan=False)))


# --- delete --------------------------------------------------------------------------------------

class NotFound(Exception):
    pass


class Forbidden(Exception):
    pass


def delete_study(db: Database, caller: Caller, study_id: int) -> int:
    """Delete a study with all its jobs and upload records; only its uploader may. Returns jobs deleted."""
    with db.write() as conn:
        owner = conn.execute(select(studies.c.owner_id).where(studies.c.id == study_id)).scalar_one_or_none()
        if owner is None:
            raise NotFound(study_id)
        if owner != caller.user_id:
            raise Forbidden(study_id)
        n = conn.execute(select(func.count()).select_from(jobs).where(jobs.c.study_id == study_id)).scalar_one()
        conn.execute(delete(job_documents).where(job_documents.c.id.in_(select(jobs.c.id)
                                                                         .where(jobs.c.study_id == study_id))))
        conn.execute(delete(jobs).where(jobs.c.study_id == study_id))
        conn.execute(delete(uploads).where(uploads.c.study_id == study_id))
        conn.execute(delete(study_documents).where(study_documents.c.id == study_id))
        conn.execute(delete(studies).where(studies.c.id == study_id))
        return n
