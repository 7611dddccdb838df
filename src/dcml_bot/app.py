"""The one composition root: settings in, a wired bot (and its platforms) out."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dcml_bot.catalog.guides import TrackSource
from dcml_bot.core.attention import Attention
from dcml_bot.core.bot import Bot, LabPolicy, utc_now, worker_id
from dcml_bot.core.commands.groups import chat_commands
from dcml_bot.core.commands.table import Services
from dcml_bot.core.delivery import Delivery
from dcml_bot.core.digest import DigestPlan, DigestService
from dcml_bot.core.library import CatalogLibrary
from dcml_bot.core.notes import Notes
from dcml_bot.core.notices import AdminNotices
from dcml_bot.core.onboarding import Onboarding
from dcml_bot.core.once import OnceOnly
from dcml_bot.core.outbound import Messenger
from dcml_bot.core.profile import Profiles
from dcml_bot.platforms.common.base import STOP_GRACE
from dcml_bot.settings import Settings
from dcml_bot.store import Store, open_store

if TYPE_CHECKING:
    from dcml_bot.core.jobs import Jobs
    from dcml_bot.core.metrics import Metrics
    from dcml_bot.platforms.common.base import Platform
    from dcml_bot.platforms.common.preview import Previewer
    from dcml_bot.platforms.feishu.messenger import FeishuOptions
    from dcml_bot.platforms.local.console import Console
    from dcml_bot.platforms.local.messenger import LocalClock, LocalMessenger
    from dcml_bot.platforms.slack.messenger import SlackOptions
    from dcml_bot.scheduler import Scheduler

__all__ = ["Bot", "Service", "build_bot", "build_console", "build_service", "utc_now"]

log = logging.getLogger(__name__)

# Seconds every worker of a platform may stay busy before /healthz calls it stuck: longer than
# any task of the bot's own (an API call's timeout, a catalog download's deadline).
STALL_AFTER = 60.0


def build_bot(
    settings: Settings,
    *,
    messengers: dict[str, Messenger] | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
    store: Store | None = None,
    worker: str | None = None,
) -> Bot:
    """Wire the bot: open (and migrate) the store, load the catalog, connect the services."""
    tracks = {
        name: TrackSource(name=name, catalog=table.catalog, title=table.title)
        for name, table in settings.tracks.items()
    }
    library = CatalogLibrary(
        settings.catalog,
        link_base=settings.link_base,
        tracks=tracks,
        limits=settings.catalog_limits,
    )
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
    once = OnceOnly(store=store, messengers=outgoing, worker=worker or worker_id())
    delivery = Delivery(
        store=store,
        library=library,
        once=once,
        profiles=profiles,
        day=settings.delivery.day,
        at=settings.delivery.time,
        share_default=settings.digest.share_progress,
    )
    onboarding = Onboarding(
        store=store, library=library, once=once, profiles=profiles, delivery=delivery
    )
    services = Services(
        store=store, library=library, profiles=profiles, delivery=delivery, clock=clock
    )
    notices = AdminNotices(
        once=once,
        profiles=profiles,
        admins=settings.admins,
        member=lambda platform, user_id: bot.member(platform, user_id),
        clock=clock,
    )
    digest = DigestService(
        store=store,
        library=library,
        once=once,
        profiles=profiles,
        plan=digest_plan(settings, outgoing),
        clock=clock,
    )
    attention = Attention(
        store=store, library=library, profiles=profiles, notices=notices, clock=clock
    )
    notes = Notes(services)
    notes.on_added = digest.post_note_later
    commands = chat_commands(
        services, set(settings.admins), notes=notes, digest=digest, attention=attention
    )
    bot = Bot(
        store=store,
        library=library,
        profiles=profiles,
        delivery=delivery,
        onboarding=onboarding,
        commands=commands,
        notices=notices,
        messengers=outgoing,
        notes=notes,
        digest=digest,
        attention=attention,
        policy=LabPolicy(catch_up=settings.delivery.catch_up),
        clock=clock,
    )
    # A member no platform can reach, or a lab channel the bot cannot post in, is news for the
    # admins (once per member, once per channel).
    once.on_unreachable = bot.notices.unreachable
    once.on_channel_unreachable = bot.notices.channel_unreachable
    # So is a message a crash interrupted that the platform can no longer check (once each).
    once.on_unverified = bot.notices.unverified
    return bot


def digest_plan(settings: Settings, messengers: Mapping[str, Messenger]) -> DigestPlan:
    """Where the lab channel's digest goes: ``[digest] channel`` on Feishu when it is a chat id
    (``oc_…``), else on Slack, else on the one platform there is; off without a channel."""
    config = settings.digest
    channel = (config.channel or "").strip() or None
    platform = None
    if channel is not None:
        feishu = channel.startswith("oc_")
        for name in ("feishu", "slack", "local") if feishu else ("slack", "feishu", "local"):
            if name in messengers:
                platform = name
                break
        if platform is None:
            log.warning("digest: no platform to post in %s; the digest is off", channel)
    return DigestPlan(
        platform=platform,
        channel=channel,
        day=config.day,
        at=config.time,
        mention=config.mention,
        share_default=config.share_progress,
    )


def slack_options(settings: Settings) -> SlackOptions:
    """The Slack adapter's options from the settings (secrets unwrapped here, only)."""
    from dcml_bot.platforms.slack.messenger import SlackOptions

    assert settings.slack_bot_token is not None
    secret, app_token = settings.slack_signing_secret, settings.slack_app_token
    return SlackOptions(
        bot_token=settings.slack_bot_token.get_secret_value(),
        signing_secret=secret.get_secret_value() if secret else None,
        app_token=app_token.get_secret_value() if app_token else None,
        api_url=settings.slack_api_url,
        channels=tuple(settings.slack.channels),
        track_channels=track_places(settings, "channels"),
        language=settings.slack.language,
    )


