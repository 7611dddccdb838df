"""Pydantic models for a parsed reading-list catalog."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


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


class Problem(BaseModel):
    """One thing wrong with a catalog file, located by line."""

    model_config = ConfigDict(frozen=True)

    path: str
    line: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity.value}: {self.message}"


class Placement(BaseModel):
    """Where one listing of an entry sits in the guide."""

    model_config = ConfigDict(frozen=True)

    section: str | None
    topic: str | None
    line: int


class Entry(BaseModel):
    """One readable item, merged over every place the guide lists it."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    url: str | None
    level: Level | None
    level_icon: str | None
    kinds: tuple[Kind, ...] = ()
    icons: tuple[str, ...] = ()
    acronym: str | None = None
    notes: tuple[str, ...] = ()
    placements: tuple[Placement, ...] = Field(min_length=1)
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
        }


class Topic(BaseModel):
    """A topic heading (usually a ``<details>`` summary) with its notes."""

    model_config = ConfigDict(frozen=True)

    name: str
    section: str | None
    line: int
    notes: tuple[str, ...] = ()


class Section(BaseModel):
    """A section heading with its description notes."""

    model_config = ConfigDict(frozen=True)

    name: str
    line: int
    notes: tuple[str, ...] = ()


T = TypeVar("T")


class Catalog(BaseModel):
    """A parsed guide: its entries in reading order, structure, legend and problems."""

    model_config = ConfigDict(frozen=True)

    source: str
    title: str | None
    legend: dict[str, Level]
    legend_from_file: bool
    sections: tuple[Section, ...]
    topics: tuple[Topic, ...]
    entries: tuple[Entry, ...]
    listings: int
    problems: tuple[Problem, ...] = ()
    _by_id: dict[str, Entry] = PrivateAttr(default_factory=dict)
    _memo: dict[str, Any] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        """Index entries by id."""
        self._by_id = {entry.id: entry for entry in self.entries}

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

    def get(self, entry_id: str) -> Entry | None:
        """The entry with this id, if any."""
        return self._by_id.get(entry_id)
