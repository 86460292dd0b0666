"""``llem serve``: the results API (v4.1) and the live view of running studies (v4.2).

It stores uploaded results in a database (SQLite under the user's data directory by default,
PostgreSQL in production), serves them back (lists, one study, one job with its time series,
comparisons, the leaderboard JSON the static site reads) and relays the progress and GPU power
that running studies push. It reads results through ``llem.results`` and the result schema only:
nothing here imports a backend or runs a measurement (docs/serve.md).

Importing this package needs nothing beyond llem's own dependencies; the server's modules
(``app``, ``db``, ``store``) need the ``serve`` extra (FastAPI, SQLAlchemy, Alembic).
"""