def track_places(
    settings: Settings, kind: Literal["channels", "groups"]
) -> dict[str, tuple[str, ...]]:
    """Slack channels or Feishu chats whose joiners read tracks: place -> track names, in order."""
    places: dict[str, tuple[str, ...]] = {}
    for name, track in settings.tracks.items():
        for place in dict.fromkeys(p.strip() for p in getattr(track, kind)):
            if place:
                places[place] = (*places.get(place, ()), name)
    return places


def feishu_options(settings: Settings) -> FeishuOptions:
    """The Feishu adapter's options from the settings (secrets unwrapped here, only)."""
    from dcml_bot.platforms.feishu.messenger import FeishuOptions

    assert settings.feishu_app_id is not None and settings.feishu_app_secret is not None
    token, key = settings.feishu_verification_token, settings.feishu_encrypt_key
    return FeishuOptions(
        app_id=settings.feishu_app_id.get_secret_value(),
        app_secret=settings.feishu_app_secret.get_secret_value(),
        verification_token=token.get_secret_value() if token else None,
        encrypt_key=key.get_secret_value() if key else None,
        domain=settings.feishu_domain,
        mode=settings.feishu.mode,
        groups=tuple(settings.feishu.groups),
        track_groups=track_places(settings, "groups"),
        language=settings.feishu.language,
        welcome_new_users=settings.feishu.welcome_new_users,
    )


