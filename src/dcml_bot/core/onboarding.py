"""One welcome DM per member, ever: enrolment, the essentials, a first paper, how to use it."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from dcml_bot.catalog import Entry, Level
from dcml_bot.core.builders import guide_name, paper_blocks
from dcml_bot.core.delivery import Delivery, weekly_key, welcome_key
from dcml_bot.core.i18n import text
from dcml_bot.core.library import CatalogLibrary
from dcml_bot.core.once import RECOVERED, SENT, TAKEN, Letter, OnceOnly, Parcel, Retry
from dcml_bot.core.plan import member_scope, plan, reading_order
from dcml_bot.core.profile import Profiles
from dcml_bot.core.reply import Block, ContextBlock, ItemsBlock, ItemView, Reply, TextBlock
from dcml_bot.core.tracks import picker
from dcml_bot.store import Claim, MemberRecord, Store

log = logging.getLogger(__name__)

WELCOMED, ALREADY, DUPLICATE_EVENT, NO_PLATFORM, FAILED = (
    "welcomed",
    "already",
    "duplicate-event",
    "no-platform",
    "failed",
)
ESSENTIALS_SHOWN = 10
WELCOME_RETRY = Retry(first=dt.timedelta(minutes=5))


class Onboarding:
    """Turns join events into exactly one welcome DM per member."""

    def __init__(
        self,
        *,
        store: Store,
        library: CatalogLibrary,
        once: OnceOnly,
        profiles: Profiles,
        delivery: Delivery,
    ) -> None:
        self.store = store
        self.library = library
        self.once = once
        self.profiles = profiles
        self.delivery = delivery

    def joined(
        self,
        platform: str,
        user_id: str,
        now: dt.datetime,
        *,
        display_name: str | None = None,
        timezone: str | None = None,
        event_id: str | None = None,
        tracks: Sequence[str] = (),
    ) -> str:
        """Handle a join event; returns the outcome (``welcomed``, ``already`` …).

        ``tracks``: the directions of the channel or group joined; the member reads them from now
        on (added to any they chose), and is not asked to pick one.
        """
        if event_id is not None and not self.store.record_event(platform, event_id, now):
            return DUPLICATE_EVENT
        member = self.store.upsert_member(
            platform, user_id, display_name=display_name, timezone=timezone, now=now
        )
        known = [t for t in tracks if t in self.library.catalog.track_names]
        if known:
            # A track whose guide is not served now (refused, or gone) is not given.
            member = self.store.set_tracks(member.id, [*(member.tracks or ()), *known])
        return self.welcome(member, now)

    def welcome(self, member: MemberRecord, now: dt.datetime) -> str:
        """Send the welcome DM unless this member ever had one (guarded by the outbox key)."""
        if member.onboarded_at is not None:
            return ALREADY
        key = welcome_key(member)

        def prepare(claim: Claim) -> Parcel:
            enrolled = self.store.set_enrolled(member.id, True, now)
            week = self.delivery.week_for(enrolled, now)
            return Parcel(
                reply=lambda: self.reply(enrolled, week),
                confirm=lambda sent: self._confirm(enrolled, key, sent, week, now),
            )

        letter = Letter(key=key, kind="welcome", member=member)
        outcome = self.once.send(letter, now, prepare, retry=WELCOME_RETRY)
        return {SENT: WELCOMED, RECOVERED: WELCOMED, TAKEN: ALREADY}.get(outcome, outcome)

    def _confirm(
        self, member: MemberRecord, key: str, message_id: str, week: str, now: dt.datetime
    ) -> None:
        # The welcome carries this week's paper, so the weekly run does not send a second one.
        # Its key is claimed before the welcome is marked sent: a weekly run that sees the
        # welcome still pending skips the member, and one that sees it sent finds the week taken.
        first = self._first_paper(member, week)
        weekly = weekly_key(member, week)
        claim = None
        if first is not None:
            claim = self.store.claim(
                weekly,
                member_id=member.id,
                kind="weekly",
                week=week,
                item_id=first.id,
                title=first.title,
                worker=self.once.worker,
                now=now,
            )
        self.once.mark_sent(key, message_id, now)
        self.store.mark_onboarded(member.id, now)
        if first is not None and claim is not None and claim.item_id == first.id:
            self.delivery.confirm(member, weekly, first, week, message_id, now)

    def _first_paper(self, member: MemberRecord, week: str) -> Entry | None:
        progress = self.store.progress_for(member.id)
        catalog = self.library.catalog
        return next(iter(plan(catalog, progress, week, member_scope(member, catalog))), None)

    def reply(self, member: MemberRecord, week: str) -> Reply:
        """The welcome message; with directions, it asks a newcomer to pick theirs."""
        lang = self.profiles.language(member)
        catalog = self.library.catalog
        scope = member_scope(member, catalog)
        essentials = [
            e for e in reading_order(catalog, scope) if e.level_in(scope) is Level.ESSENTIAL
        ]
        day, at = self.delivery.slot_label(lang)
        blocks: list[Block] = [
            TextBlock(
                text=text(
                    lang,
                    "welcome.body",
                    guide=guide_name(catalog),
                    day=day,
                    time=at,
                    tz=self.profiles.timezone(member),
                )
            )
        ]
        if essentials:
            shown = tuple(ItemView.of(e) for e in essentials[:ESSENTIALS_SHOWN])
            blocks.append(
                ItemsBlock(
                    title=text(lang, "welcome.essentials", count=len(essentials)), items=shown
                )
            )
            if len(essentials) > ESSENTIALS_SHOWN:
                more = text(lang, "more", count=len(essentials) - ESSENTIALS_SHOWN)
                blocks.append(ContextBlock(lines=(more,)))
        names = ", ".join(t.title for t in catalog.tracks if t.name in (member.tracks or ()))
        if scope is not None and names:
            blocks.append(TextBlock(text=text(lang, "welcome.track", names=names)))
        elif scope is not None:
            blocks += [TextBlock(text=text(lang, "welcome.pick")), picker(lang, catalog)]
        first = self._first_paper(member, week)
        if first is not None:
            blocks.append(TextBlock(text=text(lang, "welcome.first")))
            blocks += paper_blocks(lang, first, week)
        blocks.append(ContextBlock(lines=(text(lang, "welcome.usage"),)))
        name = member.display_name or member.user_id
        return Reply(
            header=text(lang, "welcome.header", name=name), blocks=tuple(blocks), lang=lang
        )
