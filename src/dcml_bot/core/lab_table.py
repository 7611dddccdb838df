"""Everyone's progress as rows (the admins' ``lab``, App Home, the local lab's chart) and as text
bars."""

from __future__ import annotations

from dataclasses import dataclass

from dcml_bot.core.commands.table import Services
from dcml_bot.core.plan import next_paper, summarise, week_of
from dcml_bot.store import MemberRecord

FULL, EMPTY = "▓", "░"
WIDTH = 10


def bar(done: int, total: int, width: int = WIDTH) -> str:
    """``▓▓▓░░░░░░░ 3/10``: a text bar, full only when everything is done."""
    filled = 0 if total <= 0 else min(width, done * width // total)
    return f"{FULL * filled}{EMPTY * (width - filled)} {done}/{total}"


@dataclass(frozen=True)
class LabRow:
    """One member's progress over their own tracks."""

    member: MemberRecord
    name: str
    read: int
    skipped: int
    total: int
    next_title: str | None
    per_level: dict[str, tuple[int, int]]  # level -> (read, total)

    @property
    def percent(self) -> int:
        """Read of total, in whole percent (0 with nothing to read)."""
        return 0 if self.total <= 0 else round(100 * self.read / self.total)


def lab_rows(services: Services) -> list[LabRow]:
    """Every member's progress, in the order they joined."""
    catalog = services.catalog
    members = services.store.list_members()
    everyone = services.store.progress_for_members(member.id for member in members)
    now = services.clock()
    rows = []
    for member in members:
        progress = everyone[member.id]
        scope = services.scope(member)
        summary = summarise(catalog, progress, scope)
        week = week_of(now, services.profiles.timezone(member))
        upcoming = next_paper(catalog, progress, week, scope)
        rows.append(
            LabRow(
                member=member,
                name=member.display_name or member.user_id,
                read=summary.read,
                skipped=summary.skipped,
                total=summary.total,
                next_title=upcoming.title if upcoming else None,
                per_level=summary.per_level,
            )
        )
    return rows
