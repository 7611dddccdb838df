"""The catalog being served, reloaded without ever replacing a good one by a broken one."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dcml_bot.catalog import Catalog, CatalogError, Problem, decode_catalog, parse_catalog
from dcml_bot.catalog.loader import FETCH_TIMEOUT, MAX_CATALOG_BYTES, is_url
from dcml_bot.catalog.source import read_catalog_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: loaded a new version, found none, or kept the old one (with reasons)."""

    status: str  # "loaded" | "unchanged" | "rejected"
    catalog: Catalog
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

    def load(self) -> Catalog:
        """First load at start-up: a broken catalog raises CatalogError (no fallback yet)."""
        result = self.reload()
        if result.status == "rejected":
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
        client = self._http or httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=True)
        try:
            response = client.get(self.source, headers=headers)
        except httpx.HTTPError as exc:
            raise CatalogError(f"{self.source}: cannot fetch: {exc.__class__.__name__}") from None
        finally:
            if self._http is None:
                client.close()
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            raise CatalogError(
                f"{self.source}: cannot fetch: HTTP {response.status_code} {response.reason_phrase}"
            )
        if len(response.content) > MAX_CATALOG_BYTES:
            raise CatalogError(f"{self.source}: too large to be a reading list")
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
        if previous is None:
            # Nothing to keep serving: callers at start-up turn this into a fatal error.
            empty = Catalog(
                source=self.source,
                title=None,
                legend={},
                legend_from_file=False,
                sections=(),
                topics=(),
                entries=(),
                listings=0,
            )
            return ReloadResult("rejected", empty, errors=errors)
        return ReloadResult("rejected", previous, errors=errors)
