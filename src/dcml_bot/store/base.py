"""The store's shared engine, sessions and statement helpers."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Engine,
    Executable,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from dcml_bot.store.database import (
    SQLITE_BUSY_TIMEOUT_MS,
    WRITE_OPTION,
    single_reader,
    writer,
)
from dcml_bot.store.schema import ProcessedEvent

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql

logger = logging.getLogger(__name__)

DEFAULT_LEASE = dt.timedelta(minutes=5)
# How long the health probe waits for another writer's lock: longer than any write of the bot's.
PROBE_WAIT_MS = 2_000
# Ids per IN (...) list: below the 999 bound parameters older SQLite builds allow.
_IN_BATCH = 900


def _dml(session: Session, statement: Executable) -> CursorResult[Any]:
    """Run INSERT/UPDATE/DELETE as Core on the session's connection (no ORM bulk semantics)."""
    return session.connection().execute(statement)


def _check(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _due(
    column: InstrumentedAttribute[dt.datetime | None], now: dt.datetime
) -> ColumnElement[bool]:
    """True when ``column`` is unset or not after ``now``."""
    return or_(column.is_(None), column <= now)


def _busy_timeout(connection: Connection, milliseconds: int) -> None:
    """Set a pooled SQLite connection's lock patience, outside any transaction."""
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA busy_timeout={milliseconds}")


def _one_line(exc: Exception) -> str:
    """The database's own message, first line, without SQLAlchemy's statement and links."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class StoreBase:
    """The engine and sessions every part of the store shares.

    Every method runs in its own short transaction. On SQLite, writing methods start with
    BEGIN IMMEDIATE (see ``database.writer``), so their read-then-write steps cannot interleave
    with another process's; that needs an engine from ``database.make_engine``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database dialect {self._dialect!r}")
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(writer(engine), expire_on_commit=False)
        self._single = single_reader(engine)

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()

    def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
        except Exception:
            logger.warning("database ping failed", exc_info=True)
            return False
        return True

    def write_problem(self) -> str | None:
        """None when the bot can write now, else why not (one line): a row is inserted where
        the platforms' events go and rolled back, waiting at most PROBE_WAIT_MS for a lock."""
        row = {
            "platform": "healthz",
            "event_id": uuid.uuid4().hex,
            "received_at": dt.datetime.now(dt.UTC),
        }
        try:
            with self.engine.connect() as connection:
                on_sqlite = self._dialect == "sqlite"
                if on_sqlite:  # pooled: its usual patience is given back below
                    _busy_timeout(connection, PROBE_WAIT_MS)
                try:
                    connection.execution_options(**{WRITE_OPTION: True})
                    with connection.begin() as transaction:
                        if not on_sqlite:  # SET LOCAL: ends with the transaction
                            connection.execute(text(f"SET LOCAL lock_timeout = {PROBE_WAIT_MS}"))
                            connection.execute(
                                text(f"SET LOCAL statement_timeout = {PROBE_WAIT_MS}")
                            )
                        connection.execute(insert(ProcessedEvent).values(**row))
                        transaction.rollback()
                finally:
                    if on_sqlite:
                        _busy_timeout(connection, SQLITE_BUSY_TIMEOUT_MS)
        except Exception as exc:  # whatever the driver raises, /healthz says it in one line
            problem = _one_line(exc)
            logger.warning("database write probe failed: %s", problem)
            return problem
        return None

    def disk_free(self) -> tuple[Path, int] | None:
        """The SQLite file's directory and its free bytes; None for PostgreSQL or in memory
        (the server's disk is its own to watch: its write probe fails when it is full)."""
        database = self.engine.url.database
        if self._dialect != "sqlite" or not database or database == ":memory:":
            return None
        folder = Path(database).resolve().parent
        try:
            return folder, shutil.disk_usage(folder).free
        except OSError as exc:
            logger.warning("free space of %s unknown: %s", folder, exc)
            return None

    def _insert(self, model: type[Any]) -> postgresql.Insert | sqlite.Insert:
        if self._dialect == "postgresql":
            # Imported here: a SQLite bot never loads the PostgreSQL dialect (≈ 40 ms at start).
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(model)
        return sqlite.insert(model)
