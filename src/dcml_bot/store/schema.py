"""SQLAlchemy models: members, reading progress, the once-only outbox, seen platform events,
notes and the lab channel's digests."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so later migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# "sent": delivered by the bot, not answered yet; the others are the member's answers.
PROGRESS_STATES = ("read", "skipped", "snoozed", "sent")
UNANSWERED_STATES = ("snoozed", "sent")
# "digest" and "note" go to a channel (the lab's digest and its thread), not to a member.
OUTBOX_KINDS = ("welcome", "weekly", "notice", "digest", "note")
OUTBOX_STATUSES = ("claimed", "sent", "failed", "dead")
# "lab": the local lab channel (its digests and their threads).
LOCAL_CHANNELS = ("dm", "chat", "lab")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as UTC and always returned as an aware UTC ``datetime``."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Reject naive datetimes and normalise aware ones to UTC."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime (UTC)")
        value = value.astimezone(dt.UTC)
        # SQLite has no time zone support: store naive UTC so text comparisons stay correct.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        """Return aware UTC datetimes on every database."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Member(Base):
    """A person on one chat platform."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("platform", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String)
    user_id: Mapped[str] = mapped_column(String)
    display_name: Mapped[str | None] = mapped_column(String)
    timezone: Mapped[str | None] = mapped_column(String)
    language: Mapped[str | None] = mapped_column(String)
    enrolled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    opted_out_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    joined_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    onboarded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The tracks the member chose, space-separated; NULL: not chosen yet (reads the common track).
    tracks: Mapped[str | None] = mapped_column(String)
    # The platform's DM channel with the member (Slack D…), once opened: no open per send.
    dm_channel: Mapped[str | None] = mapped_column(String)
    # Whether others may see that this member read a paper; NULL: the lab's default.
    share_progress: Mapped[bool | None] = mapped_column(Boolean)


class Progress(Base):
    """A member's state for one catalog item: delivered, or how they answered it."""

    __tablename__ = "progress"
    __table_args__ = (CheckConstraint(_one_of("state", PROGRESS_STATES), name="state"),)

    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(String, primary_key=True)
    state: Mapped[str] = mapped_column(String)
    # Snapshot of the title, so history survives catalog edits and removals.
    title: Mapped[str] = mapped_column(String)
    snoozed_week: Mapped[str | None] = mapped_column(String)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Outbox(Base):
    """Ledger of once-only messages: one row per welcome DM or weekly paper."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_one_of("kind", OUTBOX_KINDS), name="kind"),
        CheckConstraint(_one_of("status", OUTBOX_STATUSES), name="status"),
        Index(None, "week", "kind"),
        Index(None, "status", "retry_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String, unique=True)
    # A DM names its member; a channel post (digest, note in its thread) names the channel.
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    channel: Mapped[str | None] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String)
    week: Mapped[str | None] = mapped_column(String)
    item_id: Mapped[str | None] = mapped_column(String)
    title: Mapped[str | None] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    attempts: Mapped[int] = mapped_column(Integer)
    claimed_by: Mapped[str | None] = mapped_column(String)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    platform_message_id: Mapped[str | None] = mapped_column(String)
    last_error: Mapped[str | None] = mapped_column(Text)
    retry_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ProcessedEvent(Base):
    """A platform event id seen (platforms redeliver events); a join is kept until handled."""

    __tablename__ = "processed_events"

    platform: Mapped[str] = mapped_column(String, primary_key=True)
    event_id: Mapped[str] = mapped_column(String, primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    # An event whose effect must survive a restart (a join: its welcome) keeps its payload
    # until handled; NULL payload: only the id is kept, for the dedupe.
    kind: Mapped[str | None] = mapped_column(String)
    payload: Mapped[str | None] = mapped_column(Text)
    handled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Note(Base):
    """A member's note on a paper, kept with the item's id so it survives guide edits."""

    __tablename__ = "notes"
    __table_args__ = (Index(None, "item_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Deleted by an admin: kept for the record, never shown.
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deleted_by: Mapped[int | None] = mapped_column(Integer)


class Digest(Base):
    """The lab channel's digest of one week: the admin's pick before, the post after."""

    __tablename__ = "digests"

    platform: Mapped[str] = mapped_column(String, primary_key=True)
    channel: Mapped[str] = mapped_column(String, primary_key=True)
    week: Mapped[str] = mapped_column(String, primary_key=True)
    # An admin's "paper of the week" for this week (``/dcml digest pick``), if any.
    pick_item_id: Mapped[str | None] = mapped_column(String)
    pick_by: Mapped[int | None] = mapped_column(Integer)
    # The paper of the week the post named, and the post (its thread root) once sent.
    item_id: Mapped[str | None] = mapped_column(String)
    title: Mapped[str | None] = mapped_column(String)
    message_id: Mapped[str | None] = mapped_column(String)
    posted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class LocalMessage(Base):
    """A direct message on the built-in local platform (its own message store)."""

    __tablename__ = "local_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String, index=True)
    # The once-only key the core sent it with; the platform keeps at most one message per key.
    key: Mapped[str | None] = mapped_column(String, unique=True)
    # "dm": a direct message from the bot; "chat": a command typed on the local web page; "lab": a
    # post in the lab channel (``user_id`` holds the channel's name).
    channel: Mapped[str] = mapped_column(String, default="dm", server_default="dm")
    reply: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class LocalState(Base):
    """Small named values of the local lab (its simulated clock offset)."""

    __tablename__ = "local_state"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text)
