"""Join events kept in the database from arrival until handled, so a restart loses none."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from dcml_bot.core.metrics import Metrics
from dcml_bot.platforms.background import Background
from dcml_bot.store import Store

log = logging.getLogger(__name__)

# Work for one kind of event, given the payload as it was kept (JSON text).
Work = Callable[[str], None]


class Inbox:
    """A platform's durable queue of events whose effect must happen once (joins → welcomes).

    An event is written with its payload when it arrives (its id also dedupes redeliveries),
    then handled on the background pool and marked handled. Shutdown may drop the queue
    (``Background.shutdown``); ``replay`` at the next start queues what was left.
    """

    def __init__(
        self,
        platform: str,
        store: Store,
        background: Background,
        clock: Callable[[], dt.datetime],
        metrics: Metrics,
    ) -> None:
        self.platform = platform
        self.store = store
        self.background = background
        self.clock = clock
        self.metrics = metrics
        self.handlers: dict[str, Work] = {}

    def register(self, kind: str, work: Work) -> None:
        """Handle events of ``kind`` with ``work(payload)``."""
        self.handlers[kind] = work

    def accept(self, kind: str, event_id: object, payload: str) -> bool:
        """Keep and queue an event; False (and counted) when its id was seen before."""
        event_id = str(event_id) if event_id else None
        if event_id is not None:
            now = self.clock()
            kept = self.store.record_event(self.platform, event_id, now, kind=kind, payload=payload)
            if not kept:
                self.metrics.events.labels(self.platform, kind, "duplicate").inc()
                return False
        try:
            self.background.submit(
                self._handle, kind, event_id, payload, replayable=event_id is not None
            )
        except RuntimeError:  # the pool is shut down: we are stopping
            # Without an id there is nothing to replay it by: that one is lost, and said so.
            lost = event_id is None
            log.log(
                logging.WARNING if lost else logging.INFO,
                "%s: %s arrived during shutdown; %s",
                self.platform,
                kind,
                "dropped" if lost else "kept for the next start",
            )
        return True

    def replay(self) -> int:
        """Queue the events an earlier process received but did not handle; returns how many."""
        pending = [e for e in self.store.pending_events(self.platform) if e.kind in self.handlers]
        for event in pending:
            self.background.submit(
                self._handle, event.kind, event.event_id, event.payload, replayable=True
            )
        if pending:
            log.info(
                "%s: %d event(s) left by the last run queued again", self.platform, len(pending)
            )
        return len(pending)

    def _handle(self, kind: str, event_id: str | None, payload: str) -> None:
        # An exception leaves the event pending: the next start tries it again.
        self.handlers[kind](payload)
        if event_id is not None:
            self.store.event_handled(self.platform, event_id, self.clock())
