"""The weekly digest in the lab's channel: posted once a week through the outbox, a thread under it
for the paper of the week, members' notes posted in that thread, and the admins' pick."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from dcml_bot.catalog import Entry
from dcml_bot.core.delivery import WEEKDAY_INDEX
from dcml_bot.core.digest_reply import digest_reply, note_reply, thread_reply
from dcml_bot.core.digest_week import Week, compose, shares
from dcml_bot.core.library import CatalogLibrary
from dcml_bot.core.once import (
    DROPPED,
    FAILED,
    RECOVERED,
    SENT,
    TAKEN,
    Letter,
    OnceOnly,
    Parcel,
    Place,
    Retry,
)
from dcml_bot.core.plan import slot_in_week, week_of
from dcml_bot.core.profile import Profiles
from dcml_bot.core.reply import Reply
from dcml_bot.store import Claim, MemberRecord, NoteRecord, OutboxRecord, Store

log = logging.getLogger(__name__)

DIGEST_RETRY = Retry(first=dt.timedelta(minutes=5), factor=2, cap=dt.timedelta(hours=2))
OFF, POSTED, ALREADY, EMPTY, BUSY, WOULD_POST, NO_THREAD = (
    "off",
    "posted",
    "already",
    "empty",
    "busy",
    "would-post",
    "no-thread",
)
EMPTY_WEEK = "an empty week"


@dataclass(frozen=True)
class DigestPlan:
    """Where and when the digest goes ([digest]; off without a platform and a channel)."""

    platform: str | None = None
    channel: str | None = None
    day: str = "fri"
    at: dt.time = dt.time(16, 0)
    mention: bool = False
    share_default: bool = True


@dataclass(frozen=True)
class DigestRun:
    """What one run did for one week: the post's outcome and its thread's, and what it said."""

    week: str
    outcome: str
    thread: str | None = None
    digest: Week | None = None
    reply: Reply | None = None


def digest_key(platform: str, channel: str, week: str) -> str:
    """The once-only key of a channel's digest for a week (its thread's: with ``:thread``)."""
    return f"digest:{platform}:{channel}:{week}"


def note_key(note_id: int) -> str:
    """The once-only key of a note posted in its paper's thread."""
    return f"note:{note_id}"


def _taken(row: OutboxRecord | None) -> str:
    """The outcome of a key another run holds or finished, from its row."""
    if row is None or row.status == "claimed":
        return BUSY
    if row.status == "sent":
        return ALREADY
    if row.status == "dead" and (row.last_error or "").startswith(f"{DROPPED}:"):
        return EMPTY
    return FAILED


