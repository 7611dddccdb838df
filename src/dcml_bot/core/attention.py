"""Needs attention: enrolled members who answered nothing for three weeks, and members no DM
reaches; shown to admins (``attention``, App Home, the local lab) and sent them once a week."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from dcml_bot.core.i18n import text
from dcml_bot.core.library import CatalogLibrary
from dcml_bot.core.notices import AdminNotices
from dcml_bot.core.plan import member_scope, next_paper, week_of
from dcml_bot.core.profile import Profiles
from dcml_bot.core.reply import Reply, TextBlock
from dcml_bot.store import MemberRecord, Store

QUIET_AFTER = dt.timedelta(weeks=3)
# One line each, within every platform's limits.
MAX_LINES = 40


@dataclass(frozen=True)
class Concern:
    """One member an admin should look at, and why."""

    member: MemberRecord
    reason: str  # "undeliverable" or "quiet"
    weeks: int = 0  # quiet: whole weeks without a done or skip
    answered: bool = True  # quiet: whether they ever answered one
    error: str | None = None  # undeliverable: the last failure

    def line(self, lang: str) -> str:
        """The concern as one line."""
        name = self.member.display_name or self.member.user_id
        if self.reason == "undeliverable":
            return text(lang, "attention.undeliverable", name=name, error=self.error or "?")
        key = "attention.quiet" if self.answered else "attention.quiet.never"
        return text(lang, key, name=name, weeks=self.weeks)


class Attention:
    """Finds the members who need an admin's attention and tells the admins weekly."""

    def __init__(
        self,
        *,
        store: Store,
        library: CatalogLibrary,
        profiles: Profiles,
        notices: AdminNotices,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.store = store
        self.library = library
        self.profiles = profiles
        self.notices = notices
        self.clock = clock

    def concerns(self, now: dt.datetime) -> list[Concern]:
        """Members no DM reaches, then enrolled members with something left to read who marked
        nothing done or skipped for three weeks or more (since they joined, if never)."""
        found = [
            Concern(member, "undeliverable", error=row.last_error)
            for member, row in self.store.undeliverable()
        ]
        seen = {concern.member.id for concern in found}
        enrolled = [m for m in self.store.list_members(enrolled=True) if m.id not in seen]
        answers = self.store.last_answers()
        progress = self.store.progress_for_members(m.id for m in enrolled)
        catalog = self.library.catalog
        for member in enrolled:
            last = answers.get(member.id)
            since = max(d for d in (last, member.joined_at, member.onboarded_at) if d is not None)
            if now - since < QUIET_AFTER:
                continue
            week = week_of(now, self.profiles.timezone(member))
            if (
                next_paper(catalog, progress[member.id], week, member_scope(member, catalog))
                is None
            ):
                continue  # finished: nothing is waiting for an answer
            weeks = (now - since) // dt.timedelta(weeks=1)
            found.append(Concern(member, "quiet", weeks=weeks, answered=last is not None))
        return found

    def reply(self, lang: str, concerns: list[Concern], *, week: str | None = None) -> Reply:
        """The concerns as one line each (``attention``, App Home, the weekly DM)."""
        if not concerns:
            return Reply(blocks=(TextBlock(text=text(lang, "attention.none")),))
        lines = [concern.line(lang) for concern in concerns[:MAX_LINES]]
        if len(concerns) > MAX_LINES:
            lines.append(text(lang, "more", count=len(concerns) - MAX_LINES))
        header = text(lang, "attention.header", count=len(concerns))
        if week is not None:
            header = f"{header} · {week}"
        return Reply(header=header, blocks=(TextBlock(text="\n".join(lines)),))

    def notify(self, now: dt.datetime) -> int:
        """DM each admin this week's list, at most once a week and only when it is not empty;
        returns how many DMs went out now."""
        concerns = self.concerns(now)
        if not concerns:
            return 0
        week = week_of(now, self.profiles.lab_timezone)
        return self.notices.notify(
            f"attention:{week}", lambda lang: self.reply(lang, concerns, week=week)
        )
