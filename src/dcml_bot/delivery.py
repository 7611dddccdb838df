"""The weekly paper: each enrolled member gets the next item of their plan exactly once a week."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dcml_bot.catalog import Entry
from dcml_bot.i18n import weekday as weekday_name
from dcml_bot.library import CatalogLibrary
from dcml_bot.outbound import Messenger, SendError
from dcml_bot.plan import SENT, plan, slot_in_week, summarise, week_of
from dcml_bot.profile import Profiles
from dcml_bot.replies import weekly_reply
from dcml_bot.store import MemberRecord, Store

log = logging.getLogger(__name__)

WEEKDAY_INDEX = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
RETRY_BASE = dt.timedelta(minutes=2)
RETRY_MAX = dt.timedelta(hours=6)

SENT_NOW, ALREADY, NOTHING, FAILED, RECOVERED, BUSY, NOT_DUE, WOULD_SEND, NO_PLATFORM = (
    "sent",
    "already",
    "nothing",
    "failed",
    "recovered",
    "busy",
    "not-due",
    "would-send",
    "no-platform",
)


def weekly_key(member: MemberRecord, week: str) -> str:
    """The once-only key of a member's weekly paper (also the platform's idempotency key)."""
    return f"weekly:{member.platform}:{member.user_id}:{week}"


@dataclass
class DeliveryReport:
    """Counts per outcome, and (for dry runs) what would be sent to whom."""

    week: str | None
    outcomes: Counter[str] = field(default_factory=Counter)
    planned: list[tuple[MemberRecord, Entry]] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        """How many members had this outcome."""
        return self.outcomes.get(outcome, 0)


class Delivery:
    """Claims, sends and confirms weekly papers through the outbox ledger."""

    def __init__(
        self,
        *,
        store: Store,
        library: CatalogLibrary,
        messengers: Mapping[str, Messenger],
        profiles: Profiles,
        day: str,
        at: dt.time,
        worker: str,
        lease: dt.timedelta = dt.timedelta(minutes=5),
    ) -> None:
        self.store = store
        self.library = library
        self.messengers = messengers
        self.profiles = profiles
        self.day = day
        self.weekday = WEEKDAY_INDEX[day]
        self.at = at
        self.worker = worker
        self.lease = lease

    def slot_label(self, lang: str) -> tuple[str, str]:
        """The weekly slot as (localised weekday, ``HH:MM``)."""
        return weekday_name(lang, self.day), self.at.strftime("%H:%M")

    def week_for(self, member: MemberRecord, now: dt.datetime) -> str:
        """The member's current ISO week, in their own time zone."""
        return week_of(now, self.profiles.timezone(member))

    def is_due(self, member: MemberRecord, week: str, now: dt.datetime) -> bool:
        """Whether the member's slot in that week has come (in their time zone)."""
        slot = slot_in_week(week, self.profiles.timezone(member), self.weekday, self.at)
        return now >= slot

    def deliver(
        self,
        now: dt.datetime,
        *,
        week: str | None = None,
        force: bool = False,
        dry_run: bool = False,
        on_member: Callable[[MemberRecord, str], None] | None = None,
    ) -> DeliveryReport:
        """Deliver to every enrolled member: ``week`` for all, else each member's current week.

        Without ``force`` a member is served only once their slot has passed (the scheduler's
        mode); ``force`` (an admin's ``remind``) serves the week now.
        """
        report = DeliveryReport(week=week)
        for member in self.store.list_members(enrolled=True):
            member_week = week or self.week_for(member, now)
            if not force and not self.is_due(member, member_week, now):
                outcome = NOT_DUE
            else:
                outcome = self.deliver_one(member, member_week, now, dry_run=dry_run, report=report)
            report.outcomes[outcome] += 1
            if on_member is not None:
                on_member(member, outcome)
        return report

    def deliver_one(
        self,
        member: MemberRecord,
        week: str,
        now: dt.datetime,
        *,
        dry_run: bool = False,
        report: DeliveryReport | None = None,
    ) -> str:
        """Deliver one member's paper for one week; returns the outcome."""
        messenger = self.messengers.get(member.platform)
        if messenger is None:
            return NO_PLATFORM
        key = weekly_key(member, week)
        existing = self.store.get_outbox(key)
        if existing is not None and existing.status in {"sent", "dead"}:
            return ALREADY
        catalog = self.library.catalog
        progress = self.store.progress_for(member.id)
        candidates = plan(catalog, progress, week)
        if existing is None and not candidates:
            return NOTHING
        if dry_run:
            entry = catalog.get(existing.item_id or "") if existing else None
            if report is not None:
                report.planned.append((member, entry or candidates[0]))
            return WOULD_SEND
        first = candidates[0] if candidates else None
        claim = self.store.claim(
            key,
            member_id=member.id,
            kind="weekly",
            week=week,
            item_id=first.id if first else None,
            title=first.title if first else None,
            worker=self.worker,
            now=now,
            lease=self.lease,
        )
        if claim is None:
            return BUSY if existing is not None and existing.status == "claimed" else ALREADY
        # A retried or recovered claim keeps the paper first chosen for this week.
        entry = catalog.get(claim.item_id or "") or first
        if entry is None:
            self.store.mark_failed(
                key,
                worker=self.worker,
                error="paper left the guide",
                retry_at=None,
                dead=True,
                now=now,
            )
            return NOTHING
        if claim.recovered:
            found = messenger.find_sent(member.user_id, key)
            if found is not None:
                self.confirm(member, key, entry, week, found, now)
                log.info("reconciled %s: already sent as %s", key, found)
                return RECOVERED
        lang = self.profiles.language(member)
        summary = summarise(catalog, progress)
        reply = weekly_reply(lang, entry, week, summary.read, summary.total)
        try:
            message_id = messenger.send_dm(member.user_id, reply, key=key)
        except SendError as exc:
            attempts = claim.attempts
            delay = min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_MAX)
            if exc.retry_after:
                delay = max(delay, dt.timedelta(seconds=exc.retry_after))
            self.store.mark_failed(
                key,
                worker=self.worker,
                error=str(exc),
                retry_at=None if exc.permanent else now + delay,
                dead=exc.permanent,
                now=now,
            )
            log.warning(
                "weekly paper for %s failed (%s): %s",
                key,
                "permanent" if exc.permanent else "will retry",
                exc,
            )
            return FAILED
        self.confirm(member, key, entry, week, message_id, now)
        return SENT_NOW

    def confirm(
        self,
        member: MemberRecord,
        key: str,
        entry: Entry,
        week: str,
        message_id: str,
        now: dt.datetime,
    ) -> None:
        """Record a weekly paper as sent and as the member's unanswered paper, in one go."""
        self.store.confirm_sent(
            key,
            worker=self.worker,
            platform_message_id=message_id,
            member_id=member.id,
            item_id=entry.id,
            title=entry.title,
            state=SENT,
            week=week,
            now=now,
        )
