"""Who reads what next: a member's plan over the catalog, weeks, and progress summaries."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from itertools import chain, zip_longest
from zoneinfo import ZoneInfo

from dcml_bot.catalog import Catalog, Entry, Level
from dcml_bot.catalog.models import COMMON
from dcml_bot.store import MemberRecord, ProgressRecord

Scope = frozenset[str] | None  # the tracks a member reads; None: every track

READ, SKIPPED, SNOOZED, SENT = "read", "skipped", "snoozed", "sent"
_WEEK = re.compile(r"^(?P<year>\d{4})-W(?P<week>\d{2})$")


def week_of(moment: dt.datetime, timezone: str) -> str:
    """The ISO week (``2026-W48``) that an instant falls in, in a time zone."""
    year, week, _ = moment.astimezone(ZoneInfo(timezone)).isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(text: str) -> str:
    """Validate an ISO week string such as ``2026-W48``; raises ValueError saying the form."""
    match = _WEEK.match(text.strip())
    if not match:
        raise ValueError(f"not an ISO week: {text!r} (expected e.g. 2026-W48)")
    year, week = int(match["year"]), int(match["week"])
    try:
        dt.date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ValueError(f"{year} has no week {week}") from None
    return f"{year}-W{week:02d}"


def week_start(week: str, timezone: str) -> dt.datetime:
    """Monday 00:00 of an ISO week, in a time zone."""
    match = _WEEK.match(week)
    if not match:
        raise ValueError(f"not an ISO week: {week!r}")
    day = dt.date.fromisocalendar(int(match["year"]), int(match["week"]), 1)
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=ZoneInfo(timezone))


def slot_in_week(week: str, timezone: str, weekday: int, at: dt.time) -> dt.datetime:
    """The delivery slot (weekday 0 = Monday, local time) of an ISO week, in a time zone."""
    start = week_start(week, timezone)
    day = start.date() + dt.timedelta(days=weekday)
    return dt.datetime.combine(day, at, tzinfo=ZoneInfo(timezone))


def member_scope(member: MemberRecord, catalog: Catalog) -> Scope:
    """The tracks a member reads: the common track and the ones they chose (None: one guide)."""
    if len(catalog.tracks) <= 1:
        return None
    known = catalog.track_names
    return frozenset({COMMON, *(t for t in member.tracks or () if t in known)})


def in_scope(entry: Entry, scope: Collection[str] | None) -> bool:
    """Whether an entry belongs to one of the tracks in scope."""
    return scope is None or not set(entry.tracks).isdisjoint(scope)


def _rank(level: Level | None) -> int:
    return level.rank if level is not None else len(Level)


def reading_order(catalog: Catalog, scope: Scope = None) -> list[Entry]:
    """Essential, then optional, then advanced (then unclassified). Within a level: the common
    track in guide order, then the member's tracks taken in turn (one from each, in index order).
    """
    key = "plan.order" if scope is None else "plan.order:" + " ".join(sorted(scope))
    return catalog.memo(key, lambda: _order(catalog, scope))


def _order(catalog: Catalog, scope: Scope) -> list[Entry]:
    names = [t.name for t in catalog.tracks if scope is None or t.name in scope]
    if len(names) <= 1:
        entries = [e for e in catalog.entries if in_scope(e, scope)]
        return sorted(entries, key=lambda e: (_rank(e.level_in(scope)), e.position))
    queues: dict[tuple[int, str], list[Entry]] = {}
    for entry in catalog.entries:
        homes = [name for name in entry.tracks if name in names]
        if not homes:
            continue
        home = COMMON if COMMON in homes else min(homes, key=names.index)
        queues.setdefault((_rank(entry.level_in(scope)), home), []).append(entry)
    order: list[Entry] = []
    for rank in range(len(Level) + 1):
        order += queues.get((rank, COMMON), [])
        turns = zip_longest(*(queues.get((rank, n), []) for n in names if n != COMMON))
        order += [entry for entry in chain.from_iterable(turns) if entry is not None]
    return order


def is_open(record: ProgressRecord | None, week: str) -> bool:
    """Whether an item may be sent in this week given the member's progress on it."""
    if record is None:
        return True
    if record.state == SNOOZED:
        # "Later" brings the paper back in a later week, never the week it was snoozed.
        return record.snoozed_week is None or record.snoozed_week < week
    return False


def plan(
    catalog: Catalog, progress: Mapping[str, ProgressRecord], week: str, scope: Scope = None
) -> list[Entry]:
    """The member's remaining plan for a week: open items in reading order."""
    return [e for e in reading_order(catalog, scope) if is_open(progress.get(e.id), week)]


def current_paper(catalog: Catalog, progress: Mapping[str, ProgressRecord]) -> Entry | None:
    """The most recently sent paper the member has not answered yet, if it is still listed.

    Whatever its track: a paper sent before a member changed tracks still waits for an answer.
    """
    sent = [r for r in progress.values() if r.state == SENT]
    for record in sorted(sent, key=lambda r: r.updated_at, reverse=True):
        entry = catalog.get(record.item_id)
        if entry is not None:
            return entry
    return None


def next_paper(
    catalog: Catalog, progress: Mapping[str, ProgressRecord], week: str, scope: Scope = None
) -> Entry | None:
    """What the member should read now: the unanswered paper, else the head of the plan."""
    return current_paper(catalog, progress) or next(
        iter(plan(catalog, progress, week, scope)), None
    )


@dataclass(frozen=True)
class Summary:
    """Counts of a member's progress over the current catalog."""

    total: int
    read: int
    skipped: int
    per_level: dict[str, tuple[int, int]]  # level -> (read, total)
    removed_read: int  # items read that the guide no longer lists


def summarise(
    catalog: Catalog, progress: Mapping[str, ProgressRecord], scope: Scope = None
) -> Summary:
    """Progress counts over the tracks in scope; items removed from the guide stay in history but
    not in the totals."""
    per_level: dict[str, tuple[int, int]] = {}
    read = skipped = listed = 0
    for entry in catalog.entries:
        if not in_scope(entry, scope):
            continue
        listed += 1
        level_in = entry.level_in(scope)
        level = level_in.value if level_in else "unclassified"
        done, total = per_level.get(level, (0, 0))
        state = progress.get(entry.id)
        is_read = state is not None and state.state == READ
        per_level[level] = (done + is_read, total + 1)
        read += is_read
        skipped += state is not None and state.state == SKIPPED
    removed = sum(
        1 for r in progress.values() if r.state == READ and catalog.get(r.item_id) is None
    )
    return Summary(
        total=listed,
        read=read,
        skipped=skipped,
        per_level=per_level,
        removed_read=removed,
    )
