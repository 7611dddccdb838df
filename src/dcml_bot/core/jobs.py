"""The bot's periodic work as plain methods, so the scheduler, tests and the CLI run the same."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from dcml_bot.core.bot import Bot
from dcml_bot.core.delivery import DeliveryReport
from dcml_bot.core.library import ReloadResult

log = logging.getLogger(__name__)

# Feishu retries an event for about 7 hours and Slack for minutes; a week is ample.
EVENT_MEMORY = dt.timedelta(days=7)
# With catch_up off, a slot is still served this long after it passed (a restart, a slow tick).
NO_CATCH_UP = dt.timedelta(hours=1)


class Jobs:
    """Weekly delivery, welcome retries, catalog refresh and event pruning."""

    def __init__(
        self,
        bot: Bot,
        *,
        on_report: Callable[[DeliveryReport], None] | None = None,
    ) -> None:
        self.bot = bot
        self.on_report = on_report
        self._running = threading.Lock()

    def deliver(self) -> DeliveryReport | None:
        """Serve every member whose slot has passed and whose week is not sent yet."""
        if not self._running.acquire(blocking=False):
            log.info("weekly delivery already running; this tick is skipped")
            return None
        try:
            now = self.bot.clock()
            late = None if self.bot.policy.catch_up else NO_CATCH_UP
            report = self.bot.delivery.deliver(now, late_limit=late)
            self.retry_welcomes(now)
        finally:
            self._running.release()
        done = {
            k: v for k, v in report.outcomes.items() if k not in {"not-due", "already", "missed"}
        }
        if done:
            log.info("weekly delivery: %s", ", ".join(f"{k} {v}" for k, v in sorted(done.items())))
        if self.on_report is not None:
            self.on_report(report)
        return report

    def retry_welcomes(self, now: dt.datetime) -> int:
        """Send again the welcomes that failed for a temporary reason; returns how many went."""
        sent = 0
        for row in self.bot.store.due_retries(now, kind="welcome"):
            member = self.bot.store.get_member_by_id(row.member_id)
            if member is not None and self.bot.onboarding.welcome(member, now) == "welcomed":
                sent += 1
        return sent

    def refresh_catalog(self) -> ReloadResult:
        """Fetch the catalog again; tell the admins once about each new problem."""
        result = self.bot.library.reload()
        if result.status == "rejected":
            self.bot.notices.catalog_rejected(result)
        return result

    def prune(self) -> int:
        """Forget processed inbound event ids older than the platforms' retry windows."""
        return self.bot.store.prune_events(self.bot.clock() - EVENT_MEMORY)
