"""``llem serve``: run the API and web page, and administer its database and tokens.

    llem serve [--host 127.0.0.1] [--port 8000] [--database-url URL] [--max-upload-mb 32]
               [--upload-rate 30] [--cors-origin ORIGIN ...] [--log-level info]
    llem serve token create USER [--label TEXT]    # prints the new token on stdout, once
    llem serve token list
    llem serve token revoke ID
    llem serve db upgrade|downgrade|current [--revision REV]

The database is ``--database-url``, else ``LLEM_DATABASE_URL``, else SQLite under the user's data
directory (docs/serve.md). Every command upgrades the schema to the current version first, except
``db downgrade`` and ``db current``.
"""
from __future__ import annotations

import argparse
import sys

from llem.errors import ConfigError

USAGE = """usage: llem serve [--host HOST] [--port PORT] [--database-url URL] [--max-upload-mb MB]
                  [--upload-rate N] [--cors-origin ORIGIN ...] [--log-level LEVEL]
       llem serve token create USER [--label TEXT] | token list | token revoke ID
       llem serve db upgrade | db downgrade [--revision REV] | db current

  serve         the results API, the leaderboard files and the live page (default 127.0.0.1:8000)
  token create  a new API token for USER (created if new), printed once on stdout
  token list    every token: id, user, first characters, created, revoked
  token revoke  refuse token ID from now on
  db            migrate the database schema (upgrade runs by itself whenever llem serve starts)

database: --database-url, else $LLEM_DATABASE_URL, else sqlite under ~/.local/share/llem
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (llem's rule for bad input)
        raise ConfigError(f"{self.prog}: {message}", field=self.prog)


def _need_extra() -> None:
    missing = []
    for mod in ("fastapi", "uvicorn", "sqlalchemy", "alembic"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise ConfigError(f"llem serve needs the 'serve' extra ({', '.join(missing)} missing): "
                          "pip install 'llenergymeasure[serve]' or bash scripts/setup.sh --serve",
                          field="serve", value=missing, allowed="pip install 'llenergymeasure[serve]'")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="llem serve", usage=USAGE, add_help=True)
    p.add_argument("--database-url", metavar="URL")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=None, metavar="MB")
    p.add_argument("--upload-rate", type=int, default=None, metavar="N", help="uploads per user per minute (0: no limit)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser)
    t = sub.add_parser("token", prog="llem serve token")
    tsub = t.add_subparsers(dest="action", parser_class=_Parser, required=True)
    c = tsub.add_parser("create", prog="llem serve token create")
    c.add_argument("user")
    c.add_argument("--label")
    c.add_argument("--database-url", metavar="URL", dest="database_url_sub")
    ls = tsub.add_parser("list", prog="llem serve token list")
    ls.add_argument("--database-url", metavar="URL", dest="database_url_sub")
    r = tsub.add_parser("revoke", prog="llem serve token revoke")
    r.add_argument("id", type=int)
    r.add_argument("--database-url", metavar="URL", dest="database_url_sub")
    d = sub.add_parser("db", prog="llem serve db")
    d.add_argument("action", choices=["upgrade", "downgrade", "current"])
    d.add_argument("--revision", default=None)
    d.add_argument("--database-url", metavar="URL", dest="database_url_sub")
    return p


def serve_command(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    args = _parser().parse_args(argv)
    _need_extra()
    from llem.serve.settings import resolve_database_url

    url = resolve_database_url(getattr(args, "database_url_sub", None) or args.database_url)
    if args.cmd == "token":
        return _token(args, url)
    if args.cmd == "db":
        return _db(args, url)
    return _serve(args, url)


def _migrated(url: str) -> None:
    from sqlalchemy.exc import OperationalError

    from llem.serve import migrate
    from llem.serve.settings import redact_url

    try:
        migrate.upgrade(url)
    except OperationalError as err:
        raise ConfigError(f"--database-url: cannot reach {redact_url(url)} ({str(err.orig).strip().splitlines()[0]})",
                          field="database_url", value=redact_url(url), allowed="a reachable database") from None


def _token(args, url: str) -> int:
    from llem.serve import auth
    from llem.serve.db import Database

    _migrated(url)
    db = Database(url, pool_size=1)
    try:
        if args.action == "create":
            auth.check_user_name(args.user)
            with db.write() as conn:
                tid, token = auth.create_token(conn, args.user, args.label)
            print(token)
            print(f"llem serve: token {tid} for user {args.user!r} created; it is shown only now. "
                  f"Use it with: export LLEM_API_TOKEN=<token>", file=sys.stderr)
            return 0
        if args.action == "list":
            with db.read() as conn:
                rows = auth.list_tokens(conn)
            print(f"{'id':>4}  {'user':<20} {'token starts':<14} {'created (UTC)':<20} {'revoked (UTC)':<20} label")
            for r in rows:
                print(f"{r['id']:>4}  {r['user']:<20} {r['prefix'] + '…':<14} {r['created_at']:%Y-%m-%d %H:%M:%S}  "
                      f"{(format(r['revoked_at'], '%Y-%m-%d %H:%M:%S') if r['revoked_at'] else '-'):<20} "
                      f"{r['label'] or ''}")
            return 0
        with db.write() as conn:
            ok = auth.revoke_token(conn, args.id)
        if not ok:
            raise ConfigError(f"token revoke: no active token with id {args.id} (llem serve token list shows them)",
                              field="id", value=args.id, allowed="an active token id")
        print(f"llem serve: token {args.id} revoked", file=sys.stderr)
        return 0
    finally:
        db.dispose()


def _db(args, url: str) -> int:
    from llem.serve import migrate
    from llem.serve.db import Database
    from llem.serve.settings import redact_url

    if args.action == "upgrade":
        _migrated(url) if args.revision is None else migrate.upgrade(url, args.revision)
    elif args.action == "downgrade":
        migrate.downgrade(url, args.revision or "base")
    db = Database(url, pool_size=1)
    try:
        rev = migrate.current(db.engine)
    finally:
        db.dispose()
    print(f"{redact_url(url)}: schema revision {rev or '(empty)'} (this llem's newest: {migrate.head()})")
    return 0


def _serve(args, url: str) -> int:
    import uvicorn

    from llem.serve.app import create_app
    from llem.serve.settings import DEFAULT_MAX_UPLOAD_MB, DEFAULT_UPLOAD_RATE_PER_MIN, ServeSettings, redact_url

    if not (0 < args.port < 65536):
        raise ConfigError(f"--port: {args.port} is not a port; allowed: 1-65535", field="port", value=args.port,
                          allowed="1-65535")
    mb = DEFAULT_MAX_UPLOAD_MB if args.max_upload_mb is None else args.max_upload_mb
    if not (0 < mb <= 4096):
        raise ConfigError(f"--max-upload-mb: {mb} is out of range; allowed: more than 0, at most 4096",
                          field="max_upload_mb", value=mb, allowed="(0, 4096]")
    rate = DEFAULT_UPLOAD_RATE_PER_MIN if args.upload_rate is None else args.upload_rate
    if rate < 0:
        raise ConfigError(f"--upload-rate: {rate} is negative; allowed: 0 (no limit) or more", field="upload_rate",
                          value=rate, allowed=">= 0")
    for o in args.cors_origin:
        if not o.startswith(("http://", "https://")) or o.endswith("/"):
            raise ConfigError(f"--cors-origin: {o!r} is not an origin; allowed: scheme://host[:port], e.g. "
                              "https://leaderboard.example.org", field="cors_origin", value=o,
                              allowed="scheme://host[:port]")
    _migrated(url)
    settings = ServeSettings(database_url=url, max_upload_bytes=int(mb * 1024 * 1024), upload_rate_per_min=rate,
                             cors_origins=list(args.cors_origin), migrate_on_start=False)
    app = create_app(settings)
    print(f"llem serve: http://{args.host}:{args.port}/ (database {redact_url(url)}; uploads up to {mb:g} MiB, "
          f"{rate or 'unlimited'} per user a minute; CORS {'open to ' + ', '.join(args.cors_origin) if args.cors_origin else 'closed'})",
          file=sys.stderr, flush=True)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            timeout_graceful_shutdown=3, server_header=False)
    uvicorn.Server(config).run()
    return 0
