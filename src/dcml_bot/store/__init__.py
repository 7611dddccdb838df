"""Persistence: members, reading progress, processed events and the once-only outbox."""

from dcml_bot.store.database import make_engine, upgrade
from dcml_bot.store.records import (
    Claim,
    DigestRecord,
    LocalMessageRecord,
    MemberRecord,
    NoteRecord,
    OutboxRecord,
    PendingEvent,
    ProgressRecord,
)
from dcml_bot.store.repository import Store, open_store

__all__ = [
    "Claim",
    "DigestRecord",
    "LocalMessageRecord",
    "MemberRecord",
    "NoteRecord",
    "OutboxRecord",
    "PendingEvent",
    "ProgressRecord",
    "Store",
    "make_engine",
    "open_store",
    "upgrade",
]
