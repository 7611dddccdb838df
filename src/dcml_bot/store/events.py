"""Seen platform events: the dedupe of redelivered events, and joins kept until handled."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete, select, update

from dcml_bot.store.base import StoreBase, _dml
from dcml_bot.store.records import PendingEvent
from dcml_bot.store.schema import ProcessedEvent

logger = logging.getLogger(__name__)

# The kind of a signed request's identity (a Slack signature, a Feishu card action's event id),
# recorded so a replay inside the freshness window has no effect; kept only for that window.
REQUEST = "request"


class EventStore(StoreBase):
    """Event ids already seen, so a redelivered event runs once; and the joins still to do."""

    def record_event(
        self,
        platform: str,
        event_id: str,
        now: dt.datetime,
        *,
        kind: str | None = None,
        payload: str | None = None,
    ) -> bool:
        """Return True the first time (platform, event_id) is recorded, False for repeats.

        With a ``payload``, the event stays pending (``pending_events``) until ``event_handled``.
        """
        insert = self._insert(ProcessedEvent).values(
            platform=platform, event_id=event_id, received_at=now, kind=kind, payload=payload
        )
        with self._write.begin() as session:
            # RETURNING, not rowcount: drivers need not report rowcount for INSERT.
            statement = insert.on_conflict_do_nothing(
                index_elements=["platform", "event_id"]
            ).returning(ProcessedEvent.event_id)
            return _dml(session, statement).first() is not None

    def event_handled(self, platform: str, event_id: str, now: dt.datetime) -> None:
        """Mark a kept event handled and drop its payload: it is not replayed."""
        statement = (
            update(ProcessedEvent)
            .where(ProcessedEvent.platform == platform, ProcessedEvent.event_id == event_id)
            .values(handled_at=now, payload=None)
        )
        with self._write.begin() as session:
            _dml(session, statement)

    def pending_events(self, platform: str, limit: int = 10_000) -> list[PendingEvent]:
        """The platform's kept events not handled yet, oldest first."""
        query = (
            select(
                ProcessedEvent.event_id,
                ProcessedEvent.kind,
                ProcessedEvent.payload,
                ProcessedEvent.received_at,
            )
            .where(
                ProcessedEvent.platform == platform,
                ProcessedEvent.payload.is_not(None),
                ProcessedEvent.handled_at.is_(None),
            )
            .order_by(ProcessedEvent.received_at, ProcessedEvent.event_id)
            .limit(limit)
        )
        with self._read.begin() as session:
            return [
                PendingEvent(row.event_id, row.kind or "", row.payload or "", row.received_at)
                for row in session.execute(query)
            ]

    def prune_events(self, older_than: dt.datetime, *, kind: str | None = None) -> int:
        """Forget events received before ``older_than`` (only those of ``kind``, if given);
        return how many."""
        statement = delete(ProcessedEvent).where(ProcessedEvent.received_at < older_than)
        if kind is not None:
            statement = statement.where(ProcessedEvent.kind == kind)
        with self._write.begin() as session:
            return _dml(session, statement).rowcount
