"""The catalog being served, reloaded without ever replacing a good guide by a broken one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dcml_bot.catalog import Catalog, CatalogError, Problem
from dcml_bot.catalog.guides import Guides, TrackSource
from dcml_bot.catalog.loader import FetchLimits

if TYPE_CHECKING:
    import httpx  # loaded by the fetcher when a guide is a URL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: loaded a new version, found none, or refused some guide (with reasons).

    ``rejected`` means at least one guide was refused; with tracks, the others may have loaded.
    """

    status: str  # "loaded" | "unchanged" | "rejected"
    catalog: Catalog | None  # what is served now; None only when nothing ever loaded
    errors: tuple[str, ...] = ()
    warnings: tuple[Problem, ...] = field(default_factory=tuple)


class CatalogLibrary:
    """Holds the served catalog: one guide, or an index and its tracks' guides."""

    def __init__(
        self,
        source: str,
        http: httpx.Client | None = None,
        *,
        link_base: str | None = None,
        tracks: Mapping[str, TrackSource] | None = None,
        limits: FetchLimits | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._guides = Guides(source, link_base=link_base, tracks=tracks, http=http, limits=limits)
        self._catalog: Catalog | None = None

    @property
    def source(self) -> str:
        """The guide or index read (a path or URL)."""
        return self._guides.location

    @source.setter
    def source(self, location: str) -> None:
        """Read another guide or index from the next reload on; serve the current one till then."""
        with self._lock:
            old = self._guides
            self._guides = Guides(
                location,
                link_base=old.link_base,
                tracks=old.explicit,
                http=old.http,
                limits=old.limits,
            )

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
        """First load at start-up: raises CatalogError when no guide is usable (nothing to serve).

        With tracks, a broken or missing direction guide is logged and the others are served.
        """
        result = self.reload()
        if result.catalog is None:
            raise CatalogError("; ".join(result.errors))
        return result.catalog

    def reload(self) -> ReloadResult:
        """Read every guide again; swap in those that parse without errors."""
        with self._lock:
            loaded = self._guides.load()
            self._catalog = loaded.catalog
            for error in loaded.errors:
                log.error("catalog rejected: %s", error)
            if loaded.errors:
                return ReloadResult("rejected", loaded.catalog, errors=loaded.errors)
            if not loaded.changed:
                return ReloadResult("unchanged", loaded.catalog)
            catalog = loaded.catalog
            assert catalog is not None  # changed implies something loaded
            log.info("catalog loaded: %d items from %s", len(catalog.entries), self.source)
            return ReloadResult("loaded", catalog, warnings=loaded.warnings)
