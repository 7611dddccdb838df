"""The one composition root: settings in, a wired bot out."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from dcml_bot.commands import Commands
from dcml_bot.delivery import Delivery
from dcml_bot.library import CatalogLibrary
from dcml_bot.onboarding import Onboarding
from dcml_bot.outbound import Messenger
from dcml_bot.profile import Profiles
from dcml_bot.settings import Settings
from dcml_bot.store import MemberRecord, Store, open_store

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
