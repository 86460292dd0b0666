"""The live view (v4.2): running studies report their jobs and GPU power; pages follow over SSE.

A study started with ``llem run -m ... --live URL`` (``llem.study.live``) creates a live study
here, then sends batches of events: job states (pending, running, completed, failed, lost),
power samples of the running job's GPUs, and the study's own state at its end. The server keeps
each live study's jobs in the database (so a restart shows the last state it heard, and a study
that reconnects continues where it was) and the recent power samples in memory (the complete
record is the job's ``timeseries.parquet``, uploaded with the results). Pages subscribe to
``/api/v1/live/stream`` and get a snapshot, then every change as it arrives.

The live feed is a view, never the record: a study keeps running, and keeps its results on
disk, when the server is gone.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import deque
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from llem.serve.auth import Caller
from llem.serve.db import dumps, iso, live_studies, to_utc, users, utcnow
from llem.serve.upload import JOB_ID

LiveStatus = Literal["running", "finished", "interrupted", "stopped"]
JobState = Literal["pending", "running", "completed", "failed", "lost"]
#: power samples kept per job and GPU for pages that connect later (the last ~15 minutes at 1 Hz)
POWER_KEEP = 900
LIST_LIMIT = 50


class LiveJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(pattern=JOB_ID.pattern)
    status: JobState
    overrides: list[str] = Field(default_factory=list, max_length=64)
    started_at: Optional[str] = Field(None, max_length=40)
    ended_at: Optional[str] = Field(None, max_length=40)
    error_type: Optional[str] = Field(None, max_length=200)
    error_message: Optional[str] = Field(None, max_length=1000)
    energy_measured: Optional[bool] = None
    energy_per_output_token_j: Optional[float] = None
    output_tokens_per_s: Optional[float] = None
    gpu: Optional[str] = Field(None, max_length=200)


class LiveCreate(BaseModel):
    """``POST /api/v1/live``: a study announces itself (again, after a reconnect) with all its jobs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=300)
    study_design_hash: Optional[str] = Field(None, max_length=64)
    created_at: Optional[str] = Field(None, max_length=40)
    llem_version: Optional[str] = Field(None, max_length=64)
    jobs: list[LiveJob] = Field(default_factory=list, max_length=100_000)


class PowerBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(pattern=JOB_ID.pattern)
    gpu_index: int = Field(ge=0, le=1023)
    #: (unix time s, power W) pairs, read by the study's process beside the job
    samples: list[tuple[float, float]] = Field(max_length=3600)


