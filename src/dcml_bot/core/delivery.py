"""The weekly paper: each enrolled member gets the next item of their plan exactly once a week."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dcml_bot.catalog import Entry
from dcml_bot.core.builders import weekly_reply
from dcml_bot.core.i18n import weekday as weekday_name
from dcml_bot.core.library import CatalogLibrary
from dcml_bot.core.once import DROPPED, SENT, TAKEN, Letter, OnceOnly, Parcel, Retry
from dcml_bot.core.outbound import Stopping
from dcml_bot.core.plan import SENT as UNANSWERED
from dcml_bot.core.plan import member_scope, plan, slot_in_week, summarise, week_of
from dcml_bot.core.profile import Profiles
from dcml_bot.core.readers import ReadersOnce
from dcml_bot.core.reply import Reply
from dcml_bot.store import Claim, MemberRecord, OutboxRecord, ProgressRecord, Store

log = logging.getLogger(__name__)

WEEKDAY_INDEX = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
WEEKLY_RETRY = Retry(first=dt.timedelta(minutes=2), factor=2, cap=dt.timedelta(hours=6))
# Members per batch: the outbox rows and progress of a batch are read up front.
BATCH = 1000
# After a claim finds the preloaded row stale, read rows fresh for this many members.
CONTENDED_SPAN = 100

MISSED = "missed"
# Left for the next run: the bot began shutting down before this member's turn.
STOPPED = "stopped"
# The member's welcome is still to go out (it was cut short or failed); it carries the week's
# paper, so the weekly run sends nothing now.
WELCOME_PENDING = "welcome-pending"
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


def _finished(row: OutboxRecord | None) -> bool:
    """Whether an outbox row is final: sent, or dead (never retried)."""
    return row is not None and row.status in {"sent", "dead"}


def welcome_key(member: MemberRecord) -> str:
    """The once-only key of a member's welcome DM."""
    return f"welcome:{member.platform}:{member.user_id}"


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

    def summary(self, empty: str = "no members") -> str:
        """The outcomes as ``already: 3, sent: 2`` (``empty`` when there were none)."""
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.outcomes.items())) or empty


