"""Replayed requests: a signed command or button press runs once, however often it is resent."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dcml_bot.core.metrics import Metrics
from dcml_bot.store import Store
from dcml_bot.store.events import REQUEST

log = logging.getLogger(__name__)

SLACK_SIGNATURE, SLACK_TIMESTAMP = "x-slack-signature", "x-slack-request-timestamp"


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


def slack_identity(headers: Mapping[str, Sequence[str]], body: Mapping[str, Any]) -> str | None:
    """A signed slash command's, button press's or modal submission's identity: its timestamp
    and signature.

    Only a request Bolt has verified gets here, so nobody without the signing secret can make
    another one; Slack's own retries concern events (deduplicated on their event id), which are
    not guarded here. None for anything else, and in Socket Mode (no signatures).
    """
    if "command" not in body and body.get("type") not in ("block_actions", "view_submission"):
        return None
    lowered = {name.lower(): values for name, values in headers.items()}
    signature = next(iter(lowered.get(SLACK_SIGNATURE) or ()), None)
    timestamp = next(iter(lowered.get(SLACK_TIMESTAMP) or ()), None)
    if not signature or not timestamp:
        return None
    return f"{timestamp}:{signature}"
