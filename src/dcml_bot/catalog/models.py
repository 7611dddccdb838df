"""The parsed reading-list catalog: frozen value types (plain dataclasses: nothing here is validated
from outside, and they cost nothing to import)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from dcml_bot.catalog.identity import MAX_REF, entry_ref


class Level(StrEnum):
    """How essential an entry is; the order is the reading order."""

    ESSENTIAL = "essential"
    OPTIONAL = "optional"
    ADVANCED = "advanced"

    @property
    def rank(self) -> int:
        """Position in the reading order (essential first)."""
        return _LEVEL_RANK[self]


_LEVEL_RANK = {Level.ESSENTIAL: 0, Level.OPTIONAL: 1, Level.ADVANCED: 2}

# The track every member reads: a single guide, or an index's own entries.
COMMON = "common"


class Kind(StrEnum):
    """What an entry points to, from its kind icons."""

    PAPER = "paper"
    CODE = "code"
    COURSE = "course"
    BOOK = "book"
    TOOL = "tool"
    TUTORIAL = "tutorial"
    OTHER = "other"


class Severity(StrEnum):
    """Whether a problem blocks using the catalog."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong with a catalog file, located by line."""

    path: str
    line: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity.value}: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """Where one listing of an entry sits: its track, section, topic, line, and its level there.

    ``level`` is the entry's level in that track's guide (the same for every listing in one guide).
    """

    section: str | None
    topic: str | None
    line: int
    track: str = COMMON
    level: Level | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One readable item, merged over every place the guide lists it."""

    id: str
    title: str
    url: str | None
    level: Level | None
    level_icon: str | None
    kinds: tuple[Kind, ...] = ()
    icons: tuple[str, ...] = ()
    acronym: str | None = None
    notes: tuple[str, ...] = ()
    placements: tuple[Placement, ...]
    position: int

    @property
    def line(self) -> int:
        """Source line of the first listing (its reading position)."""
        return self.placements[0].line

    @property
    def section(self) -> str | None:
        """Section of the first listing."""
        return self.placements[0].section

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic the entry is listed under, first listing first, without repeats."""
        return tuple(dict.fromkeys(p.topic for p in self.placements if p.topic))

    @property
    def sections(self) -> tuple[str, ...]:
        """Every section the entry is listed under, without repeats."""
        return tuple(dict.fromkeys(p.section for p in self.placements if p.section))

    @property
    def tracks(self) -> tuple[str, ...]:
        """Every track whose guide lists the entry, in guide order, without repeats."""
        return tuple(dict.fromkeys(p.track for p in self.placements))

    def level_in(self, scope: Collection[str] | None) -> Level | None:
        """The entry's most essential level over the tracks in scope (None: every track)."""
        if scope is None:
            return self.level
        levels = [p.level for p in self.placements if p.track in scope and p.level is not None]
        return min(levels, key=lambda level: level.rank, default=None)

    @property
    def topic(self) -> str | None:
        """Topic of the first listing, or its section when it has no topic."""
        return self.placements[0].topic or self.placements[0].section

    def as_record(self) -> dict[str, object]:
        """A JSON-ready dict with the public fields."""
        return {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "level": self.level.value if self.level else None,
            "level_icon": self.level_icon,
            "kinds": [k.value for k in self.kinds],
            "icons": list(self.icons),
            "acronym": self.acronym,
            "section": self.section,
            "topics": list(self.topics),
            "sections": list(self.sections),
            "notes": list(self.notes),
            "line": self.line,
            "lines": [p.line for p in self.placements],
            "tracks": list(self.tracks),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Topic:
    """A topic heading (usually a ``<details>`` summary) with its notes."""

    name: str
    section: str | None
    line: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    """A section heading with its description notes."""

    name: str
    line: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Track:
    """A reading direction: one guide, named after its folder, titled from the index heading."""

    name: str
    title: str
    source: str  # the guide's path or URL
    line: int | None = None  # the index line that links it (None: one guide, or from config)


T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    """A parsed guide: its entries in reading order, structure, legend and problems."""

    source: str
    title: str | None
    legend: dict[str, Level]
    legend_from_file: bool
    sections: tuple[Section, ...]
    topics: tuple[Topic, ...]
    entries: tuple[Entry, ...]
    listings: int
    problems: tuple[Problem, ...] = ()
    tracks: tuple[Track, ...] = ()
    _by_id: dict[str, Entry] = field(init=False, repr=False, compare=False)
    _memo: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Index entries by id (and the long ids by their short reference too)."""
        by_id = {entry_ref(e.id): e for e in self.entries if len(e.id) > MAX_REF}
        by_id.update((entry.id, entry) for entry in self.entries)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_memo", {})

    def memo(self, name: str, build: Callable[[], T]) -> T:
        """A value derived from this (immutable) catalog, built once: e.g. search indexes."""
        if name not in self._memo:
            self._memo[name] = build()
        value: T = self._memo[name]
        return value

    @property
    def errors(self) -> tuple[Problem, ...]:
        """Problems that make the catalog unfit to serve."""
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    @property
    def ok(self) -> bool:
        """True when there is no error-level problem."""
        return not self.errors

    @property
    def track_names(self) -> frozenset[str]:
        """The names of the tracks this catalog serves."""
        return frozenset(track.name for track in self.tracks)

    def get(self, entry_id: str) -> Entry | None:
        """The entry with this id (or short reference, ``entry_ref``), if any."""
        return self._by_id.get(entry_id)
