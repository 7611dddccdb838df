"""Processed platform events: the dedupe of redelivered events."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import (
    delete,
)

from dcml_bot.store.base import StoreBase, _dml
from dcml_bot.store.schema import (
    ProcessedEvent,
)

logger = logging.getLogger(__name__)


class EventStore(StoreBase):
    """Event ids already handled, so a redelivered event runs once."""

    def record_event(self, platform: str, event_id: str, now: dt.datetime) -> bool:
        """Return True the first time (platform, event_id) is recorded, False for repeats."""
        insert = self._insert(ProcessedEvent).values(
            platform=platform, event_id=event_id, received_at=now
        )
        with self._write.begin() as session:
            # RETURNING, not rowcount: drivers need not report rowcount for INSERT.
            statement = insert.on_conflict_do_nothing(
                index_elements=["platform", "event_id"]
            ).returning(ProcessedEvent.event_id)
            return _dml(session, statement).first() is not None

    def prune_events(self, older_than: dt.datetime) -> int:
        """Forget events received before ``older_than``; return how many."""
        with self._write.begin() as session:
            statement = delete(ProcessedEvent).where(ProcessedEvent.received_at < older_than)
            return _dml(session, statement).rowcount
