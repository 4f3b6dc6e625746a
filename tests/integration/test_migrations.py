"""Migrations build the schema from an empty database, the result matches the models exactly, and the chain
downgrades to nothing and upgrades again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pprint import pformat
from typing import Any

import psycopg
import pytest
import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from boothbridge.db.engine import sqlalchemy_url
from boothbridge.db.migrate import alembic_config, upgrade_to_head
from boothbridge.db.models import Base


def _database_url(admin_url: str, name: str) -> str:
    head, _, query = admin_url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
def empty_database_url(pg_admin_url: str) -> Iterator[str]:
    name = f"bb_migrate_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # from template1: no tables at all
    try:
        yield _database_url(pg_admin_url, name)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _schema_diff(url: str) -> list[Any]:
    engine = sqlalchemy.create_engine(sqlalchemy_url(url), poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_server_default": True, "compare_type": True})
            return list(compare_metadata(ctx, Base.metadata))
    finally:
        engine.dispose()


def _tables_and_revision(url: str) -> tuple[set[str], str | None]:
    engine = sqlalchemy.create_engine(sqlalchemy_url(url), poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            tables = set(sqlalchemy.inspect(conn).get_table_names())
            revision = MigrationContext.configure(conn).get_current_revision()
        return tables, revision
    finally:
        engine.dispose()


def test_migrations_build_the_models_schema_from_nothing(empty_database_url: str) -> None:
    url = empty_database_url
    assert _tables_and_revision(url) == (set(), None)

    upgrade_to_head(url)

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    tables, revision = _tables_and_revision(url)
    assert revision == head
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    diff = _schema_diff(url)
    assert diff == [], "schema differs from the models:\n" + pformat(diff)


def test_downgrade_to_base_and_upgrade_again(empty_database_url: str) -> None:
    url = empty_database_url
    upgrade_to_head(url)

    command.downgrade(alembic_config(url), "base")

    tables, revision = _tables_and_revision(url)
    assert revision is None
    assert tables <= {"alembic_version"}, tables

    upgrade_to_head(url)

    tables, revision = _tables_and_revision(url)
    assert revision == ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    diff = _schema_diff(url)
    assert diff == [], "schema differs from the models after downgrade + upgrade:\n" + pformat(diff)
