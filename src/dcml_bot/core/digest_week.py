"""One week of the lab as its digest tells it: newcomers, papers marked done, who finished a level
or a track, and the paper of the week."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dcml_bot.catalog import Catalog, Entry, Level
from dcml_bot.core.builders import guide_name
from dcml_bot.core.plan import (
    READ,
    SKIPPED,
    Scope,
    in_scope,
    member_scope,
    next_paper,
    reading_order,
    week_start,
)
from dcml_bot.store import MemberRecord, ProgressRecord, Store

LEVELS = (Level.ESSENTIAL, Level.OPTIONAL, Level.ADVANCED)
POPULAR = 3  # the most read papers the digest names


def shares(member: MemberRecord, default: bool) -> bool:
    """Whether a member may be named as a reader: their own choice, else the lab's default."""
    return default if member.share_progress is None else member.share_progress


@dataclass(frozen=True)
class Popular:
    """A paper marked done this week, and by how many members."""

    item_id: str
    title: str
    entry: Entry | None  # None: no longer in the guide
    readers: int


@dataclass(frozen=True)
class Finish:
    """A member who this week finished levels and tracks (titles, in reading order)."""

    member: MemberRecord
    levels: tuple[Level, ...]
    tracks: tuple[str, ...]


@dataclass(frozen=True)
class PaperOfTheWeek:
    """The paper the digest's thread discusses: an admin's pick, or the one next in most plans."""

    entry: Entry
    picked: bool
    planned: int  # members with it next in their plan this week


@dataclass(frozen=True)
class Week:
    """What a digest says about one ISO week of one platform's members."""

    week: str
    newcomers: tuple[MemberRecord, ...]  # those who may be named
    unnamed_newcomers: int
    done: int  # papers marked done this week (a paper read by two counts twice)
    popular: tuple[Popular, ...]
    finishes: tuple[Finish, ...]  # only members who may be named
    paper: PaperOfTheWeek | None

    @property
    def empty(self) -> bool:
        """Nothing happened that a digest would tell (a paper of the week alone is not news,
        unless an admin picked it)."""
        picked = self.paper is not None and self.paper.picked
        return not (
            self.newcomers or self.unnamed_newcomers or self.done or self.finishes or picked
        )


def compose(
    store: Store,
    catalog: Catalog,
    *,
    platform: str,
    week: str,
    timezone: str,
    share_default: bool,
    pick: str | None = None,
) -> Week:
    """The week of ``platform``'s members (``week`` in the lab's ``timezone``)."""
    start = week_start(week, timezone)
    end = start + dt.timedelta(days=7)
    welcomed = store.onboarded_between(platform, start, end)
    named = tuple(m for m in welcomed if shares(m, share_default))
    reads = store.reads_between(platform, start, end)
    members = {m.id: m for m in store.list_members(platform=platform)}
    readers = sorted({r.member_id for r in reads})
    enrolled = [m.id for m in members.values() if m.enrolled]
    progress = store.progress_for_members([*readers, *enrolled])
    finishes = []
    for member_id in readers:
        member = members.get(member_id)
        if member is None or not shares(member, share_default):
            continue
        finish = finished(catalog, member, progress[member_id], start)
        if finish is not None:
            finishes.append(finish)
    plans = {mid: progress[mid] for mid in enrolled}
    return Week(
        week=week,
        newcomers=named,
        unnamed_newcomers=len(welcomed) - len(named),
        done=len(reads),
        popular=most_read(catalog, reads),
        finishes=tuple(finishes),
        paper=paper_of_the_week(catalog, [members[mid] for mid in enrolled], plans, week, pick),
    )


def most_read(catalog: Catalog, reads: Iterable[ProgressRecord]) -> tuple[Popular, ...]:
    """The papers marked done most often (ties: the earliest marked first)."""
    counts: Counter[str] = Counter()
    titles: dict[str, str] = {}
    for record in reads:
        counts[record.item_id] += 1
        titles.setdefault(record.item_id, record.title)
    return tuple(
        Popular(item_id, titles[item_id], catalog.get(item_id), count)
        for item_id, count in counts.most_common(POPULAR)
    )


def _complete(
    entries: list[Entry], progress: Mapping[str, ProgressRecord], start: dt.datetime
) -> bool:
    """Every entry answered (done or skipped), at least one done, the last answer this week."""
    records = [progress.get(entry.id) for entry in entries]
    answered = [r for r in records if r is not None and r.state in (READ, SKIPPED)]
    if not entries or len(answered) < len(entries):
        return False
    return any(r.state == READ for r in answered) and max(r.updated_at for r in answered) >= start


def finished(
    catalog: Catalog,
    member: MemberRecord,
    progress: Mapping[str, ProgressRecord],
    start: dt.datetime,
) -> Finish | None:
    """The levels and tracks a member completed since ``start`` (None: none)."""
    scope: Scope = member_scope(member, catalog)
    order = reading_order(catalog, scope)
    levels = tuple(
        level
        for level in LEVELS
        if _complete([e for e in order if e.level_in(scope) is level], progress, start)
    )
    if len(catalog.tracks) > 1:
        groups = [
            (track.title, [e for e in order if in_scope(e, {track.name})])
            for track in catalog.tracks
            if scope is None or track.name in scope
        ]
    else:
        groups = [(guide_name(catalog), list(order))]
    tracks = tuple(title for title, entries in groups if _complete(entries, progress, start))
    return Finish(member, levels, tracks) if levels or tracks else None


def paper_of_the_week(
    catalog: Catalog,
    members: list[MemberRecord],
    progress: Mapping[int, Mapping[str, ProgressRecord]],
    week: str,
    pick: str | None,
) -> PaperOfTheWeek | None:
    """The admin's pick if it is still listed, else the paper next in most members' plans
    (ties: the one first in the guide)."""
    planned: Counter[str] = Counter()
    for member in members:
        upcoming = next_paper(
            catalog, progress.get(member.id, {}), week, member_scope(member, catalog)
        )
        if upcoming is not None:
            planned[upcoming.id] += 1
    picked = catalog.get(pick) if pick else None
    if picked is not None:
        return PaperOfTheWeek(picked, True, planned[picked.id])
    if not planned:
        return None
    position = {entry.id: index for index, entry in enumerate(catalog.entries)}
    best = min(planned, key=lambda item: (-planned[item], position.get(item, len(position))))
    entry = catalog.get(best)
    return None if entry is None else PaperOfTheWeek(entry, False, planned[best])
