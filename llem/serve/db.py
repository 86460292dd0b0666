"""The database: tables (SQLAlchemy Core), the engine, and the few helpers every module shares.

Every statement is built with SQLAlchemy's expression language, so every value a request brings
reaches the database as a bound parameter, never as SQL text. Alembic migrations
(``llem/serve/migrations``) create these tables; ``tests/serve/test_migrations.py`` checks that
the migrated schema and the tables below are the same.

Times are stored as UTC without a zone (the same on SQLite and PostgreSQL). Free text (model
names, messages) is ``Text``; ``String(n)`` only holds values the server checked or made itself
(hashes, identifiers), so no upload can overflow a column.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import (Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, create_engine, event)
from sqlalchemy.engine import Connection, Engine

NAMING = {"ix": "ix_%(table_name)s_%(column_0_N_name)s", "uq": "uq_%(table_name)s_%(column_0_N_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"}
metadata = MetaData(naming_convention=NAMING)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    # sha256 of the token: the token itself is shown once, when created, and never stored
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),  # the token's first characters, to tell tokens apart
    Column("label", Text),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
)

studies = Table(
    "studies", metadata,
    Column("id", Integer, primary_key=True),
    # what makes a study the same study when pushed again (llem.serve.store.study_key)
    Column("study_key", String(64), nullable=False, unique=True),
    Column("study_design_hash", String(64), index=True),
    Column("name", Text, nullable=False),
    # the leaderboard file stem (<slug>.json), unique on this server
    Column("slug", String(200), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # "study" (a manifest) or "result" (one result.json)
    Column("study_created_at", DateTime),
    Column("study_finished_at", DateTime),
    Column("llem_version", String(64)),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="RESTRICT"), nullable=False, index=True),
    Column("uploaded_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    # an upload proves who sent it, not that its numbers were measured as stated (docs/serve.md)
    Column("verified", Boolean, nullable=False, default=False),
    Column("n_jobs", Integer, nullable=False),
    Column("n_results", Integer, nullable=False),
    Column("index_entry_json", Text, nullable=False),  # its line of /leaderboard/index.json
)

# The large documents live apart from the rows that lists scan and sort, so a list of 10,000 jobs
# never reads 10,000 result.json files (SQLite stores a row's columns together, in one record).
study_documents = Table(
    "study_documents", metadata,
    Column("id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
    Column("manifest_json", Text),
    Column("leaderboard_json", Text, nullable=False),
)

uploads = Table(
    "uploads", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="RESTRICT"), nullable=False, index=True),
    Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("token_id", Integer, ForeignKey("api_tokens.id", ondelete="SET NULL")),
    Column("created_at", DateTime, nullable=False),
    Column("client_llem_version", String(64)),
    Column("client_python", String(64)),
    Column("client_platform", Text),
    Column("body_sha256", String(64), nullable=False),
    Column("body_bytes", Integer, nullable=False),
    Column("results_added", Integer, nullable=False),
    Column("results_replaced", Integer, nullable=False),
    Column("results_unchanged", Integer, nullable=False),
    # what the uploaded results say about where they ran (llem.serve.store.environment_summary)
    Column("environment_json", Text, nullable=False),
    Column("verified", Boolean, nullable=False, default=False),
)

jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True),
    Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("upload_id", Integer, ForeignKey("uploads.id", ondelete="SET NULL")),
    Column("job_id", String(64), nullable=False),
    Column("result_sha256", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("experiment_id", Text),
    Column("config_hash", String(64)),
    Column("backend", Text, index=True),
    Column("model", Text, index=True),
    Column("precision", Text, index=True),
    Column("batch", Integer, index=True),
    Column("device", Text),
    Column("gpu_name", Text, index=True),
    Column("started_at", DateTime, index=True),
    Column("ended_at", DateTime),
    Column("energy_measured", Boolean),
    Column("energy_estimated", Boolean),
    Column("synthetic", Boolean),
    Column("energy_per_output_token_j", Float, index=True),
    Column("energy_per_output_token_j_ci95_low", Float),
    Column("energy_per_output_token_j_ci95_high", Float),
    Column("energy_adjusted_per_output_token_j", Float),
    Column("tokens_per_joule", Float),
    Column("output_tokens_per_s", Float),
    Column("energy_j", Float),
    Column("llem_version", String(64)),
    Column("schema_version", String(16)),
    UniqueConstraint("study_id", "job_id"),
    UniqueConstraint("study_id", "result_sha256"),
)

job_documents = Table(
    "job_documents", metadata,
    Column("id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("result_json", Text, nullable=False),  # the result as validated (canonical JSON)
    Column("timeseries_json", Text),  # {"columns": {...}} from timeseries.parquet, when uploaded
)

live_studies = Table(
    "live_studies", metadata,
    Column("id", Integer, primary_key=True),
    Column("live_key", String(64), nullable=False, unique=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", Text, nullable=False),
    Column("study_design_hash", String(64)),
    Column("study_created_at", DateTime),
    Column("status", String(16), nullable=False),
    Column("state_json", Text, nullable=False),  # the jobs as last reported
    Column("started_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False, index=True),
)

Index("ix_jobs_gpu_backend_model", jobs.c.gpu_name, jobs.c.backend, jobs.c.model)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_utc(value: Any) -> Optional[datetime]:
    """An ISO 8601 text or a datetime as naive UTC; None for what cannot be read as a time."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is not None:
        try:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        except (OverflowError, ValueError):  # year 1 with a positive offset, year 9999 with a negative one
            return None
    return value


def iso(value: Optional[datetime]) -> Optional[str]:
    return None if value is None else value.replace(tzinfo=timezone.utc).isoformat(timespec="seconds")


def dumps(obj: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, no NaN (what is stored and what is hashed)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``url`` (already normalised by ``llem.serve.settings``).

    SQLite: WAL (readers never wait for a writer), foreign keys on, a busy timeout, and write
    transactions that take the write lock at BEGIN (``write_tx``), so two concurrent uploads
    queue instead of failing with "database is locked" when one upgrades a read lock.
    """
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=pool_size, max_overflow=20)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
            # pysqlite's own transaction handling is switched off; SQLAlchemy's BEGIN below decides
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # pragma: no cover
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("llem_write") else "BEGIN")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


class Database:
    """The engine and two ways to use it: ``read()`` and ``write()`` (each one transaction)."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = url.startswith("sqlite")

    def read(self):
        return self.engine.begin()

    def write(self):
        """A transaction that writes: on SQLite it holds the write lock from its first statement."""
        return _WriteTx(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


class _WriteTx:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Optional[Connection] = None
        self.tx = None

    def __enter__(self) -> Connection:
        self.conn = self.engine.connect().execution_options(llem_write=True)
        self.tx = self.conn.begin()
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.tx.commit()
            else:
                self.tx.rollback()
        finally:
            self.conn.close()


def table_counts(conn: Connection) -> dict[str, int]:
    """Rows per table: what tests compare before and after a refused request."""
    from sqlalchemy import func, select

    return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in metadata.sorted_tables}
