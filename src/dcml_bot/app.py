"""The one composition root: settings in, a wired bot out."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dcml_bot.commands import Commands
from dcml_bot.delivery import Delivery
from dcml_bot.library import CatalogLibrary
from dcml_bot.onboarding import Onboarding
from dcml_bot.outbound import Messenger
from dcml_bot.profile import Profiles
from dcml_bot.settings import Settings
from dcml_bot.store import MemberRecord, Store, open_store

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from dcml_bot.metrics import Metrics
    from dcml_bot.platforms.local import LocalClock, LocalMessenger
    from dcml_bot.scheduler import Jobs, Scheduler

log = logging.getLogger(__name__)


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def worker_id() -> str:
    """A name for this process in the outbox ledger (host and pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Bot:
    """Everything the platforms and the CLI need, built once from Settings."""

    settings: Settings
    store: Store
    library: CatalogLibrary
    profiles: Profiles
    delivery: Delivery
    onboarding: Onboarding
    commands: Commands
    messengers: dict[str, Messenger]
    clock: Callable[[], dt.datetime] = field(default=utc_now)

    def member(
        self, platform: str, user_id: str, *, display_name: str | None = None
    ) -> MemberRecord:
        """The member for a platform user, created on first contact."""
        # Commands arrive far more often than names change: a read spares the write lock.
        known = self.store.get_member(platform, user_id)
        if known is not None and display_name in (None, known.display_name):
            return known
        return self.store.upsert_member(
            platform, user_id, display_name=display_name, now=self.clock()
        )

    def close(self) -> None:
        """Release the database."""
        self.store.dispose()


def build_bot(
    settings: Settings,
    *,
    messengers: dict[str, Messenger] | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
    store: Store | None = None,
    worker: str | None = None,
) -> Bot:
    """Wire the bot: open (and migrate) the store, load the catalog, connect the services."""
    library = CatalogLibrary(settings.catalog)
    library.load()
    store = store or open_store(settings.database_url)
    outgoing: dict[str, Messenger] = dict(messengers or {})
    profiles = Profiles(
        settings.timezone,
        {
            "slack": settings.slack.language,
            "feishu": settings.feishu.language,
            "local": settings.local.language,
        },
        settings.language,
    )
    name = worker or worker_id()
    delivery = Delivery(
        store=store,
        library=library,
        messengers=outgoing,
        profiles=profiles,
        day=settings.delivery.day,
        at=settings.delivery.time,
        worker=name,
    )
    onboarding = Onboarding(
        store=store,
        library=library,
        messengers=outgoing,
        profiles=profiles,
        delivery=delivery,
        worker=name,
    )
    commands = Commands(
        store=store,
        library=library,
        profiles=profiles,
        delivery=delivery,
        admins=set(settings.admins),
        clock=clock,
    )
    return Bot(
        settings=settings,
        store=store,
        library=library,
        profiles=profiles,
        delivery=delivery,
        onboarding=onboarding,
        commands=commands,
        messengers=outgoing,
        clock=clock,
    )


class Platform(Protocol):
    """A chat platform's inbound side as the server sees it (implemented in ``platforms/``)."""

    name: str

    def routes(self) -> Sequence[BaseRoute]:
        """HTTP routes this platform serves (may be empty, e.g. in Socket Mode)."""
        ...

    def start(self) -> None:
        """Start background connections (Socket Mode, long connection, workers)."""
        ...

    def stop(self) -> None:
        """Stop them, letting queued work finish."""
        ...


@dataclass
class Service:
    """A running bot: the core, its platforms, its scheduler and its metrics."""

    bot: Bot
    metrics: Metrics
    jobs: Jobs
    scheduler: Scheduler | None
    platforms: list[Platform] = field(default_factory=list)

    def start(self) -> None:
        """Start platforms, then the scheduler."""
        for platform in self.platforms:
            platform.start()
        if self.scheduler is not None:
            self.scheduler.start()

    def stop(self) -> None:
        """Stop the scheduler, then platforms, then release the database."""
        if self.scheduler is not None:
            self.scheduler.shutdown()
        for platform in reversed(self.platforms):
            try:
                platform.stop()
            except Exception:
                log.exception("stopping %s failed", platform.name)
        self.bot.close()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the bot can work, and the details /healthz reports."""
        database = self.bot.store.ping()
        catalog = self.bot.library.current
        next_run = self.scheduler.next_run() if self.scheduler is not None else None
        if catalog is not None:
            self.metrics.catalog_items.set(len(catalog.entries))
        body = {
            "status": "ok" if database and catalog is not None else "degraded",
            "catalog": {
                "source": self.bot.library.source,
                "items": len(catalog.entries) if catalog is not None else 0,
            },
            "platforms": sorted(self.bot.messengers),
            "database": {"reachable": database},
            "scheduler": {
                "next_run": next_run.astimezone(dt.UTC).isoformat() if next_run else None,
                "timezone": self.bot.settings.timezone,
            },
        }
        return database and catalog is not None, body


def build_service(
    settings: Settings,
    *,
    clock: Callable[[], dt.datetime] = utc_now,
    tick_minutes: int = 15,
    schedule: bool = True,
) -> Service:
    """Wire everything ``serve`` runs: the bot, each enabled platform, metrics, the scheduler."""
    from dcml_bot.metrics import Metrics
    from dcml_bot.scheduler import Jobs, Scheduler

    store = open_store(settings.database_url)
    metrics = Metrics()
    messengers: dict[str, Messenger] = {}
    starters: list[Callable[[Bot], Platform]] = []
    try:
        if settings.slack_enabled:
            # Imported only when enabled: a Feishu-only or local bot never loads the Slack SDK.
            from dcml_bot.platforms.slack import SlackMessenger, SlackPlatform, make_client

            slack = SlackMessenger(make_client(settings))
            messengers["slack"] = slack
            starters.append(lambda bot: SlackPlatform(bot, metrics, slack))
        if settings.feishu_enabled:
            # Imported only when enabled: `import lark_oapi` alone takes about 2 s.
            from dcml_bot.platforms.feishu import FeishuMessenger
            from dcml_bot.platforms.feishu import make_client as make_feishu_client
            from dcml_bot.platforms.feishu_events import FeishuPlatform

            feishu = FeishuMessenger(
                make_feishu_client(settings), metrics=metrics, language=settings.feishu.language
            )
            messengers["feishu"] = feishu
            starters.append(lambda bot: FeishuPlatform(bot, metrics, feishu))
        local: LocalMessenger | None = None
        local_clock: LocalClock | None = None
        if settings.local_enabled:
            from dcml_bot.platforms.local import LocalClock, LocalMessenger

            if not (settings.slack_enabled or settings.feishu_enabled):
                # Alone, the local lab has its own clock, which the web page can move ahead.
                clock = local_clock = LocalClock(store, clock)
            local = LocalMessenger(store, clock)
            messengers["local"] = local
        bot = build_bot(settings, messengers=messengers, clock=clock, store=store)
    except BaseException:
        store.dispose()
        raise
    platforms = [start(bot) for start in starters]
    jobs = Jobs(bot, on_report=metrics.record_report)
    bot.delivery.on_unreachable = bot.onboarding.on_unreachable = jobs.tell_admins_unreachable
    if local is not None:
        from dcml_bot.platforms.web import LocalWebPlatform

        platforms.append(LocalWebPlatform(bot, local, jobs, local_clock))
    scheduler = Scheduler(jobs, tick_minutes=tick_minutes) if schedule else None
    return Service(bot=bot, metrics=metrics, jobs=jobs, scheduler=scheduler, platforms=platforms)
