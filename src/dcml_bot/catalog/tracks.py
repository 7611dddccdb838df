"""Tracks: the index headings that link to direction guides, and one catalog over all guides."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from markdown_it.token import Token

from dcml_bot.catalog.models import COMMON, Catalog, Entry, Level
from dcml_bot.catalog.query import KIND_WORDS, LEVEL_WORDS, SEARCH_WORDS, fold

# Words a track may not be called: a query or command would read them as something else.
RESERVED = {COMMON, "all", "全部", *LEVEL_WORDS, *KIND_WORDS, *SEARCH_WORDS}
_NAME = re.compile(r"[^\s/#\\`*]{1,40}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackLink:
    """A heading in the index that links to a direction guide."""

    name: str
    title: str
    href: str  # as written, relative to the index
    line: int


def name_problem(name: str) -> str | None:
    """Why a track name cannot be used, or None when it can."""
    if not _NAME.fullmatch(name):
        return f"track name {name!r} must be one word (no spaces, at most 40 characters)"
    if fold(name) in RESERVED:
        return (
            f"track name {name!r} is also a level, kind or query word; "
            f"name the track in the config: [tracks.<other-name>] catalog = …"
        )
    return None


def _guide_href(href: str) -> str | None:
    """The guide a heading link points at (without the anchor), if it is a local Markdown file."""
    path = href.partition("#")[0]
    parts = urlsplit(path)
    if not path or parts.scheme or parts.netloc or path.startswith("/"):
        return None
    return path if path.lower().endswith((".md", ".markdown")) else None


def track_name(href: str) -> str:
    """A guide's track name: its folder (``docs/systems/Readme.md``: ``systems``), else its stem."""
    path = PurePosixPath(href)
    return path.parent.name or path.stem


def discover_tracks(tokens: Sequence[Token]) -> list[TrackLink]:
    """The index's headings that link to a local guide, in order (names are judged later, once
    the config's ``[tracks.*]`` tables have renamed what they rename); ``tokens`` from
    :func:`~dcml_bot.catalog.markup.tokenize`."""
    links: list[TrackLink] = []
    for index, token in enumerate(tokens):
        if token.type != "heading_open" or index + 1 >= len(tokens):
            continue
        children = tokens[index + 1].children or []
        href = next((str(c.attrs.get("href", "")) for c in children if c.type == "link_open"), None)
        guide = _guide_href(href) if href is not None else None
        if guide is None:
            continue
        depth = 0
        words: list[str] = []
        for child in children:
            depth += child.nesting if child.type.startswith("link_") else 0
            if depth == 0 and child.type in {"text", "code_inline"}:
                words.append(child.content)
        title = " ".join("".join(words).split()).strip(" :：-–—🔗") or track_name(guide)
        line = token.map[0] + 1 if token.map else 0
        links.append(TrackLink(name=track_name(guide), title=title, href=guide, line=line))
    return links


def _best(levels: Sequence[Level | None]) -> Level | None:
    known = [level for level in levels if level is not None]
    return min(known, key=lambda level: level.rank, default=None)


def _merge(first: Entry, other: Entry) -> Entry:
    """One item listed by two guides: both placements; its most essential level overall."""
    placements = first.placements + other.placements
    level = _best([p.level for p in placements])
    return replace(
        first,
        level=level,
        level_icon=first.level_icon if level == first.level else other.level_icon,
        kinds=tuple(dict.fromkeys(first.kinds + other.kinds)),
        icons=tuple(dict.fromkeys(first.icons + other.icons)),
        notes=tuple(dict.fromkeys(first.notes + other.notes)),
        acronym=first.acronym or other.acronym,
        placements=placements,
    )


def combine(index: Catalog, guides: Sequence[Catalog]) -> Catalog:
    """The index (the common track) and its guides as one catalog; an item is one entry."""
    parts = [index, *guides]
    merged: dict[str, Entry] = {}
    for part in parts:
        for entry in part.entries:
            first = merged.get(entry.id)
            merged[entry.id] = entry if first is None else _merge(first, entry)
    entries = tuple(replace(e, position=i) for i, e in enumerate(merged.values()))
    legend: dict[str, Level] = {}
    for part in parts:
        for icon, level in part.legend.items():
            legend.setdefault(icon, level)
    tracks = tuple(track for part in parts for track in part.tracks if part.entries)
    return Catalog(
        source=index.source,
        title=index.title,
        legend=legend,
        legend_from_file=any(part.legend_from_file for part in parts),
        sections=tuple(s for part in parts for s in part.sections),
        topics=tuple(t for part in parts for t in part.topics),
        entries=entries,
        listings=sum(part.listings for part in parts),
        problems=tuple(p for part in parts for p in part.problems),
        tracks=tracks,
    )