class Delivery:
    """Claims, sends and confirms weekly papers through the outbox ledger."""

    def __init__(
        self,
        *,
        store: Store,
        library: CatalogLibrary,
        once: OnceOnly,
        profiles: Profiles,
        day: str,
        at: dt.time,
        share_default: bool = True,
    ) -> None:
        self.store = store
        # Whether a member who never said is named to others as a reader ([digest]).
        self.share_default = share_default
        self.library = library
        self.once = once
        self.messengers = once.messengers
        self.profiles = profiles
        self.day = day
        self.weekday = WEEKDAY_INDEX[day]
        self.at = at
        # Set at shutdown: a fan-out stops between members (the rest go out at the next start).
        self.stopping = threading.Event()

    def slot_label(self, lang: str) -> tuple[str, str]:
        """The weekly slot as (localised weekday, ``HH:MM``)."""
        return weekday_name(lang, self.day), self.at.strftime("%H:%M")

    def week_for(self, member: MemberRecord, now: dt.datetime) -> str:
        """The member's current ISO week, in their own time zone."""
        return week_of(now, self.profiles.timezone(member))

    def slot(self, member: MemberRecord, week: str) -> dt.datetime:
        """The member's weekly slot in that week (in their time zone)."""
        return slot_in_week(week, self.profiles.timezone(member), self.weekday, self.at)

    def is_due(self, member: MemberRecord, week: str, now: dt.datetime) -> bool:
        """Whether the member's slot in that week has come (in their time zone)."""
        return now >= self.slot(member, week)

    def deliver(
        self,
        now: dt.datetime,
        *,
        week: str | None = None,
        force: bool = False,
        dry_run: bool = False,
        late_limit: dt.timedelta | None = None,
        on_member: Callable[[MemberRecord, str], None] | None = None,
    ) -> DeliveryReport:
        """Deliver to every enrolled member: ``week`` for all, else each member's current week.

        Without ``force`` a member is served only once their slot has passed (the scheduler's
        mode), and with ``late_limit`` not when it passed longer ago than that (no catch-up);
        ``force`` (an admin's ``remind``) serves the week now.
        """
        report = DeliveryReport(week=week)
        members = self.store.list_members(enrolled=True)
        readers = ReadersOnce(self.store, share_default=self.share_default)
        contended_until = -1
        # In batches, so memory and the age of what was preloaded stay bounded however many
        # members there are.
        for start in range(0, len(members), BATCH):
            contended_until = self._deliver_batch(
                members[start : start + BATCH],
                start,
                now,
                report,
                week=week,
                force=force,
                dry_run=dry_run,
                late_limit=late_limit,
                on_member=on_member,
                contended_until=contended_until,
                readers=readers,
            )
        return report

    def _deliver_batch(
        self,
        members: list[MemberRecord],
        offset: int,
        now: dt.datetime,
        report: DeliveryReport,
        *,
        week: str | None,
        force: bool,
        dry_run: bool,
        late_limit: dt.timedelta | None,
        on_member: Callable[[MemberRecord, str], None] | None,
        contended_until: int,
        readers: ReadersOnce,
    ) -> int:
        """Deliver to a batch of members with its outbox rows and progress read up front."""
        weeks = {m.id: week or self.week_for(m, now) for m in members}
        keys = {
            m.id: weekly_key(m, weeks[m.id])
            for m in members
            if force or self.is_due(m, weeks[m.id], now)
        }
        outbox = self.store.outbox_for_keys(keys.values())
        welcomes = self.store.outbox_for_keys(welcome_key(m) for m in members if m.id in keys)
        waiting = {
            m.id
            for m in members
            if m.id in keys
            and (row := welcomes.get(welcome_key(m))) is not None
            and row.status in {"claimed", "failed"}
            and keys[m.id] not in outbox
        }
        for mid in waiting:
            del keys[mid]
        missed: set[int] = set()
        if late_limit is not None and not force:
            # A slot missed by more than the limit is skipped, unless that week's paper is
            # already under way (a retry of a failed send still goes out).
            for m in members:
                key = keys.get(m.id)
                late = now - self.slot(m, weeks[m.id]) > late_limit
                if key is not None and late and key not in outbox:
                    del keys[m.id]
                    missed.add(m.id)
        # Sent and dead rows are final, so skipping them on a possibly stale read is safe; any
        # other row may have changed since, and the claim is what decides.
        open_ids = [
            m.id
            for m in members
            if m.id in keys
            and m.platform in self.messengers
            and not _finished(outbox.get(keys[m.id]))
        ]
        progress = self.store.progress_for_members(open_ids) if open_ids else {}
        for index, member in enumerate(members, start=offset):
            key = keys.get(member.id)
            if self.stopping.is_set():
                outcome = STOPPED
            elif member.id in waiting:
                outcome = WELCOME_PENDING
            elif key is None:
                outcome = MISSED if member.id in missed else NOT_DUE
            else:
                preloaded = existing = outbox.get(key)
                if index <= contended_until and not _finished(existing):
                    # Another run is serving these members too: a fresh read lets this run
                    # skip what that one already sent instead of queueing for its claim.
                    existing = self.store.get_outbox(key)
                try:
                    outcome = self._deliver(
                        member,
                        weeks[member.id],
                        now,
                        existing=existing,
                        progress=progress.get(member.id, {}),
                        dry_run=dry_run,
                        report=report,
                        readers=readers,
                    )
                except Stopping:
                    outcome = STOPPED
                if outcome in {ALREADY, BUSY} and not _finished(preloaded):
                    contended_until = index + CONTENDED_SPAN
            report.outcomes[outcome] += 1
            if on_member is not None:
                on_member(member, outcome)
        return contended_until

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
        if member.platform not in self.messengers:
            return NO_PLATFORM
        existing = self.store.get_outbox(weekly_key(member, week))
        if _finished(existing):
            return ALREADY
        return self._deliver(
            member,
            week,
            now,
            existing=existing,
            progress=self.store.progress_for(member.id),
            dry_run=dry_run,
            report=report,
        )

    def _deliver(
        self,
        member: MemberRecord,
        week: str,
        now: dt.datetime,
        *,
        existing: OutboxRecord | None,
        progress: Mapping[str, ProgressRecord],
        dry_run: bool,
        report: DeliveryReport | None,
        readers: ReadersOnce | None = None,
    ) -> str:
        """Deliver one member's paper given their outbox row and progress as read earlier."""
        if member.platform not in self.messengers:
            return NO_PLATFORM
        if _finished(existing):
            return ALREADY
        catalog = self.library.catalog
        scope = member_scope(member, catalog)
        candidates = plan(catalog, progress, week, scope)
        if existing is None and not candidates:
            return NOTHING
        if dry_run:
            entry = catalog.get(existing.item_id or "") if existing else None
            if report is not None:
                report.planned.append((member, entry or candidates[0]))
            return WOULD_SEND
        first = candidates[0] if candidates else None
        key = weekly_key(member, week)
        named = readers or ReadersOnce(self.store, share_default=self.share_default)

        def prepare(claim: Claim) -> Parcel | None:
            # A retried or recovered claim keeps the paper first chosen for this week.
            entry = catalog.get(claim.item_id or "") or first
            if entry is None:
                return None

            def reply() -> Reply:
                lang = self.profiles.language(member)
                summary = summarise(catalog, progress, scope)
                ask = named.line(member, entry.id, lang)
                return weekly_reply(lang, entry, week, summary.read, summary.total, ask=ask)

            return Parcel(
                reply=reply, confirm=lambda sent: self.confirm(member, key, entry, week, sent, now)
            )

        letter = Letter(
            key=key,
            kind="weekly",
            member=member,
            week=week,
            item_id=first.id if first else None,
            title=first.title if first else None,
        )
        outcome = self.once.send(
            letter, now, prepare, retry=WEEKLY_RETRY, dropped="paper left the guide"
        )
        if outcome == TAKEN:
            return BUSY if existing is not None and existing.status == "claimed" else ALREADY
        return {DROPPED: NOTHING, SENT: SENT_NOW}.get(outcome, outcome)

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
            worker=self.once.worker,
            platform_message_id=message_id,
            member_id=member.id,
            item_id=entry.id,
            title=entry.title,
            state=UNANSWERED,
            week=week,
            now=now,
        )
