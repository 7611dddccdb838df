"""The ``Store``: one object over every part of the persistence, and how to open it."""

from __future__ import annotations

from sqlalchemy import Engine

from dcml_bot.store.database import (
    HEAD_REVISION,
    current_revision,
    make_engine,
    upgrade,
    verify_sqlite,
)
from dcml_bot.store.events import EventStore
from dcml_bot.store.lab import LabStore
from dcml_bot.store.members import MemberStore
from dcml_bot.store.outbox import OutboxStore
from dcml_bot.store.progress import ProgressStore
from dcml_bot.store.reading_together import ReadingTogetherStore
from dcml_bot.store.review import ReviewStore


class Store(
    MemberStore,
    ProgressStore,
    EventStore,
    OutboxStore,
    LabStore,
    ReadingTogetherStore,
    ReviewStore,
):
    """Persistence for members, progress, events, the outbox, the local lab, notes and digests,
    and the lab's weekly review."""


def open_store(url: str) -> Store:
    """Create an engine for ``url``, check and migrate it to head, wrap it in a ``Store``.

    Raises DatabaseFileError for a SQLite file that exists but is empty, not a database or
    damaged (it is left untouched).
    """
    engine: Engine = make_engine(url)
    try:
        verify_sqlite(engine)
        if current_revision(engine) != HEAD_REVISION:
            upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)
