"""The bot's periodic work as plain methods, so the scheduler, tests and the CLI run the same."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dcml_bot.core.bot import Bot
from dcml_bot.core.delivery import (
    ALREADY,
    BUSY,
    FAILED,
    NO_PLATFORM,
    NOTHING,
    WELCOME_PENDING,
    DeliveryReport,
    weekly_key,
)
from dcml_bot.core.digest import DigestRun
from dcml_bot.core.library import REJECTED, RUNNING, ReloadResult
from dcml_bot.core.outbound import Stopping
from dcml_bot.store import MemberRecord, OutboxRecord
from dcml_bot.store.events import REQUEST

log = logging.getLogger(__name__)

# Feishu retries an event for about 7 hours and Slack for minutes; a week is ample.
EVENT_MEMORY = dt.timedelta(days=7)
# A signed request is accepted within 5 minutes of its timestamp either way, so it can come back
# up to 10 minutes after it first did; its identity is kept that long, with a margin.
REQUEST_MEMORY = dt.timedelta(minutes=15)
# With catch_up off, a slot is still served this long after it passed (a restart, a slow tick).
NO_CATCH_UP = dt.timedelta(hours=1)
# How long ``remind`` waits for papers another live run is sending before it reports them.
PATIENCE = 30.0
POLL = 0.2


@dataclass(frozen=True)
class Unsent:
    """A member whose paper for the week has not gone out, with the outbox row saying why."""

    member: MemberRecord
    week: str
    outcome: str
    row: OutboxRecord | None

    @property
    def final(self) -> bool:
        """Whether nothing more will be tried: a permanent failure (dead)."""
        return self.row is not None and self.row.status == "dead"


class Jobs:
    """Weekly delivery, welcome and channel post retries, the weekly review (digest and needs
    attention), catalog refresh and event pruning."""

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
            if not self.bot.delivery.stopping.is_set():
                self.retry_welcomes(now)
            if not self.bot.delivery.stopping.is_set():
                self.retry_posts(now)
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

    def remind(
        self,
        *,
        week: str | None = None,
        dry_run: bool = False,
        on_member: Callable[[MemberRecord, str], None] | None = None,
        patience: float | None = None,
    ) -> tuple[DeliveryReport, list[Unsent]]:
        """Deliver the week to every enrolled member now; return the report and who is left."""
        patience = PATIENCE if patience is None else patience
        # Papers other live runs hold are waited for (up to ``patience`` seconds), so two runs
        # side by side both end complete; a permanent failure of this run is listed as final.
        now = self.bot.clock()
        delivery = self.bot.delivery
        served: dict[int, tuple[MemberRecord, str, str]] = {}

        def seen(member: MemberRecord, outcome: str) -> None:
            if outcome not in {NOTHING, NO_PLATFORM, WELCOME_PENDING}:
                served[member.id] = (member, week or delivery.week_for(member, now), outcome)
            if on_member is not None:
                on_member(member, outcome)

        report = delivery.deliver(now, week=week, force=True, dry_run=dry_run, on_member=seen)
        if dry_run:
            return report, []
        keys = {mid: weekly_key(member, wk) for mid, (member, wk, _) in served.items()}
        rows = self.bot.store.outbox_for_keys(keys.values())

        def recount(mid: int, outcome: str) -> None:
            member, wk, before = served[mid]
            report.outcomes[before] -= 1
            report.outcomes[outcome] += 1
            served[mid] = (member, wk, outcome)

        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            # "Already" can also mean another run claimed the paper after this one read it.
            held = [mid for mid, key in keys.items() if _status(rows.get(key)) == "claimed"]
            if not held:
                break
            time.sleep(POLL)
            for mid in held:
                member, wk, _ = served[mid]
                recount(mid, delivery.deliver_one(member, wk, self.bot.clock()))
            rows.update(self.bot.store.outbox_for_keys(keys[mid] for mid in held))
        unsent = []
        for mid, (member, wk, outcome) in served.items():
            status = _status(rows.get(keys[mid]))
            if outcome == BUSY and status in {"sent", "dead"}:
                recount(mid, ALREADY)  # the run that held it has finished it since
            # A member found dead by an earlier run is old news; by this one, it is reported.
            elif status not in {"sent", "dead"} or (status, outcome) == ("dead", FAILED):
                unsent.append(Unsent(member, wk, outcome, rows.get(keys[mid])))
        report.outcomes = +report.outcomes  # drop the outcomes no member has any more
        return report, unsent

    def stop(self) -> None:
        """Shutting down: a running fan-out stops between members; nothing new starts."""
        self.bot.delivery.stopping.set()

    def retry_welcomes(self, now: dt.datetime) -> int:
        """Send again the welcomes that failed for a temporary reason; returns how many went."""
        sent = 0
        for row in self.bot.store.due_retries(now, kind="welcome"):
            if self.bot.delivery.stopping.is_set():
                break
            if row.member_id is None:
                continue  # welcomes are DMs; channel posts are never of this kind
            member = self.bot.store.get_member_by_id(row.member_id)
            try:
                if member is not None and self.bot.onboarding.welcome(member, now) == "welcomed":
                    sent += 1
            except Stopping:
                break
        return sent

    def retry_posts(self, now: dt.datetime) -> int:
        """Post again the digests and notes that failed for a temporary reason."""
        try:
            return self.bot.digest.retry(now)
        except Stopping:
            return 0

    def review(self) -> DigestRun | None:
        """The weekly review at the digest's slot: the lab channel's digest (when there is a
        channel), then the admins' needs-attention DM; each at most once a week."""
        now = self.bot.clock()
        run = None
        try:
            if self.bot.digest.on:
                run = self.bot.digest.run(now)
                log.info("weekly digest %s: %s", run.week, run.outcome)
            told = self.bot.attention.notify(now)
        except Stopping:
            return run
        if told:
            log.info("needs attention: %d admin(s) told", told)
        return run

    def digest(
        self, *, week: str | None = None, dry_run: bool = False, reopen: bool = False
    ) -> DigestRun:
        """Post a week's digest now (``dcml-bot digest``); see ``DigestService.run``."""
        return self.bot.digest.run(self.bot.clock(), week=week, dry_run=dry_run, reopen=reopen)

    def refresh_catalog(self) -> ReloadResult:
        """Fetch the catalog again (not when a reload is running); tell the admins once about
        each new problem."""
        result = self.bot.library.reload()
        if result.status == RUNNING:
            log.info("catalog refresh skipped: a reload is running since %s", result.started)
        elif result.status == REJECTED:
            self.bot.notices.catalog_rejected(result)
        return result

    def prune(self) -> int:
        """Forget inbound event ids older than the platforms' retry windows, and the identities
        of signed requests older than their replay window; returns how many."""
        now, store = self.bot.clock(), self.bot.store
        requests = store.prune_events(now - REQUEST_MEMORY, kind=REQUEST)
        return requests + store.prune_events(now - EVENT_MEMORY)


def _status(row: OutboxRecord | None) -> str | None:
    return None if row is None else row.status
