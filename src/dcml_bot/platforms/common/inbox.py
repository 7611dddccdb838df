"""Join events kept in the database from arrival until handled, so a restart loses none."""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from dcml_bot.core.metrics import Metrics
from dcml_bot.core.once import Retry
from dcml_bot.core.outbound import Stopping
from dcml_bot.platforms.common.background import Background
from dcml_bot.store import Store

log = logging.getLogger(__name__)

# Work for one kind of event, given the payload as it was kept (JSON text).
Work = Callable[[str], None]
# Who an event is about (the user ids to name if it is given up), from its payload.
Who = Callable[[str], list[str]]
# Told when an event is given up: (kind, the users it was about, the last error, its arrival).
GiveUp = Callable[[str, list[str], str, dt.datetime], object]

# A failed event (a profile lookup that failed, the database away) is tried again while the
# bot runs: after 30 s, doubling up to every 30 minutes, for a day from its arrival.
RETRY = Retry(first=dt.timedelta(seconds=30), factor=2, cap=dt.timedelta(minutes=30))
GIVE_UP = dt.timedelta(hours=24)


class Later:
    """Runs callables after a delay, on one daemon thread started when first needed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def call(self, delay: float, work: Callable[..., Any], *args: Any) -> bool:
        """Run ``work(*args)`` in ``delay`` seconds; False once closed (nothing is queued)."""
        with self._wake:
            if self._closed:
                return False
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._order), work, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._wake.notify()
        return True

    def close(self) -> int:
        """Drop what is waiting and end the thread; returns how many calls were dropped."""
        with self._wake:
            self._closed = True
            dropped = len(self._queue)
            self._queue.clear()
            self._wake.notify()
        return dropped

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._closed and (
                    not self._queue or self._queue[0][0] > time.monotonic()
                ):
                    wait = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._wake.wait(wait)
                if self._closed:
                    return
                _, _, work, args = heapq.heappop(self._queue)
            try:
                work(*args)
            except Exception:
                log.exception("%s: a delayed call failed", self.name)


class Inbox:
    """A platform's durable queue of events whose effect must happen once (joins → welcomes).

    An event is written with its payload when it arrives (its id also dedupes redeliveries),
    then handled on the background pool and marked handled. One that fails stays pending and
    is tried again with back-off (``retry``) while the bot runs; ``give_up`` after its arrival
    it is marked handled, with one WARNING and ``on_give_up`` (the admins' notice). Shutdown
    may drop the queue and the waiting retries (``close``); ``replay`` at the next start queues
    what was left.
    """

    def __init__(
        self,
        platform: str,
        store: Store,
        background: Background,
        clock: Callable[[], dt.datetime],
        metrics: Metrics,
        *,
        on_give_up: GiveUp | None = None,
    ) -> None:
        self.platform = platform
        self.store = store
        self.background = background
        self.clock = clock
        self.metrics = metrics
        self.on_give_up = on_give_up
        self.retry = RETRY
        self.give_up = GIVE_UP
        self.handlers: dict[str, tuple[Work, Who | None]] = {}
        self._later = Later(f"{platform}-retries")

    def register(self, kind: str, work: Work, who: Who | None = None) -> None:
        """Handle events of ``kind`` with ``work(payload)``; ``who(payload)``: whom it is about."""
        self.handlers[kind] = (work, who)

    def accept(self, kind: str, event_id: object, payload: str) -> bool:
        """Keep and queue an event; False (and counted) when its id was seen before."""
        event_id = str(event_id) if event_id else None
        now = self.clock()
        if event_id is not None:
            kept = self.store.record_event(self.platform, event_id, now, kind=kind, payload=payload)
            if not kept:
                self.metrics.events.labels(self.platform, kind, "duplicate").inc()
                return False
        if not self._queue(kind, event_id, payload, now, 1):
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
            self._queue(event.kind, event.event_id, event.payload, event.received_at, 1)
        if pending:
            log.info(
                "%s: %d event(s) left by the last run queued again", self.platform, len(pending)
            )
        return len(pending)

    def close(self) -> None:
        """Stop retrying (shutting down): the events waiting stay pending for the next start."""
        if self._later.close():
            log.info("%s: failed events left for the next start", self.platform)

    def _queue(
        self, kind: str, event_id: str | None, payload: str, received: dt.datetime, attempt: int
    ) -> bool:
        """Submit the event's work; False when the pool is shut down (we are stopping)."""
        try:
            self.background.submit(
                self._handle,
                kind,
                event_id,
                payload,
                received,
                attempt,
                replayable=event_id is not None,
            )
        except RuntimeError:
            return False
        return True

    def _handle(
        self, kind: str, event_id: str | None, payload: str, received: dt.datetime, attempt: int
    ) -> None:
        work, _ = self.handlers[kind]
        try:
            work(payload)
        except Stopping:
            raise  # shutting down: left pending for the next start
        except Exception as exc:
            if event_id is None:
                raise  # not kept: nothing to try again by (logged by the pool)
            self._failed(kind, event_id, payload, received, attempt, exc)
            return
        if event_id is not None:
            self.store.event_handled(self.platform, event_id, self.clock())

    def _failed(
        self,
        kind: str,
        event_id: str,
        payload: str,
        received: dt.datetime,
        attempt: int,
        exc: Exception,
    ) -> None:
        error = f"{exc.__class__.__name__}: {exc}"
        now = self.clock()
        delay = self.retry.delay(attempt, None)
        if delay is None or now - received >= self.give_up:
            self.store.event_handled(self.platform, event_id, now)
            self.metrics.events.labels(self.platform, kind, "given-up").inc()
            log.warning(
                "%s: %s %s given up (attempt %d of this run; received %s): %s",
                self.platform,
                kind,
                event_id,
                attempt,
                received.isoformat(timespec="seconds"),
                error,
            )
            self._tell(kind, payload, error, received)
            return
        self.metrics.events.labels(self.platform, kind, "retry").inc()
        wait = delay.total_seconds()
        later = self._later.call(wait, self._queue, kind, event_id, payload, received, attempt + 1)
        log.warning(
            "%s: %s %s failed (attempt %d), %s: %s",
            self.platform,
            kind,
            event_id,
            attempt,
            f"trying again in {wait:g} s" if later else "left for the next start",
            error,
            exc_info=attempt == 1,
        )

    def _tell(self, kind: str, payload: str, error: str, received: dt.datetime) -> None:
        _, who = self.handlers[kind]
        if self.on_give_up is None:
            return
        try:
            users = who(payload) if who is not None else []
            self.on_give_up(kind, users, error, received)
        except Exception:
            log.exception("%s: telling the admins about a given-up %s failed", self.platform, kind)
