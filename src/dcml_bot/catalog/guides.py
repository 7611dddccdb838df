"""The lab's guides: one guide, or an index whose headings link to direction guides (tracks).

Each guide is read on its own (a URL with its last ETag / Last-Modified); a guide that fails keeps
its last good version, so one broken direction never takes the others down.
"""

from __future__ import annotations

import logging
import operator
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from dcml_bot.catalog.loader import (
    FetchLimits,
    fetch_catalog,
    is_url,
    redact,
    without_credentials,
)
from dcml_bot.catalog.markup import tokenize
from dcml_bot.catalog.models import COMMON, Catalog, Problem, Severity, Track
from dcml_bot.catalog.parser import parse_catalog
from dcml_bot.catalog.source import CatalogError, decode_catalog, read_catalog_file
from dcml_bot.catalog.tracks import combine, discover_tracks, name_problem

if TYPE_CHECKING:
    import httpx
    from markdown_it.token import Token

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackSource:
    """A ``[tracks.<name>]`` table: adds a track, or renames / retitles / relocates a found one."""

    name: str
    catalog: str | None = None  # a path (resolved against the config file) or an http(s) URL
    title: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Spec:
    name: str
    title: str | None
    location: str
    base_url: str | None
    where: str  # how errors name the track's origin: "index.md:42" or "config tracks.x"


