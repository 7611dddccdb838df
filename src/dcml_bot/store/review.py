"""What the weekly digest and the admins' needs-attention list read: a week's newcomers and
reads, each member's last answer, members a DM cannot reach; reopening a dead post."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import func, select, update

from dcml_bot.store.base import StoreBase, _dml
from dcml_bot.store.records import (
    _PROGRESS_COLUMNS,
    MemberRecord,
    OutboxRecord,
    ProgressRecord,
    _member,
    _outbox,
)
from dcml_bot.store.schema import Member, Outbox, Progress

logger = logging.getLogger(__name__)

# The member DMs whose last failure says the member cannot be reached (notices go to admins).
DM_KINDS = ("welcome", "weekly")
ANSWERS = ("read", "skipped")
# How a dead row that was dropped (nothing left to send) reads: not a failure to reach anyone.
DROPPED_ERROR = "dropped:%"


class ReviewStore(StoreBase):
    """Read-mostly queries over members, progress and the outbox for the lab's weekly review."""

    def onboarded_between(
        self, platform: str, start: dt.datetime, end: dt.datetime
    ) -> list[MemberRecord]:
        """Members of ``platform`` welcomed in ``[start, end)``, in the order they were."""
        query = (
            select(Member)
            .where(
                Member.platform == platform,
                Member.onboarded_at >= start,
                Member.onboarded_at < end,
            )
            .order_by(Member.onboarded_at, Member.id)
        )
        with self._read() as session:
            return [_member(row) for row in session.execute(query).scalars()]

    def reads_between(
        self, platform: str, start: dt.datetime, end: dt.datetime
    ) -> list[ProgressRecord]:
        """Items members of ``platform`` marked done in ``[start, end)``, oldest first."""
        query = (
            select(*_PROGRESS_COLUMNS)
            .join(Member, Member.id == Progress.member_id)
            .where(
                Member.platform == platform,
                Progress.state == "read",
                Progress.updated_at >= start,
                Progress.updated_at < end,
            )
            .order_by(Progress.updated_at, Progress.member_id, Progress.item_id)
        )
        with self._read() as session:
            return [ProgressRecord(*row) for row in session.execute(query)]

    def last_answers(self) -> dict[int, dt.datetime]:
        """Member id -> when they last marked an item done or skipped (members who never did are
        left out)."""
        query = (
            select(Progress.member_id, func.max(Progress.updated_at))
            .where(Progress.state.in_(ANSWERS))
            .group_by(Progress.member_id)
        )
        with self._read() as session:
            return {member_id: when for member_id, when in session.execute(query)}

    def undeliverable(self) -> list[tuple[MemberRecord, OutboxRecord]]:
        """Members whose latest welcome or weekly DM failed for good (not dropped), with it."""
        latest = (
            select(Outbox.member_id, func.max(Outbox.id).label("id"))
            .where(Outbox.member_id.is_not(None), Outbox.kind.in_(DM_KINDS))
            .group_by(Outbox.member_id)
            .subquery()
        )
        query = (
            select(Member, Outbox)
            .join(latest, latest.c.member_id == Member.id)
            .join(Outbox, Outbox.id == latest.c.id)
            .where(
                Outbox.status == "dead",
                Outbox.last_error.is_(None) | Outbox.last_error.not_like(DROPPED_ERROR),
            )
            .order_by(Member.id)
        )
        with self._read() as session:
            return [(_member(member), _outbox(row)) for member, row in session.execute(query)]

    def reopen(self, key: str) -> bool:
        """Make a dead outbox row due again (an admin's explicit retry); False when it is not
        dead (unknown, sent, failed or held)."""
        statement = (
            update(Outbox)
            .where(Outbox.key == key, Outbox.status == "dead")
            .values(status="failed", retry_at=None, lease_until=None)
        )
        with self._write.begin() as session:
            reopened = _dml(session, statement).rowcount == 1
        if reopened:
            logger.info("outbox %s reopened for another attempt", key)
        return reopened