class LiveEvents(BaseModel):
    """``POST /api/v1/live/{id}/events``: what changed since the last batch."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[LiveJob] = Field(default_factory=list, max_length=100_000)
    power: list[PowerBatch] = Field(default_factory=list, max_length=256)
    status: Optional[LiveStatus] = None
    power_unavailable_reason: Optional[str] = Field(None, max_length=500)


def live_key(owner_id: int, body: LiveCreate) -> str:
    return hashlib.sha256(dumps(["live", owner_id, body.name, body.study_design_hash, body.created_at])
                          .encode()).hexdigest()


def _counts(jobs: dict) -> dict:
    out = {s: 0 for s in ("pending", "running", "completed", "failed", "lost")}
    for j in jobs.values():
        out[j["status"]] = out.get(j["status"], 0) + 1
    return out


class LiveHub:
    """Live state shared by the request handlers (threads) and the SSE streams (the event loop)."""

    def __init__(self) -> None:
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._lock = threading.Lock()
        self._subscribers: set["Subscriber"] = set()
        self._power: dict[int, dict[str, dict[int, deque]]] = {}
        self._power_note: dict[int, str] = {}

    # --- subscribers (event loop) ---
    def subscribe(self) -> "Subscriber":
        sub = Subscriber()
        with self._lock:
            self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: "Subscriber") -> None:
        with self._lock:
            self._subscribers.discard(sub)

    def publish(self, event: dict) -> None:
        """Hand ``event`` to every open stream; callable from any thread."""
        if self.loop is None or self.loop.is_closed():
            return
        text = json.dumps(event, allow_nan=False)
        try:
            self.loop.call_soon_threadsafe(self._fanout, event["type"], text)
        except RuntimeError:  # the loop closed between the check and the call (shutdown)
            pass

    def _fanout(self, kind: str, text: str) -> None:
        with self._lock:
            subs = list(self._subscribers)
        for s in subs:
            s.put(kind, text)

    # --- power (any thread) ---
    def add_power(self, live_id: int, batch: PowerBatch) -> None:
        with self._lock:
            per_job = self._power.setdefault(live_id, {}).setdefault(batch.job_id, {})
            dq = per_job.setdefault(batch.gpu_index, deque(maxlen=POWER_KEEP))
            dq.extend((round(t, 3), round(w, 3)) for t, w in batch.samples)

    def note_power(self, live_id: int, reason: Optional[str]) -> None:
        if reason:
            with self._lock:
                self._power_note[live_id] = reason

    def power_of(self, live_id: int) -> dict:
        with self._lock:
            return {job: {str(g): list(dq) for g, dq in gpus.items()}
                    for job, gpus in self._power.get(live_id, {}).items()}

    # --- database (threads) ---
    def state(self, conn: Connection, live_id: int, *, with_power: bool = True) -> Optional[dict]:
        row = conn.execute(_select().where(live_studies.c.id == live_id)).first()
        return self._state(row, with_power) if row is not None else None

    def _state(self, row, with_power: bool) -> dict:
        jobs = json.loads(row.state_json)
        d = {"id": row.id, "name": row.name, "owner": row.owner, "status": row.status,
             "study_design_hash": row.study_design_hash, "created_at": iso(row.study_created_at),
             "started_at": iso(row.started_at), "updated_at": iso(row.updated_at), "counts": _counts(jobs),
             "jobs": sorted(jobs.values(), key=lambda j: j["job_id"]),
             "power_unavailable_reason": self._power_note.get(row.id)}
        if with_power:
            d["power"] = self.power_of(row.id)
        return d

    def snapshot(self, conn: Connection) -> dict:
        rows = conn.execute(_select().order_by(live_studies.c.updated_at.desc(), live_studies.c.id.desc())
                            .limit(LIST_LIMIT)).all()
        return {"studies": [self._state(r, True) for r in rows]}

    def create(self, conn: Connection, caller: Caller, body: LiveCreate) -> int:
        key = live_key(caller.user_id, body)
        now = utcnow()
        row = conn.execute(select(live_studies.c.id, live_studies.c.state_json)
                           .where(live_studies.c.live_key == key)).first()
        jobs = {j.job_id: j.model_dump() for j in body.jobs}
        if row is None:
            live_id = conn.execute(insert(live_studies).values(
                live_key=key, owner_id=caller.user_id, name=body.name, study_design_hash=body.study_design_hash,
                study_created_at=to_utc(body.created_at), status="running", state_json=dumps(jobs), started_at=now,
                updated_at=now).returning(live_studies.c.id)).scalar_one()
        else:
            live_id = row.id
            # a study that reconnects sends every job again: its report replaces what was heard
            conn.execute(update(live_studies).where(live_studies.c.id == live_id)
                         .values(state_json=dumps(jobs), status="running", updated_at=now))
        return live_id

    def apply(self, conn: Connection, live_id: int, body: LiveEvents) -> None:
        row = conn.execute(select(live_studies.c.state_json, live_studies.c.status)
                           .where(live_studies.c.id == live_id)).first()
        jobs = json.loads(row.state_json)
        for j in body.jobs:
            jobs[j.job_id] = j.model_dump()
        status = body.status or row.status
        conn.execute(update(live_studies).where(live_studies.c.id == live_id)
                     .values(state_json=dumps(jobs), status=status, updated_at=utcnow()))
        for p in body.power:
            self.add_power(live_id, p)
        self.note_power(live_id, body.power_unavailable_reason)

    def owner_of(self, conn: Connection, live_id: int) -> Optional[int]:
        return conn.execute(select(live_studies.c.owner_id).where(live_studies.c.id == live_id)).scalar_one_or_none()


def _select():
    return (select(live_studies.c.id, live_studies.c.name, users.c.name.label("owner"), live_studies.c.status,
                   live_studies.c.study_design_hash, live_studies.c.study_created_at, live_studies.c.started_at,
                   live_studies.c.updated_at, live_studies.c.state_json)
            .join(users, users.c.id == live_studies.c.owner_id))


RESYNC = "resync"


class Subscriber:
    """One open stream: a bounded queue; a page too slow to keep up is sent a fresh snapshot instead."""

    def __init__(self, maxsize: int = 1000) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
        self.overflowed = False

    def put(self, kind: str, text: str) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait((kind, text))
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait((RESYNC, ""))

    async def get(self) -> tuple[str, str]:
        item = await self.queue.get()
        if item[0] == RESYNC:
            self.overflowed = False
        return item
