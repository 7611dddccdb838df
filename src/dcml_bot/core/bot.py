"""The Bot facade the platforms talk to: the core's services, wired once by the app."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from dcml_bot.core.attention import Attention
from dcml_bot.core.commands.table import Commands
from dcml_bot.core.delivery import Delivery
from dcml_bot.core.digest import DigestService
from dcml_bot.core.library import CatalogLibrary
from dcml_bot.core.notes import Notes
from dcml_bot.core.notices import AdminNotices
from dcml_bot.core.onboarding import Onboarding
from dcml_bot.core.once import worker_id as worker_id  # the ledger's name for this process
from dcml_bot.core.outbound import Messenger
from dcml_bot.core.profile import Profiles
from dcml_bot.store import MemberRecord, Store


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class LabPolicy:
    """The lab-wide rules the core applies (taken from the settings by the app)."""

    catch_up: bool = True


@dataclass
class Bot:
    """Everything the platforms and the CLI need, built once by the composition root."""

    store: Store
    library: CatalogLibrary
    profiles: Profiles
    delivery: Delivery
    onboarding: Onboarding
    commands: Commands
    notices: AdminNotices
    messengers: dict[str, Messenger]
    notes: Notes  # its ``on_added`` hook hears of every note saved
    digest: DigestService
    attention: Attention
    policy: LabPolicy = field(default_factory=LabPolicy)
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
        """Stop posting notes in threads and release the database."""
        self.digest.close()
        self.store.dispose()