@dataclass
class Service:
    """A running bot: the core, its platforms, its scheduler and its metrics."""

    bot: Bot
    settings: Settings
    metrics: Metrics
    jobs: Jobs
    scheduler: Scheduler | None
    platforms: list[Platform] = field(default_factory=list)
    stall_after: float = STALL_AFTER

    def start(self) -> None:
        """Start platforms, then the scheduler."""
        for platform in self.platforms:
            platform.start()
        if self.scheduler is not None:
            self.scheduler.start()

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop within about ``grace`` seconds whatever the backlog, losing nothing.

        A running fan-out stops between members; the platforms interrupt their waits for the
        APIs (the fan-out's too) and leave queued joins in the database; work under way gets
        what is left of ``grace``; a send cut short releases its claim. The next start replays
        the joins and sends what was released; the first tick serves the rest of the week.
        """
        deadline = time.monotonic() + grace
        self.jobs.stop()
        self.bot.library.close()  # a catalog download under way is abandoned, not waited for
        for platform in reversed(self.platforms):
            try:
                platform.stop(max(deadline - time.monotonic(), 0.1))
            except Exception:
                log.exception("stopping %s failed", platform.name)
        if self.scheduler is not None:
            self.scheduler.shutdown()
        self.bot.close()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the bot can work, and the details /healthz reports; ``failed`` names each
        part that cannot: database, disk, catalog, connections.<platform>, workers.<platform>,
        scheduler."""
        failed: list[str] = []
        reachable = self.bot.store.ping()
        problem = self.bot.store.write_problem() if reachable else "unreachable"
        database: dict[str, Any] = {"reachable": reachable, "writable": problem is None}
        if problem is not None:
            database["error"] = problem
            failed.append("database")
        free = self.bot.store.disk_free()
        if free is not None:
            folder, left = free
            floor = self.settings.disk_min_free_mb
            database["disk"] = {"path": str(folder), "free_mb": left // 2**20, "min_free_mb": floor}
            if left < floor * 2**20:
                failed.append("disk")
        catalog = self.bot.library.current
        if catalog is not None:
            self.metrics.catalog_items.set(len(catalog.entries))
        else:
            failed.append("catalog")
        connections = {platform.name: platform.health() for platform in self.platforms}
        failed += [
            f"connections.{name}"
            for name, c in connections.items()
            if c.get("state") != "connected"
        ]
        workers: dict[str, Any] = {}
        for platform in self.platforms:
            load = platform.workers()
            if load is not None:
                stuck = load.all_busy > self.stall_after
                workers[platform.name] = {**load.as_dict(), "stuck": stuck}
                if stuck:
                    failed.append(f"workers.{platform.name}")
        next_run = self.scheduler.next_run() if self.scheduler is not None else None
        scheduler: dict[str, Any] = {
            "next_run": next_run.astimezone(dt.UTC).isoformat() if next_run else None,
            "timezone": self.settings.timezone,
        }
        if self.scheduler is not None:
            ticking, ticks = self.scheduler.health()
            scheduler.update(ticks)
            if not ticking:
                failed.append("scheduler")
        reloading = self.bot.library.reloading
        body = {
            "status": "degraded" if failed else "ok",
            "failed": failed,
            "catalog": {
                "source": self.bot.library.source,
                "items": len(catalog.entries) if catalog is not None else 0,
                "reloading_since": reloading.isoformat() if reloading else None,
            },
            "platforms": sorted(self.bot.messengers),
            "connections": connections,
            "workers": workers,
            "database": database,
            "scheduler": scheduler,
        }
        return not failed, body


def build_service(
    settings: Settings,
    *,
    clock: Callable[[], dt.datetime] = utc_now,
    tick_minutes: float = 15,
    schedule: bool = True,
) -> Service:
    """Wire everything ``serve`` runs: the bot, each enabled platform, metrics, the scheduler."""
    from dcml_bot.core.jobs import Jobs
    from dcml_bot.core.metrics import Metrics
    from dcml_bot.scheduler import Scheduler

    store = open_store(settings.database_url)
    metrics = Metrics()
    messengers: dict[str, Messenger] = {}
    starters: list[Callable[[Bot], Platform]] = []
    try:
        if settings.slack_enabled:
            # Imported only when enabled: a Feishu-only or local bot never loads the Slack SDK.
            from dcml_bot.platforms.slack.messenger import SlackMessenger, make_client
            from dcml_bot.platforms.slack.platform import SlackPlatform

            slack_config = slack_options(settings)
            slack = SlackMessenger(
                make_client(slack_config), channels=store.dm_channels("slack"), metrics=metrics
            )
            messengers["slack"] = slack
            starters.append(lambda bot: SlackPlatform(bot, metrics, slack, slack_config))
        if settings.feishu_enabled:
            # Imported only when enabled: `import lark_oapi` alone takes about 2 s.
            from dcml_bot.platforms.feishu.messenger import FeishuMessenger
            from dcml_bot.platforms.feishu.messenger import make_client as make_feishu_client
            from dcml_bot.platforms.feishu.platform import FeishuPlatform

            feishu_config = feishu_options(settings)
            feishu = FeishuMessenger(
                make_feishu_client(feishu_config), metrics=metrics, language=feishu_config.language
            )
            messengers["feishu"] = feishu
            starters.append(lambda bot: FeishuPlatform(bot, metrics, feishu, feishu_config))
        local: LocalMessenger | None = None
        local_clock: LocalClock | None = None
        if settings.local_enabled:
            local, local_clock = local_platform(settings, store, clock)
            clock = local_clock or clock
            messengers["local"] = local
        bot = build_bot(settings, messengers=messengers, clock=clock, store=store)
    except BaseException:
        store.dispose()
        raise
    platforms = [start(bot) for start in starters]
    jobs = Jobs(bot, on_report=metrics.record_report)
    if local is not None:
        from dcml_bot.platforms.local.guard import LabOptions
        from dcml_bot.platforms.local.web import LocalWebPlatform

        token = settings.local.token
        options = LabOptions(
            bind=settings.host,
            hosts=tuple(settings.local.hosts),
            token=token.get_secret_value() if token else None,
        )
        try:  # refused when it would answer beyond this machine without a token
            platforms.append(LocalWebPlatform(bot, local, jobs, local_clock, options, previewers()))
        except BaseException:
            bot.close()
            raise
    scheduler = Scheduler(jobs, settings, tick_minutes=tick_minutes) if schedule else None
    return Service(
        bot=bot,
        settings=settings,
        metrics=metrics,
        jobs=jobs,
        scheduler=scheduler,
        platforms=platforms,
    )


def previewers() -> tuple[Previewer, ...]:
    """How the local lab shows each reply: as Slack and as Feishu would receive it (no SDK)."""
    from dcml_bot.platforms.feishu.preview import preview as as_feishu
    from dcml_bot.platforms.slack.preview import preview as as_slack

    return (as_slack, as_feishu)


def local_platform(
    settings: Settings, store: Store, base: Callable[[], dt.datetime]
) -> tuple[LocalMessenger, LocalClock | None]:
    """The local platform's messenger, and the lab's movable clock when it runs alone.

    The clock is kept in the database, so the web lab and ``dcml-bot console`` agree on the
    lab's time; with a real chat platform configured the bot keeps real time (no lab clock).
    """
    from dcml_bot.platforms.local.messenger import LocalClock, LocalMessenger

    clock = None if settings.slack_enabled or settings.feishu_enabled else LocalClock(store, base)
    return LocalMessenger(store, clock or base), clock


def build_console(
    settings: Settings,
    user: str = "me",
    *,
    clock: Callable[[], dt.datetime] = utc_now,
    store: Store | None = None,
) -> Console:
    """``dcml-bot console``: the bot on the local platform, on the web lab's clock if it has one."""
    from dcml_bot.core.jobs import Jobs
    from dcml_bot.platforms.local.console import Console

    store = store or open_store(settings.database_url)
    try:
        messenger, local_clock = local_platform(settings, store, clock)
        bot = build_bot(
            settings, messengers={"local": messenger}, clock=local_clock or clock, store=store
        )
    except BaseException:
        store.dispose()
        raise
    return Console(bot, messenger, user, jobs=Jobs(bot), clock=local_clock)
