"""Alembic migrations: upgrade from an empty database, match the tables the code uses, downgrade."""
import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from llem.serve import migrate
from llem.serve.db import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    pg = request.getfixturevalue("pg_server")
    name = f"empty_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    yield pg.create_database(name)
    pg.drop_database(name)


def _tables(url):
    eng = create_engine(url)
    try:
        return set(inspect(eng).get_table_names())
    finally:
        eng.dispose()


def test_upgrade_from_empty_matches_the_tables_and_downgrade_removes_them(empty_url):
    assert _tables(empty_url) == set()
    migrate.upgrade(empty_url)
    assert _tables(empty_url) == set(metadata.tables) | {"alembic_version"}
    eng = create_engine(empty_url)
    try:
        assert migrate.current(eng) == migrate.head()
        with eng.connect() as conn:
            # the migrated schema is exactly the one llem.serve.db describes (columns, types, indexes, keys)
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert diff == []
    finally:
        eng.dispose()
    migrate.downgrade(empty_url, "base")
    assert _tables(empty_url) == {"alembic_version"}
    eng = create_engine(empty_url)
    try:
        assert migrate.current(eng) is None
    finally:
        eng.dispose()
    migrate.upgrade(empty_url)  # and up again, on the downgraded database
    assert _tables(empty_url) == set(metadata.tables) | {"alembic_version"}


def test_a_change_to_the_tables_without_a_migration_is_seen(tmp_path):
    """The comparison above can fail: a column the migrations do not create shows up in it."""
    from sqlalchemy import Column, Integer, MetaData, Table

    url = f"sqlite:///{tmp_path / 'x.db'}"
    migrate.upgrade(url)
    changed = MetaData()
    for t in metadata.tables.values():
        t.to_metadata(changed)
    Table("users", changed, Column("shoe_size", Integer), extend_existing=True)
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), changed)
    finally:
        eng.dispose()
    assert any(d[0] == "add_column" and d[3].name == "shoe_size" for d in diff)
