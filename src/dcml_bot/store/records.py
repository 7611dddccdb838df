"""Plain frozen records the store returns, and their conversion from rows."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from dcml_bot.store.schema import (
    Member,
    Outbox,
    Progress,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A member as stored."""

    id: int
    platform: str
    user_id: str
    display_name: str | None
    timezone: str | None
    language: str | None
    enrolled: bool
    opted_out_at: dt.datetime | None
    joined_at: dt.datetime
    onboarded_at: dt.datetime | None
    tracks: tuple[str, ...] | None = None  # None: not chosen yet
    share_progress: bool | None = None  # None: the lab's default


@dataclass(frozen=True, slots=True)
class LocalMessageRecord:
    """A message of the built-in local platform."""

    id: int
    user_id: str
    key: str | None
    reply: str
    created_at: dt.datetime
    updated_at: dt.datetime
    channel: str = "dm"


@dataclass(frozen=True, slots=True)
class ProgressRecord:
    """A member's state for one catalog item."""

    member_id: int
    item_id: str
    state: str
    title: str
    snoozed_week: str | None
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One row of the once-only message ledger."""

    id: int
    key: str
    member_id: int | None  # None: a post to ``channel``
    kind: str
    week: str | None
    item_id: str | None
    title: str | None
    status: str
    attempts: int
    claimed_by: str | None
    lease_until: dt.datetime | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    platform_message_id: str | None
    last_error: str | None
    retry_at: dt.datetime | None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """The right to send one outbox message, held by ``worker`` until ``lease_until``.

    ``recovered`` means an earlier worker's lease expired before it confirmed: the message
    may already have gone out, so ask the platform before sending again.
    """

    key: str
    member_id: int | None
    kind: str
    week: str | None
    item_id: str | None
    title: str | None
    attempts: int
    worker: str
    lease_until: dt.datetime
    created_at: dt.datetime
    recovered: bool


def _member(row: Member) -> MemberRecord:
    return MemberRecord(
        id=row.id,
        platform=row.platform,
        user_id=row.user_id,
        display_name=row.display_name,
        timezone=row.timezone,
        language=row.language,
        enrolled=row.enrolled,
        opted_out_at=row.opted_out_at,
        joined_at=row.joined_at,
        onboarded_at=row.onboarded_at,
        tracks=tuple(row.tracks.split()) if row.tracks is not None else None,
        share_progress=row.share_progress,
    )


# In ProgressRecord's field order.
_PROGRESS_COLUMNS = (
    Progress.member_id,
    Progress.item_id,
    Progress.state,
    Progress.title,
    Progress.snoozed_week,
    Progress.updated_at,
)


def _progress(row: Progress) -> ProgressRecord:
    return ProgressRecord(
        member_id=row.member_id,
        item_id=row.item_id,
        state=row.state,
        title=row.title,
        snoozed_week=row.snoozed_week,
        updated_at=row.updated_at,
    )


def _outbox(row: Outbox) -> OutboxRecord:
    return OutboxRecord(
        id=row.id,
        key=row.key,
        member_id=row.member_id,
        kind=row.kind,
        week=row.week,
        item_id=row.item_id,
        title=row.title,
        status=row.status,
        attempts=row.attempts,
        claimed_by=row.claimed_by,
        lease_until=row.lease_until,
        created_at=row.created_at,
        sent_at=row.sent_at,
        platform_message_id=row.platform_message_id,
        last_error=row.last_error,
        retry_at=row.retry_at,
        channel=row.channel,
    )


def _claim(row: Outbox, *, recovered: bool) -> Claim:
    assert row.claimed_by is not None and row.lease_until is not None
    return Claim(
        key=row.key,
        member_id=row.member_id,
        kind=row.kind,
        week=row.week,
        item_id=row.item_id,
        title=row.title,
        attempts=row.attempts,
        worker=row.claimed_by,
        lease_until=row.lease_until,
        created_at=row.created_at,
        recovered=recovered,
    )


@dataclass(frozen=True)
class PendingEvent:
    """An event received but not handled yet (the process stopped first)."""

    event_id: str
    kind: str
    payload: str
    received_at: dt.datetime


@dataclass(frozen=True, slots=True)
class NoteRecord:
    """A member's note on a paper, with its author's name and share setting."""

    id: int
    member_id: int
    item_id: str
    text: str
    created_at: dt.datetime
    author: str | None  # the display name (or user id) when the author shares, else None


@dataclass(frozen=True, slots=True)
class DigestRecord:
    """One week's digest of one lab channel."""

    platform: str
    channel: str
    week: str
    pick_item_id: str | None
    pick_by: int | None
    item_id: str | None
    title: str | None
    message_id: str | None
    posted_at: dt.datetime | None
