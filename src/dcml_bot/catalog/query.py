"""The catalog query language shared by the CLI and chat: levels, topics, kinds and free text."""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from dcml_bot.catalog.icons import DEFAULT_LEGEND, KIND_ICONS, normalise_icon
from dcml_bot.catalog.models import Catalog, Entry, Kind, Level

LEVEL_WORDS: dict[str, Level] = {
    "essential": Level.ESSENTIAL,
    "essentials": Level.ESSENTIAL,
    "must": Level.ESSENTIAL,
    "必读": Level.ESSENTIAL,
    "基础必读": Level.ESSENTIAL,
    "optional": Level.OPTIONAL,
    "选读": Level.OPTIONAL,
    "基础选读": Level.OPTIONAL,
    "advanced": Level.ADVANCED,
    "进阶": Level.ADVANCED,
    "进阶阅读": Level.ADVANCED,
}

KIND_WORDS: dict[str, Kind] = {
    "paper": Kind.PAPER,
    "papers": Kind.PAPER,
    "论文": Kind.PAPER,
    "code": Kind.CODE,
    "代码": Kind.CODE,
    "course": Kind.COURSE,
    "courses": Kind.COURSE,
    "lecture": Kind.COURSE,
    "lectures": Kind.COURSE,
    "课程": Kind.COURSE,
    "book": Kind.BOOK,
    "books": Kind.BOOK,
    "书": Kind.BOOK,
    "教材": Kind.BOOK,
    "tool": Kind.TOOL,
    "tools": Kind.TOOL,
    "工具": Kind.TOOL,
    "tutorial": Kind.TUTORIAL,
    "tutorials": Kind.TUTORIAL,
    "教程": Kind.TUTORIAL,
}

_CAMEL_HUMP = re.compile(r"(?<=[a-z])(?=[A-Z])")

SEARCH_WORDS = {"search", "find", "搜索", "查找"}
ALL_WORDS = {"all", "全部", "所有"}
_TRACK_SUFFIX = re.compile(r"(方向|direction|track)$")


