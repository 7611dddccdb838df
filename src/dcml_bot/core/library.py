"""The catalog being served, reloaded without ever replacing a good guide by a broken one.

A reload reads and parses on a thread of its own, outside any lock: commands keep reading the
catalog served meanwhile, a second reload while one runs is told so at once (no queue of
waiting reloads), and ``close`` (shutdown) abandons a download under way instead of waiting.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dcml_bot.catalog import Catalog, CatalogError, Problem
from dcml_bot.catalog.guides import Guides, Loaded, TrackSource
from dcml_bot.catalog.loader import FetchLimits

if TYPE_CHECKING:
    import httpx  # loaded by the fetcher when a guide is a URL

log = logging.getLogger(__name__)

LOADED, UNCHANGED, REJECTED = "loaded", "unchanged", "rejected"
RUNNING = "running"  # another reload is under way; this one did nothing
STOPPED = "stopped"  # shutting down: the reload was abandoned


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: loaded a new version, found none, or refused some guide (with reasons);
    or nothing, because another was running (since ``started``) or the bot is stopping.

    ``rejected`` means at least one guide was refused; with tracks, the others may have loaded.
    """

    status: str  # "loaded" | "unchanged" | "rejected" | "running" | "stopped"
    catalog: Catalog | None  # what is served now; None only when nothing ever loaded
    errors: tuple[str, ...] = ()
    warnings: tuple[Problem, ...] = field(default_factory=tuple)
    started: dt.datetime | None = None  # when the reload under way began (status "running")


@dataclass
class _Run:
    """One reload under way, and its result once it has one."""

    started: dt.datetime
    result: ReloadResult | None = None


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
        # Guards the fields below, never a download: held for a swap or a check only.
        self._state = threading.Condition()
        self._cancel = threading.Event()  # set by close(): downloads under way give up
        self._guides = Guides(
            source,
            link_base=link_base,
            tracks=tracks,
            http=http,
            limits=limits,
            cancel=self._cancel,
        )
        self._catalog: Catalog | None = None
        self._run: _Run | None = None

    @property
    def source(self) -> str:
        """The guide or index read (a path or URL)."""
        return self._guides.location

    @source.setter
    def source(self, location: str) -> None:
        """Read another guide or index from the next reload on; serve the current one till then."""
        with self._state:
            old = self._guides
            self._guides = Guides(
                location,
                link_base=old.link_base,
                tracks=old.explicit,
                http=old.http,
                limits=old.limits,
                cancel=self._cancel,
            )

    @property
    def catalog(self) -> Catalog:
        """The catalog being served; load() must have succeeded once."""
        catalog = self._catalog
        if catalog is None:
            raise RuntimeError("catalog not loaded")
        return catalog

    @property
    def current(self) -> Catalog | None:
        """The catalog being served, or None before the first successful load."""
        return self._catalog

    @property
    def reloading(self) -> dt.datetime | None:
        """When the reload under way began, or None when none is running."""
        run = self._run
        return run.started if run is not None else None

    def load(self) -> Catalog:
        """First load at start-up: raises CatalogError when no guide is usable (nothing to serve).

        With tracks, a broken or missing direction guide is logged and the others are served.
        """
        result = self.reload()
        if result.catalog is None:
            raise CatalogError("; ".join(result.errors) or "the catalog was not loaded")
        return result.catalog

    def reload(self) -> ReloadResult:
        """Read every guide again and swap in those that parse without errors; wait for it.

        While another reload runs, return at once with status "running" (and when it began);
        after close(), or when close() comes during the wait, with status "stopped".
        """
        with self._state:
            if self._cancel.is_set():
                return self._stopped()
            if self._run is not None:
                return ReloadResult(RUNNING, self._catalog, started=self._run.started)
            run = self._run = _Run(started=dt.datetime.now(dt.UTC))
            guides = self._guides
        # A thread of its own (a daemon): shutdown never waits for a download to end.
        threading.Thread(
            target=self._reload, args=(run, guides), name="catalog-reload", daemon=True
        ).start()
        with self._state:
            self._state.wait_for(lambda: run.result is not None or self._cancel.is_set())
            return run.result or self._stopped()

    def close(self) -> None:
        """Shutting down: a reload under way is abandoned (its waiters return), none starts."""
        self._cancel.set()
        with self._state:
            self._state.notify_all()

    def _stopped(self) -> ReloadResult:
        return ReloadResult(STOPPED, self._catalog, errors=("the bot is stopping",))

    def _reload(self, run: _Run, guides: Guides) -> None:
        try:
            loaded = guides.load()
        except Exception as exc:  # a bug, not a bad guide: the waiter still gets an answer
            log.exception("catalog reload failed")
            loaded = Loaded(self._catalog, False, (f"{guides.location}: reload failed: {exc}",))
        with self._state:
            if self._cancel.is_set():
                log.info("catalog reload abandoned: the bot is stopping")
                run.result = self._stopped()
            else:
                if loaded.catalog is not None:
                    self._catalog = loaded.catalog
                run.result = self._result(loaded)
            self._run = None
            self._state.notify_all()

    def _result(self, loaded: Loaded) -> ReloadResult:
        for error in loaded.errors:
            log.error("catalog rejected: %s", error)
        if loaded.errors:
            return ReloadResult(REJECTED, self._catalog, errors=loaded.errors)
        if not loaded.changed:
            return ReloadResult(UNCHANGED, self._catalog)
        catalog = loaded.catalog
        assert catalog is not None  # changed implies something loaded
        log.info("catalog loaded: %d items from %s", len(catalog.entries), self.source)
        return ReloadResult(LOADED, catalog, warnings=loaded.warnings)
