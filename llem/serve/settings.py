"""Where the database lives and the limits the server enforces: one object, read once.

Precedence for the database: ``--database-url``, then ``LLEM_DATABASE_URL``, then a SQLite file
under the user's data directory (``$XDG_DATA_HOME/llem/llem.db``, ``~/.local/share/llem/llem.db``
when XDG_DATA_HOME is unset), so ``llem serve`` works on a fresh machine with nothing else
installed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from llem.errors import ConfigError

DB_NAME = "llem.db"
#: an upload larger than this is refused whole (413); a study with long time series may need more
DEFAULT_MAX_UPLOAD_MB = 32.0
#: uploads (and new live studies) a user may start per minute before the server answers 429
DEFAULT_UPLOAD_RATE_PER_MIN = 30
#: the most a running study may send in one batch of live events
MAX_LIVE_BODY_BYTES = 1 << 20


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "llem"


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / DB_NAME}"


def resolve_database_url(cli_value: Optional[str] = None) -> str:
    url = cli_value or os.environ.get("LLEM_DATABASE_URL") or default_database_url()
    return normalise_url(url)


def normalise_url(url: str) -> str:
    """Accept the URL forms people paste (``postgres://``, ``postgresql://``) and pick the psycopg 3
    driver; refuse anything but SQLite and PostgreSQL with one line."""
    u = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if u.startswith(prefix):
            return "postgresql+psycopg://" + u[len(prefix):]
    if u.startswith(("postgresql+psycopg://", "sqlite:///", "sqlite+pysqlite:///")):
        return u
    scheme = u.split(":", 1)[0] if ":" in u else u
    raise ConfigError(f"--database-url: {scheme!r} is not a supported database; allowed: sqlite:///PATH, "
                      "postgresql://USER@HOST:PORT/DB", field="database_url", value=scheme,
                      allowed=["sqlite", "postgresql"])


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs and messages."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    cred, host = rest.rsplit("@", 1)
    user = cred.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in cred else url


@dataclass
class ServeSettings:
    database_url: str = field(default_factory=default_database_url)
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024)
    upload_rate_per_min: int = DEFAULT_UPLOAD_RATE_PER_MIN
    #: origins allowed to call the API from a browser; empty: CORS closed (same origin only)
    cors_origins: list[str] = field(default_factory=list)
    #: create or upgrade the schema when the app starts (``llem serve`` does; tests may migrate first)
    migrate_on_start: bool = True