class QueryError(ValueError):
    """A query term that names nothing; the message says what is accepted."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """A parsed query; every non-empty part must match (AND)."""

    levels: frozenset[Level] = frozenset()
    kinds: frozenset[Kind] = frozenset()
    topics: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    tracks: frozenset[str] = frozenset()  # named in the query: they replace the asker's scope
    everything: bool = False  # ``all``: every track, whatever the asker reads

    @property
    def empty(self) -> bool:
        """True when the query selects everything (in the asker's scope)."""
        return not (self.levels or self.kinds or self.topics or self.text)

    def scope(self, default: Collection[str] | None) -> frozenset[str] | None:
        """The tracks the query reads: ``all`` (None), the tracks it names, else ``default``."""
        if self.everything:
            return None
        if self.tracks:
            return self.tracks
        return frozenset(default) if default is not None else None

    def describe(self) -> str:
        """A short human summary, e.g. ``essential · topic "video" · "clip"``."""
        parts: list[str] = []
        parts += sorted(self.tracks) + (["all"] if self.everything else [])
        parts += sorted(level.value for level in self.levels)
        parts += sorted(kind.value for kind in self.kinds)
        parts += [f'topic "{term}"' for term in self.topics]
        parts += [f'"{term}"' for term in self.text]
        return " · ".join(parts) or "everything"


def fold(text: str) -> str:
    """Case- and width-insensitive form used for every comparison."""
    return unicodedata.normalize("NFKC", text).casefold()


def _compact(text: str) -> str:
    return re.sub(r"[\W_]+", "", fold(text))


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        # An unbalanced quote is not worth an error: fall back to plain words.
        return text.replace('"', " ").replace("'", " ").split()


def level_of(word: str, catalog: Catalog | None = None) -> Level | None:
    """The level a word or icon names, if any."""
    folded = fold(word.strip())
    if folded in LEVEL_WORDS:
        return LEVEL_WORDS[folded]
    icon = normalise_icon(word.strip("`"))
    legend = catalog.legend if catalog is not None else {}
    return legend.get(icon) or DEFAULT_LEGEND.get(icon)


def kind_of(word: str) -> Kind | None:
    """The kind a word or icon names, if any."""
    folded = fold(word.strip())
    if folded in KIND_WORDS:
        return KIND_WORDS[folded]
    return KIND_ICONS.get(normalise_icon(word))


def track_of(word: str, catalog: Catalog) -> str | None:
    """The track a word names: its name, its title, or its title without "方向"; any case."""
    wanted = _compact(word)
    if not wanted:
        return None
    for track in catalog.tracks:
        title = _compact(track.title)
        if wanted in {_compact(track.name), title, _TRACK_SUFFIX.sub("", title)}:
            return track.name
    return None


def topic_names(catalog: Catalog) -> list[str]:
    """Every topic and section name, in guide order, without repeats."""
    names = [t.name for t in catalog.topics] + [s.name for s in catalog.sections]
    return list(dict.fromkeys(names))


def _compact_topics(catalog: Catalog) -> list[tuple[str, str]]:
    return catalog.memo(
        "query.topics", lambda: [(name, _compact(name)) for name in topic_names(catalog)]
    )


def matching_topics(catalog: Catalog, term: str) -> list[str]:
    """Topic and section names that contain the term, ignoring case, spaces and punctuation."""
    needle = _compact(term)
    if not needle:
        return []
    return [name for name, compact in _compact_topics(catalog) if needle in compact]


def parse_query(text: str, catalog: Catalog) -> Query:
    """Parse what a user typed: level, kind and topic words, ``search …`` or free text."""
    words = _words(text)
    if words and fold(words[0]) in SEARCH_WORDS:
        return Query(text=tuple(w for w in words[1:] if w.strip()))
    levels: set[Level] = set()
    kinds: set[Kind] = set()
    tracks: set[str] = set()
    everything = False
    topics: list[str] = []
    free: list[str] = []
    for word in words:
        level = level_of(word, catalog)
        kind = kind_of(word) if level is None else None
        track = track_of(word, catalog) if level is None and kind is None else None
        if level is not None:
            levels.add(level)
        elif kind is not None:
            kinds.add(kind)
        elif fold(word) in ALL_WORDS:
            everything = True
        elif track is not None and len(catalog.tracks) > 1:
            tracks.add(track)
        elif matching_topics(catalog, word):
            topics.append(word)
        elif word.strip():
            free.append(word)
    return Query(
        levels=frozenset(levels),
        kinds=frozenset(kinds),
        topics=tuple(topics),
        text=tuple(free),
        tracks=frozenset(tracks),
        everything=everything,
    )


def build_query(
    catalog: Catalog,
    *,
    levels: Iterable[str] = (),
    topics: Iterable[str] = (),
    kinds: Iterable[str] = (),
    search: str | None = None,
    tracks: Iterable[str] = (),
) -> Query:
    """A query from explicit options (the CLI's flags); unknown values raise QueryError."""
    parsed_tracks: set[str] = set()
    for word in tracks:
        track = track_of(word, catalog)
        if track is None:
            known = ", ".join(t.name for t in catalog.tracks)
            raise QueryError(f"unknown track {word!r}; this catalog has {known}")
        parsed_tracks.add(track)
    parsed_levels: set[Level] = set()
    for word in levels:
        level = level_of(word, catalog)
        if level is None:
            raise QueryError(f"unknown level {word!r}; use essential, optional or advanced")
        parsed_levels.add(level)
    parsed_kinds: set[Kind] = set()
    for word in kinds:
        kind = kind_of(word)
        if kind is None or kind is Kind.OTHER:
            known = ", ".join(k.value for k in Kind if k is not Kind.OTHER)
            raise QueryError(f"unknown kind {word!r}; use one of {known}")
        parsed_kinds.add(kind)
    topic_terms = [t for t in topics if t.strip()]
    for term in topic_terms:
        if not matching_topics(catalog, term):
            raise QueryError(
                f"no topic or section matches {term!r}; try `catalog show` to list them"
            )
    return Query(
        levels=frozenset(parsed_levels),
        kinds=frozenset(parsed_kinds),
        topics=tuple(topic_terms),
        text=tuple(_words(search)) if search else (),
        tracks=frozenset(parsed_tracks),
    )


def _matcher(term: str) -> Callable[[str], bool]:
    needle = fold(term)
    if re.fullmatch(r"[a-z0-9][\w.+-]*", needle, re.ASCII):
        # Latin words match at a word start, so "rag" finds "RAG" but not "leverage".
        pattern = re.compile(r"(?<![a-z0-9])" + re.escape(needle))
        return lambda haystack: pattern.search(haystack) is not None
    return lambda haystack: needle in haystack


def _haystack(entry: Entry, topic_notes: dict[str, list[str]]) -> str:
    notes = [note for topic in entry.topics for note in topic_notes.get(topic, ())]
    text = " ".join([entry.title, entry.acronym or "", entry.url or "", *entry.notes, *notes])
    # camelCase humps start words too, so "rag" finds "GraphRAG" and "math" "DeepSeekMath".
    return fold(_CAMEL_HUMP.sub(" ", text))


def _haystacks(catalog: Catalog) -> dict[str, str]:
    def build() -> dict[str, str]:
        topic_notes: dict[str, list[str]] = {}
        for topic in catalog.topics:
            topic_notes.setdefault(topic.name, []).extend(topic.notes)
        return {entry.id: _haystack(entry, topic_notes) for entry in catalog.entries}

    return catalog.memo("query.haystacks", build)


def run_query(catalog: Catalog, query: Query, scope: Collection[str] | None = None) -> list[Entry]:
    """Entries matching every part of the query, in guide order, within the query's tracks.

    ``scope``: the tracks the asker reads when the query names none (None: every track).
    """
    tracks = query.scope(scope)
    topic_sets = [set(matching_topics(catalog, term)) for term in query.topics]
    matchers = [_matcher(term) for term in query.text]
    haystacks = _haystacks(catalog) if matchers else {}
    results: list[Entry] = []
    for entry in catalog.entries:
        if tracks is not None and tracks.isdisjoint(entry.tracks):
            continue
        if query.levels and entry.level_in(tracks) not in query.levels:
            continue
        if query.kinds and not query.kinds.intersection(entry.kinds):
            continue
        if topic_sets:
            names = set(entry.topics) | set(entry.sections)
            if not all(names & wanted for wanted in topic_sets):
                continue
        if matchers:
            haystack = haystacks[entry.id]
            if not all(match(haystack) for match in matchers):
                continue
        results.append(entry)
    return results


def search(
    catalog: Catalog, text: str, scope: Collection[str] | None = None
) -> tuple[Query, list[Entry]]:
    """Parse and run a typed query within the asker's tracks (None: every track)."""
    query = parse_query(text, catalog)
    return query, run_query(catalog, query, scope)
