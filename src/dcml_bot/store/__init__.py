"""Persistence: members, reading progress, processed events and the once-only outbox."""

from dcml_bot.store.database import make_engine, open_store, upgrade
from dcml_bot.store.repository import (
    Claim,
    LocalMessageRecord,
    MemberRecord,
    OutboxRecord,
    ProgressRecord,
    Store,
)

__all__ = [
    "Claim",
    "LocalMessageRecord",
    "MemberRecord",
    "OutboxRecord",
    "ProgressRecord",
    "Store",
    "make_engine",
    "open_store",
    "upgrade",
]
