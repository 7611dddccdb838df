"""Fixtures: store tests run on SQLite (a temp file) and on a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from dcml_bot.store import Store, open_store

# Trust auth as user postgres; override to point the tests at another server.
PG_ADMIN_URL = os.environ.get(
    "DCML_BOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An autocommit engine on the maintenance database, used to create and drop test databases."""
    engine = create_engine(
        PG_ADMIN_URL,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 5},
    )
    error = None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        error = exc.orig
    if error is not None:
        engine.dispose()
        # Fail, never skip: a missing database must not pass CI silently.
        pytest.fail(
            f"PostgreSQL tests need a server at {PG_ADMIN_URL} (user postgres, trust auth; "
            f"or set DCML_BOT_TEST_PG_URL), but it is unreachable: {error}",
            pytrace=False,
        )
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def pg_database(pg_admin: Engine) -> Iterator[Engine]:
    """A throwaway PostgreSQL database for one test module (CREATE DATABASE costs ~0.2 s)."""
    name = f"dcml_bot_test_{uuid.uuid4().hex[:16]}"
    with pg_admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(
        make_url(PG_ADMIN_URL).set(database=name), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        yield engine
    finally:
        engine.dispose()
        with pg_admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _reset_postgresql(engine: Engine) -> None:
    """Empty the database, leaving it as CREATE DATABASE would (sequences included)."""
    with engine.connect() as connection:
        # A connection leaked by an earlier test would block DROP SCHEMA forever.
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty, unmigrated database of each kind, fresh for every test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    engine: Engine = request.getfixturevalue("pg_database")
    _reset_postgresql(engine)
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated store on the database under test."""
    opened = open_store(db_url)
    try:
        yield opened
    finally:
        opened.dispose()