class DigestService:
    """Posts the lab channel's weekly digest and the notes in its thread, each at most once."""

    def __init__(
        self,
        *,
        store: Store,
        library: CatalogLibrary,
        once: OnceOnly,
        profiles: Profiles,
        plan: DigestPlan,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.store = store
        self.library = library
        self.once = once
        self.profiles = profiles
        self.plan = plan
        self.clock = clock
        # Notes are posted off the member's request (a Slack modal waits 3 s), one at a time.
        self._posts = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest-notes")

    def post_note_later(self, note: NoteRecord, member: MemberRecord) -> Future[str]:
        """``post_note`` on the service's own thread; failures are logged (the tick retries)."""
        return self._posts.submit(self._post_logged, note, member)

    def _post_logged(self, note: NoteRecord, member: MemberRecord) -> str:
        try:
            return self.post_note(note, member)
        except Exception:
            log.exception("posting note %s in its digest thread failed", note.id)
            raise

    def close(self) -> None:
        """Stop posting notes; one not begun stays in /dcml notes, not in the thread."""
        self._posts.shutdown(wait=False, cancel_futures=True)

    @property
    def on(self) -> bool:
        """Whether the lab has a digest channel."""
        return bool(self.plan.platform and self.plan.channel)

    @property
    def place(self) -> Place:
        """The lab channel (only when ``on``)."""
        assert self.plan.platform is not None and self.plan.channel is not None
        return Place(self.plan.platform, self.plan.channel)

    @property
    def language(self) -> str:
        """The channel's language: its platform's default."""
        return self.profiles.platform_language(self.place.platform)

    def week(self, now: dt.datetime) -> str:
        """The ISO week of ``now`` in the lab's time zone."""
        return week_of(now, self.profiles.lab_timezone)

    def slot(self, week: str) -> dt.datetime:
        """When the week's digest is due (its day and time in the lab's time zone)."""
        weekday = WEEKDAY_INDEX[self.plan.day]
        return slot_in_week(week, self.profiles.lab_timezone, weekday, self.plan.at)

    def key(self, week: str) -> str:
        """The once-only key of the week's digest in the lab channel."""
        return digest_key(self.place.platform, self.place.channel, week)

    def compose(self, week: str) -> Week:
        """The week as the digest tells it, with the admins' pick if there is one."""
        place = self.place
        picked = self.store.get_digest(place.platform, place.channel, week)
        return compose(
            self.store,
            self.library.catalog,
            platform=place.platform,
            week=week,
            timezone=self.profiles.lab_timezone,
            share_default=self.plan.share_default,
            pick=picked.pick_item_id if picked else None,
        )

    def reply(self, week: Week) -> Reply:
        """The post of a composed week."""
        return digest_reply(self.language, week, mention=self.plan.mention)

    def run(
        self,
        now: dt.datetime,
        *,
        week: str | None = None,
        dry_run: bool = False,
        reopen: bool = False,
    ) -> DigestRun:
        """Post the week's digest (default: this week) and open its thread, each once; an empty
        week posts nothing. ``dry_run`` composes it without claiming anything; ``reopen`` (an
        admin's explicit run) tries again a post that failed for good, e.g. after the bot was
        invited to the channel."""
        if not self.on:
            return DigestRun(week or "", OFF)
        week = week or self.week(now)
        if dry_run:
            composed = self.compose(week)
            if composed.empty:
                return DigestRun(week, EMPTY, digest=composed)
            return DigestRun(week, WOULD_POST, digest=composed, reply=self.reply(composed))
        key = self.key(week)
        if reopen:
            self.store.reopen(key)
            self.store.reopen(f"{key}:thread")
        made: list[Week] = []

        def prepare(claim: Claim) -> Parcel | None:
            composed = self.compose(week)
            made.append(composed)
            if composed.empty:
                return None
            reply = self.reply(composed)
            return Parcel(
                reply=lambda: reply,
                confirm=lambda message_id: self._posted(key, week, composed, message_id, now),
            )

        letter = Letter(key=key, kind="digest", place=self.place, week=week)
        sent = self.once.send(letter, now, prepare, retry=DIGEST_RETRY, dropped=EMPTY_WEEK)
        outcome = {SENT: POSTED, RECOVERED: POSTED, DROPPED: EMPTY}.get(sent, sent)
        if sent == TAKEN:
            outcome = _taken(self.store.get_outbox(key))
        thread = self._thread(key, week, now) if outcome in {POSTED, ALREADY} else None
        log.info("digest %s: %s (thread: %s)", key, outcome, thread)
        return DigestRun(week, outcome, thread, made[-1] if made else None)

    def _posted(
        self, key: str, week: str, composed: Week, message_id: str, now: dt.datetime
    ) -> None:
        # The thread's root first: once the key reads "sent", notes can find their thread.
        paper = composed.paper
        self.store.record_digest_post(
            self.place.platform,
            self.place.channel,
            week,
            item_id=paper.entry.id if paper else None,
            title=paper.entry.title if paper else None,
            message_id=message_id,
            now=now,
        )
        self.once.mark_sent(key, message_id, now)

    def _thread(self, key: str, week: str, now: dt.datetime) -> str | None:
        """Open the discussion thread under the week's post (once); its outcome."""
        place = self.place
        posted = self.store.get_digest(place.platform, place.channel, week)
        if posted is None or posted.message_id is None or posted.item_id is None:
            return None
        title = posted.title or posted.item_id
        reply = thread_reply(self.language, title)
        letter = Letter(
            key=f"{key}:thread",
            kind="digest",
            place=Place(place.platform, place.channel, thread=posted.message_id),
            week=week,
            item_id=posted.item_id,
            title=title,
        )
        return self._send(letter, reply, now)

    def post_note(self, note: NoteRecord, member: MemberRecord) -> str:
        """Post a member's note in the thread of the latest digest whose paper of the week is the
        note's item, once (key ``note:<id>``); the author named only if they share. Returns
        ``posted``, ``already``, ``no-thread`` (no digest discussed the paper), ``off`` (no
        digest, or the author is on another platform), ``busy`` or ``failed``."""
        if not self.on or member.platform != self.place.platform:
            return OFF
        place = self.place
        posted = self.store.thread_for_item(place.platform, place.channel, note.item_id)
        if posted is None or posted.message_id is None:
            return NO_THREAD
        named = shares(member, self.plan.share_default)
        reply = note_reply(
            self.language,
            member,
            note.text,
            posted.title or note.item_id,
            named=named,
            mention=self.plan.mention,
        )
        letter = Letter(
            key=note_key(note.id),
            kind="note",
            place=Place(place.platform, place.channel, thread=posted.message_id),
            item_id=note.item_id,
        )
        return self._send(letter, reply, self.clock())

    def _send(self, letter: Letter, reply: Reply, now: dt.datetime) -> str:
        """Post a reply under a thread once (confirmed as sent); the outcome."""

        def prepare(claim: Claim) -> Parcel:
            return Parcel(
                reply=lambda: reply,
                confirm=lambda message_id: self.once.mark_sent(letter.key, message_id, now),
            )

        sent = self.once.send(letter, now, prepare, retry=DIGEST_RETRY)
        if sent == TAKEN:
            return _taken(self.store.get_outbox(letter.key))
        return {SENT: POSTED, RECOVERED: POSTED}.get(sent, sent)

    def retry(self, now: dt.datetime) -> int:
        """Try again the digests and notes of this channel that failed for a temporary reason (or
        whose sender died); returns how many were tried."""
        if not self.on:
            return 0
        channel = self.place.channel
        rows = [
            row
            for kind in ("digest", "note")
            for row in self.store.due_retries(now, kind=kind)
            if row.channel == channel
        ]
        for week in dict.fromkeys(r.week for r in rows if r.kind == "digest" and r.week):
            self.run(now, week=week)
        for row in (r for r in rows if r.kind == "note"):
            note = self.store.get_note(int(row.key.removeprefix("note:")), share_default=False)
            member = self.store.get_member_by_id(note.member_id) if note else None
            if note is None or member is None:
                self._drop(row, now)  # deleted meanwhile: nothing to post any more
            else:
                self.post_note(note, member)
        return len(rows)

    def _drop(self, row: OutboxRecord, now: dt.datetime) -> None:
        letter = Letter(key=row.key, kind=row.kind, place=self.place, item_id=row.item_id)
        self.once.send(letter, now, lambda claim: None, dropped="note deleted")

    def pick(self, entry: Entry, by: MemberRecord, now: dt.datetime) -> str:
        """Make ``entry`` the paper of the week (next week's once this week's is posted); the
        week it is for."""
        week = self.week(now)
        row = self.store.get_outbox(self.key(week))
        if row is not None and row.status == "sent":
            week = self.week(now + dt.timedelta(days=7))
        place = self.place
        self.store.pick_digest_item(place.platform, place.channel, week, entry.id, by=by.id)
        return week

    def status(self, week: str) -> OutboxRecord | None:
        """The ledger row of the week's digest, if it was tried."""
        return self.store.get_outbox(self.key(week))