class Feed:
    """One guide's text from a path or URL; a URL is asked again with its validators."""

    def __init__(
        self,
        location: str,
        http: httpx.Client | None = None,
        limits: FetchLimits | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.location = location  # what is read: a URL may hold credentials
        self.shown = redact(location)  # what errors, logs and pages show
        self._http = http
        self._limits = limits
        self._cancel = cancel
        self._etag: str | None = None
        self._last_modified: str | None = None

    def read(self) -> str | None:
        """The guide's text now, or None when its URL answered 304 Not Modified."""
        if not is_url(self.location):
            return read_catalog_file(Path(self.location).expanduser())
        headers = {}
        if self._etag:
            headers["If-None-Match"] = self._etag
        if self._last_modified:
            headers["If-Modified-Since"] = self._last_modified
        fetched = fetch_catalog(
            self.location, self._http, headers, self._limits, cancel=self._cancel
        )
        if fetched is None:
            return None
        text = decode_catalog(fetched.content, self.shown)
        self._etag, self._last_modified = fetched.etag, fetched.last_modified
        return text


@dataclass(frozen=True, slots=True)
class _Key:
    track: str
    title: str | None
    base_url: str | None
    skip: frozenset[str]


@dataclass
class _Guide:
    feed: Feed
    text: str | None = None
    key: _Key | None = None  # what `parsed` was parsed as
    parsed: Catalog | None = None
    errors: tuple[str, ...] = ()
    good: Catalog | None = None  # the last version without errors


@dataclass(frozen=True)
class Loaded:
    """One pass over the guides: the catalog to serve (None: nothing usable yet) and why."""

    catalog: Catalog | None
    changed: bool  # the catalog served differs from the last pass's
    errors: tuple[str, ...] = ()  # one line each, ``file:line: …``
    warnings: tuple[Problem, ...] = field(default_factory=tuple)
    draft: Catalog | None = None  # a refused guide as parsed (what `catalog check` summarises)


class Guides:
    """Reads the configured guide or index and every track guide; keeps each one's last good."""

    def __init__(
        self,
        location: str,
        *,
        link_base: str | None = None,
        tracks: Mapping[str, TrackSource] | None = None,
        http: httpx.Client | None = None,
        limits: FetchLimits | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self._location = location  # what is read: a URL may hold credentials
        self.location = redact(location)  # what errors, logs, /healthz and the lab show
        self.link_base = link_base if not link_base or link_base.endswith("/") else link_base + "/"
        self.explicit = dict(tracks or {})
        self.http = http
        self.limits = limits
        self.cancel = cancel  # once set, downloads under way give up (the bot is stopping)
        self._guides: dict[str, _Guide] = {}
        self._served: Catalog | None = None
        self._parts: tuple[Catalog, ...] = ()  # what _served was built from
        # The index's text, its tracks and their problems, as last read.
        self._index: tuple[str, list[_Spec], frozenset[str], tuple[str, ...]] | None = None

    def _guide(self, location: str) -> _Guide:
        if location not in self._guides:
            self._guides[location] = _Guide(Feed(location, self.http, self.limits, self.cancel))
        return self._guides[location]

    def _base_of(self, location: str) -> str | None:
        """What a guide's relative links resolve against: its URL, else under ``link_base``."""
        if is_url(location):
            return without_credentials(location)  # resolved links are shown to members
        if self.link_base is None:
            return None
        root = Path(self._location).expanduser().absolute().parent
        try:
            relative = Path(location).expanduser().absolute().relative_to(root)
        except ValueError:
            return None
        return urljoin(self.link_base, relative.as_posix())

    def _locate(self, href: str) -> str:
        if is_url(self._location):
            return urljoin(self._location, href)
        return str(Path(self._location).expanduser().parent / href)

    def _specs(self, tokens: list[Token], errors: list[str]) -> tuple[list[_Spec], frozenset[str]]:
        """The tracks: the index's headings, then the config's tables over them; a name that
        cannot be used (reserved, or used twice) is one error line and that track is left out."""
        links = discover_tracks(tokens)
        specs: list[_Spec] = []
        for link in links:
            location = self._locate(link.href)
            specs.append(
                _Spec(
                    name=link.name,
                    title=link.title,
                    location=location,
                    base_url=self._base_of(location),
                    where=f"{self.location}:{link.line}",
                )
            )
        for name, source in self.explicit.items():
            same = [
                s
                for s in specs
                if s.name.casefold() == name.casefold() or s.location == source.catalog
            ]
            base = same[0] if same else None
            target = source.catalog or (base.location if base else None)
            if target is None:
                errors.append(
                    f"config: tracks.{name}: no guide found by that name in the index: "
                    "set catalog = PATH or URL"
                )
                continue
            spec = _Spec(
                name=name,
                title=source.title or (base.title if base else None),
                location=target,
                base_url=self._base_of(target),
                where=base.where if base else f"config: tracks.{name}",
            )
            specs = [spec if s is base else s for s in specs] if base else [*specs, spec]
        kept: list[_Spec] = []
        seen: dict[str, _Spec] = {}
        for spec in specs:
            problem = name_problem(spec.name)
            first = seen.get(spec.name.casefold())
            if problem is None and first is not None:
                problem = (
                    f"track name {spec.name!r} is already used by {first.where}; "
                    "name one of them in the config: [tracks.<name>] catalog = …"
                )
            if problem is not None:
                errors.append(f"{spec.where}: {problem}")
                continue
            seen[spec.name.casefold()] = spec
            kept.append(spec)
        return kept, frozenset(link.href for link in links)

    def _parse(
        self, guide: _Guide, text: str, key: _Key, tokens: list[Token] | None = None
    ) -> None:
        if guide.key == key and guide.text == text:
            return  # unchanged since the last pass: keep the parse (and its memoised indexes)
        guide.text, guide.key = text, key
        location = guide.feed.shown
        try:
            catalog = parse_catalog(
                text,
                location,
                track=key.track,
                base_url=key.base_url,
                skip_links=key.skip,
                allow_empty=key.track == COMMON and bool(key.skip),
                tokens=tokens,
            )
        except CatalogError as exc:
            guide.parsed, guide.errors = None, (str(exc),)
            return
        if key.track == COMMON and key.skip and catalog.entries:
            # An index: its own list is the common track, titled by the section that holds it.
            title = catalog.entries[0].section or catalog.title or COMMON
            track = Track(name=COMMON, title=title, source=location)
            catalog = replace(catalog, tracks=(track,))
        elif key.track != COMMON:
            title = key.title or catalog.title or key.track
            catalog = replace(
                catalog, tracks=(Track(name=key.track, title=title, source=location),)
            )
        guide.parsed, guide.errors = catalog, tuple(str(p) for p in catalog.errors)
        if catalog.ok:
            guide.good = catalog

    def _read(self, guide: _Guide) -> str:
        text = guide.feed.read()
        if text is None:
            if guide.text is None:
                raise CatalogError(f"{guide.feed.shown}: not modified, but never read before")
            return guide.text
        return text

    def load(self) -> Loaded:
        """Read every guide again; serve each track's newest good version."""
        index = self._guide(self._location)
        try:
            text = self._read(index)
        except CatalogError as exc:
            return Loaded(self._served, False, (str(exc),))
        if self._index is None or self._index[0] != text:
            tokens = tokenize(text)
            found: list[str] = []
            specs, hrefs = self._specs(tokens, found)
            self._parse(
                index, text, _Key(COMMON, None, self._base_of(self._location), hrefs), tokens
            )
            self._index = (text, specs, hrefs, tuple(found))
        _, specs, hrefs, found_errors = self._index
        self._parse(index, text, _Key(COMMON, None, self._base_of(self._location), hrefs))
        errors = [*found_errors, *index.errors]
        common = index.parsed if index.parsed is not None and index.parsed.ok else index.good
        if common is None:
            return Loaded(self._served, False, tuple(errors), draft=index.parsed)
        guides: list[Catalog] = []
        for spec in specs:
            guide = self._guide(spec.location)
            key = _Key(spec.name, spec.title, spec.base_url, frozenset())
            try:
                self._parse(guide, self._read(guide), key)
                refused = [f"{e} (track {spec.name})" for e in guide.errors]
            except CatalogError as exc:
                refused = [f"{spec.where}: track {spec.name}: {exc}"]
            errors += refused
            served = guide.parsed if not refused else guide.good
            if served is None:
                continue
            if refused:
                errors.append(f"{spec.where}: track {spec.name}: serving its last good version")
            guides.append(served)
        return self._serve(common, guides, errors)

    def _serve(self, common: Catalog, guides: list[Catalog], errors: list[str]) -> Loaded:
        parts = (common, *guides)
        same = len(parts) == len(self._parts) and all(map(operator.is_, parts, self._parts))
        if self._served is not None and same:
            catalog, changed = self._served, False
        else:
            catalog = combine(common, guides) if guides else common
            changed = True
        if not catalog.entries:
            errors.append(f"{self.location}: no reading-list entries in any guide")
            return Loaded(self._served, False, tuple(errors))
        self._served, self._parts = catalog, parts
        warnings = tuple(p for p in catalog.problems if p.severity is Severity.WARNING)
        return Loaded(catalog, changed, tuple(errors), warnings)
