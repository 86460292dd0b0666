"""Users and their API tokens.

A token is ``llem_`` + 43 random URL-safe characters (256 bits from ``secrets``). The server keeps
its SHA-256 only: a token this random cannot be guessed from its hash, so a slow password hash
would add nothing. It is shown once, by ``llem serve token create``; ``llem serve token list``
shows its first characters (``prefix``) to tell tokens apart. A revoked token is refused (401)
from the next request on. Tokens are read from the ``Authorization: Bearer`` header only (never
from a URL, so they cannot end up in an access log), and are never logged.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from llem.errors import ConfigError
from llem.serve.db import api_tokens, users, utcnow

TOKEN_PREFIX = "llem_"
PREFIX_CHARS = 12
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_TOKEN = re.compile(r"llem_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the user and the token they used."""

    user_id: int
    user_name: str
    token_id: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_user_name(name: str) -> str:
    if not USER_NAME.fullmatch(name or ""):
        raise ConfigError(f"user: {name!r} is not a valid user name; allowed: 1-64 characters of letters, digits "
                          "and _ . @ -, starting with a letter or digit", field="user", value=name,
                          allowed="[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
    return name


def ensure_user(conn: Connection, name: str) -> int:
    check_user_name(name)
    uid = conn.execute(select(users.c.id).where(users.c.name == name)).scalar_one_or_none()
    if uid is None:
        uid = conn.execute(insert(users).values(name=name, created_at=utcnow()).returning(users.c.id)).scalar_one()
    return uid


def create_token(conn: Connection, user: str, label: Optional[str] = None) -> tuple[int, str]:
    """(token id, the token): the only time the token itself exists outside its owner's hands."""
    uid = ensure_user(conn, user)
    token = new_token()
    tid = conn.execute(insert(api_tokens).values(user_id=uid, token_sha256=hash_token(token),
                                                 prefix=token[:PREFIX_CHARS], label=label,
                                                 created_at=utcnow()).returning(api_tokens.c.id)).scalar_one()
    return tid, token


def revoke_token(conn: Connection, token_id: int) -> bool:
    """Revoke one token by id; False when there is no such token or it was revoked already."""
    res = conn.execute(update(api_tokens).where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                       .values(revoked_at=utcnow()))
    return res.rowcount == 1


def list_tokens(conn: Connection) -> list[dict]:
    q = (select(api_tokens.c.id, users.c.name.label("user"), api_tokens.c.prefix, api_tokens.c.label,
                api_tokens.c.created_at, api_tokens.c.revoked_at)
         .join(users, users.c.id == api_tokens.c.user_id).order_by(api_tokens.c.id))
    return [dict(r._mapping) for r in conn.execute(q)]


def caller_for(conn: Connection, token: Optional[str]) -> Optional[Caller]:
    """The caller a bearer token belongs to, or None (missing, malformed, unknown or revoked)."""
    if not token or not _TOKEN.fullmatch(token):
        return None
    row = conn.execute(select(api_tokens.c.id, api_tokens.c.token_sha256, api_tokens.c.revoked_at, users.c.id.label("uid"),
                              users.c.name).join(users, users.c.id == api_tokens.c.user_id)
                       .where(api_tokens.c.token_sha256 == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    if not secrets.compare_digest(row.token_sha256, hash_token(token)):
        return None
    return Caller(user_id=row.uid, user_name=row.name, token_id=row.id)
