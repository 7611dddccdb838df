"""Replayed requests: a signed command or button press runs once, however often it is resent."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable

from dcml_bot.core.metrics import Metrics
from dcml_bot.store import Store
from dcml_bot.store.events import REQUEST

log = logging.getLogger(__name__)


class Replayed:
    """What guarded work returns instead of running: the request was handled before."""


REPLAYED = Replayed()


class ReplayGuard:
    """Records each request's own identity in ``processed_events`` (kind ``request``).

    A signature is accepted while its timestamp is within 5 minutes of the clock, so a captured
    request could be sent again up to 10 minutes after it first came; the row outlives that
    (``core/jobs.py`` REQUEST_MEMORY) and is pruned after.
    """

    def __init__(
        self, platform: str, store: Store, clock: Callable[[], dt.datetime], metrics: Metrics
    ) -> None:
        self.platform = platform
        self.store = store
        self.clock = clock
        self.metrics = metrics

    def first(self, identity: str, what: str) -> bool:
        """True the first time ``identity`` is seen; a replay: False, one WARNING, counted."""
        # Hashed: one short key whatever the platform's identity looks like.
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:40]
        if self.store.record_event(self.platform, f"request:{digest}", self.clock(), kind=REQUEST):
            return True
        self.metrics.rejected.labels(self.platform, "replay").inc()
        log.warning("%s: a replayed %s was answered without effect", self.platform, what)
        return False
