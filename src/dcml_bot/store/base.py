"""The store's shared engine, sessions and statement helpers."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Engine,
    Executable,
    or_,
    select,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from dcml_bot.store.database import single_reader, writer

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql

logger = logging.getLogger(__name__)

DEFAULT_LEASE = dt.timedelta(minutes=5)
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

    def _insert(self, model: type[Any]) -> postgresql.Insert | sqlite.Insert:
        if self._dialect == "postgresql":
            # Imported here: a SQLite bot never loads the PostgreSQL dialect (≈ 40 ms at start).
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(model)
        return sqlite.insert(model)
