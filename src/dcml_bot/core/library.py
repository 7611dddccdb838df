"""The catalog being served, reloaded without ever replacing a good one by a broken one."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dcml_bot.catalog import Catalog, CatalogError, Problem, decode_catalog, parse_catalog
from dcml_bot.catalog.loader import fetch_catalog, is_url
from dcml_bot.catalog.source import read_catalog_file

if TYPE_CHECKING:
    import httpx  # loaded by fetch_catalog when the catalog is a URL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: loaded a new version, found none, or kept the old one (with reasons)."""

    status: str  # "loaded" | "unchanged" | "rejected"
    catalog: Catalog | None  # what is served now; None only when nothing ever loaded
    errors: tuple[str, ...] = ()
    warnings: tuple[Problem, ...] = field(default_factory=tuple)


class CatalogLibrary:
    """Holds the served catalog; reloads from a path or URL (conditional GET for URLs)."""

    def __init__(self, source: str, http: httpx.Client | None = None) -> None:
        self.source = source
        self._http = http
        self._lock = threading.Lock()
        self._etag: str | None = None
        self._last_modified: str | None = None
        self._text: str | None = None
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        """The catalog being served; load() must have succeeded once."""
        if self._catalog is None:
            raise RuntimeError("catalog not loaded")
        return self._catalog

    @property
    def current(self) -> Catalog | None:
        """The catalog being served, or None before the first successful load."""
        return self._catalog

    def load(self) -> Catalog:
        """First load at start-up: a broken catalog raises CatalogError (no fallback yet)."""
        result = self.reload()
        if result.catalog is None:
            raise CatalogError("; ".join(result.errors))
        return result.catalog

    def _fetch(self) -> str | None:
        """New text of the source, or None when a URL answered 304 Not Modified."""
        if not is_url(self.source):
            return read_catalog_file(Path(self.source).expanduser())
        headers = {}
        if self._etag:
            headers["If-None-Match"] = self._etag
        if self._last_modified:
            headers["If-Modified-Since"] = self._last_modified
        response = fetch_catalog(self.source, self._http, headers)
        if response is None:
            return None
        text = decode_catalog(response.content, self.source)
        self._etag = response.headers.get("ETag")
        self._last_modified = response.headers.get("Last-Modified")
        return text

    def reload(self) -> ReloadResult:
        """Read the source again; swap in the new catalog only when it parses without errors."""
        with self._lock:
            previous = self._catalog
            try:
                text = self._fetch()
                if text is None or (text == self._text and previous is not None):
                    if previous is None:
                        raise CatalogError(f"{self.source}: not modified, but nothing loaded yet")
                    return ReloadResult("unchanged", previous)
                catalog = parse_catalog(text, self.source)
            except CatalogError as exc:
                return self._reject(previous, (str(exc),))
            if not catalog.ok:
                return self._reject(previous, tuple(str(p) for p in catalog.errors))
            self._catalog, self._text = catalog, text
            log.info("catalog loaded: %d items from %s", len(catalog.entries), self.source)
            warnings = tuple(p for p in catalog.problems if p.severity == "warning")
            return ReloadResult("loaded", catalog, warnings=warnings)

    def _reject(self, previous: Catalog | None, errors: tuple[str, ...]) -> ReloadResult:
        for error in errors:
            log.error("catalog rejected: %s", error)
        return ReloadResult("rejected", previous, errors=errors)
