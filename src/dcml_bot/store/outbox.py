"""The once-only outbox: claims with leases, then sent, failed or dead."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import (
    ColumnElement,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from dcml_bot.store.base import _IN_BATCH, DEFAULT_LEASE, StoreBase, _check, _dml, _due
from dcml_bot.store.records import Claim, OutboxRecord, _claim, _outbox
from dcml_bot.store.schema import (
    OUTBOX_KINDS,
    OUTBOX_STATUSES,
    PROGRESS_STATES,
    UNANSWERED_STATES,
    Outbox,
    Progress,
)

logger = logging.getLogger(__name__)


def _mark_sent(
    session: Session, key: str, worker: str, platform_message_id: str | None, now: dt.datetime
) -> bool:
    statement = (
        update(Outbox)
        .where(Outbox.key == key, Outbox.status != "sent")
        .values(
            status="sent",
            sent_at=now,
            platform_message_id=platform_message_id,
            claimed_by=worker,
            lease_until=None,
            retry_at=None,
        )
    )
    return _dml(session, statement).rowcount == 1


def _take_overs(
    session: Session, key: str, now: dt.datetime, holder_gone: Callable[[str], bool] | None
) -> Iterator[tuple[bool, ColumnElement[bool]]]:
    """The states a claim may take a row over from, as (recovered, condition), in order."""
    yield True, and_(Outbox.status == "claimed", _due(Outbox.lease_until, now))
    yield False, and_(Outbox.status == "failed", _due(Outbox.retry_at, now))
    if holder_gone is None:
        return
    held = session.execute(
        select(Outbox.claimed_by, Outbox.lease_until, Outbox.attempts).where(
            Outbox.key == key, Outbox.status == "claimed"
        )
    ).first()
    if held is None or held.claimed_by is None or not holder_gone(held.claimed_by):
        return
    logger.info("outbox %s: its holder %s has ended", key, held.claimed_by)
    # Only the very claim seen to be orphaned: if another caller took it over meanwhile, its
    # holder, lease and attempt count differ and this UPDATE matches nothing.
    yield (
        True,
        and_(
            Outbox.status == "claimed",
            Outbox.claimed_by == held.claimed_by,
            Outbox.lease_until == held.lease_until,
            Outbox.attempts == held.attempts,
        ),
    )


class OutboxStore(StoreBase):
    """The ledger of once-only messages (welcome, weekly, notice)."""

    def claim(
        self,
        key: str,
        *,
        member_id: int | None,
        kind: str,
        channel: str | None = None,
        week: str | None = None,
        item_id: str | None = None,
        title: str | None = None,
        worker: str,
        now: dt.datetime,
        lease: dt.timedelta = DEFAULT_LEASE,
        holder_gone: Callable[[str], bool] | None = None,
    ) -> Claim | None:
        """Atomically take the right to send message ``key``, or return None if not allowed.

        New key: inserted as claimed. Existing row: sent/dead or validly claimed -> None;
        claimed with an expired lease, or by a holder ``holder_gone`` says is gone -> taken
        over with ``recovered=True``; failed and due (retry_at null or <= now) -> taken over.
        Item and title of an existing row win over the arguments. Exactly one of any number of
        concurrent callers gets a Claim.
        """
        _check("kind", kind, OUTBOX_KINDS)
        if (member_id is None) == (channel is None):
            raise ValueError("an outbox row is a DM (member_id) or a channel post (channel)")
        if lease <= dt.timedelta(0):
            raise ValueError("lease must be positive")
        lease_until = now + lease
        insert = self._insert(Outbox).values(
            key=key,
            member_id=member_id,
            channel=channel,
            kind=kind,
            week=week,
            item_id=item_id,
            title=title,
            status="claimed",
            attempts=1,
            claimed_by=worker,
            lease_until=lease_until,
            created_at=now,
        )
        take_over = {
            "status": "claimed",
            "attempts": Outbox.attempts + 1,
            "claimed_by": worker,
            "lease_until": lease_until,
            "retry_at": None,
        }
        with self._write.begin() as session:
            statement = insert.on_conflict_do_nothing(index_elements=["key"]).returning(Outbox.id)
            if _dml(session, statement).first() is not None:
                return Claim(
                    key=key,
                    member_id=member_id,
                    kind=kind,
                    week=week,
                    item_id=item_id,
                    title=title,
                    attempts=1,
                    worker=worker,
                    lease_until=lease_until,
                    created_at=now,
                    recovered=False,
                )
            # Each UPDATE re-checks the state it takes over from, so only one caller can win
            # even on PostgreSQL, where this transaction does not lock the row in advance.
            for recovered, condition in _take_overs(session, key, now, holder_gone):
                taken = _dml(
                    session, update(Outbox).where(Outbox.key == key, condition).values(**take_over)
                )
                if taken.rowcount == 1:
                    # populate_existing: never build the claim from a stale identity-map copy.
                    query = select(Outbox).where(Outbox.key == key)
                    row = session.execute(
                        query.execution_options(populate_existing=True)
                    ).scalar_one()
                    logger.info(
                        "worker %s took over outbox %s (attempt %d, recovered=%s)",
                        worker,
                        key,
                        row.attempts,
                        recovered,
                    )
                    return _claim(row, recovered=recovered)
            return None

    def mark_sent(
        self,
        key: str,
        *,
        worker: str,
        platform_message_id: str | None = None,
        now: dt.datetime,
    ) -> bool:
        """Record that the message went out; return whether the row changed.

        Accepted from any worker and from any status but "sent": delivery is a fact, and
        recording it even after a lease was lost (or a later attempt failed) is what prevents
        another retry. Returns False if the key is unknown or already sent.
        """
        with self._write.begin() as session:
            changed = _mark_sent(session, key, worker, platform_message_id, now)
        if not changed:
            logger.info("outbox %s: mark_sent by %s changed nothing", key, worker)
        return changed

    def confirm_sent(
        self,
        key: str,
        *,
        worker: str,
        platform_message_id: str | None = None,
        member_id: int,
        item_id: str,
        title: str,
        state: str = "sent",
        week: str | None = None,
        now: dt.datetime,
    ) -> bool:
        """``mark_sent`` plus the item's progress row, in one transaction.

        The progress row (normally state "sent": delivered, not yet answered) is written
        unless the member already answered the item (read/skipped), so a late confirmation
        never undoes a reply. ``week`` is stored only for state "snoozed". Returns whether the
        outbox row changed.
        """
        _check("state", state, PROGRESS_STATES)
        values = {
            "state": state,
            "title": title,
            "snoozed_week": week if state == "snoozed" else None,
            "updated_at": now,
        }
        insert = self._insert(Progress).values(member_id=member_id, item_id=item_id, **values)
        with self._write.begin() as session:
            changed = _mark_sent(session, key, worker, platform_message_id, now)
            _dml(
                session,
                insert.on_conflict_do_update(
                    index_elements=["member_id", "item_id"],
                    set_=values,
                    where=Progress.state.in_(UNANSWERED_STATES),
                ),
            )
        if not changed:
            logger.info("outbox %s: confirm_sent by %s changed nothing", key, worker)
        return changed

    def mark_failed(
        self,
        key: str,
        *,
        worker: str,
        error: str,
        retry_at: dt.datetime | None,
        dead: bool = False,
        now: dt.datetime,
    ) -> bool:
        """Record a failed attempt (``dead`` = never retry); return whether the row changed.

        Only the current holder of the claim may do this, so a worker whose lease was taken
        over cannot overwrite the newer attempt. ``retry_at=None`` means retry at once.
        """
        with self._write.begin() as session:
            result = _dml(
                session,
                update(Outbox)
                .where(
                    Outbox.key == key,
                    Outbox.status == "claimed",
                    Outbox.claimed_by == worker,
                )
                .values(
                    status="dead" if dead else "failed",
                    last_error=error,
                    retry_at=None if dead else retry_at,
                    lease_until=None,
                ),
            )
            changed = result.rowcount == 1
        if changed:
            logger.info("outbox %s failed at %s (dead=%s): %s", key, now.isoformat(), dead, error)
        else:
            logger.warning("outbox %s: mark_failed by %s ignored (not its claim)", key, worker)
        return changed

    def get_outbox(self, key: str) -> OutboxRecord | None:
        """Return the outbox row for ``key``, if any."""
        with self._read.begin() as session:
            row = session.execute(select(Outbox).where(Outbox.key == key)).scalar_one_or_none()
            return None if row is None else _outbox(row)

    def outbox_for_keys(self, keys: Iterable[str]) -> dict[str, OutboxRecord]:
        """Return the outbox rows of these keys, keyed by key (unknown keys are left out)."""
        wanted = sorted(set(keys))
        rows: dict[str, OutboxRecord] = {}
        with self._read.begin() as session:
            for start in range(0, len(wanted), _IN_BATCH):
                query = select(Outbox).where(Outbox.key.in_(wanted[start : start + _IN_BATCH]))
                rows.update((row.key, _outbox(row)) for row in session.execute(query).scalars())
        return rows

    def due_retries(self, now: dt.datetime, kind: str | None = None) -> list[OutboxRecord]:
        """Return rows to try again: failed and due, or claimed with an expired lease."""
        query = (
            select(Outbox)
            .where(
                or_(
                    and_(Outbox.status == "failed", _due(Outbox.retry_at, now)),
                    and_(Outbox.status == "claimed", _due(Outbox.lease_until, now)),
                )
            )
            .order_by(Outbox.id)
        )
        if kind is not None:
            query = query.where(Outbox.kind == kind)
        with self._read.begin() as session:
            return [_outbox(row) for row in session.execute(query).scalars()]

    def outbox_stats(self, week: str) -> dict[str, int]:
        """Return status -> count (every status present) for the week's outbox rows."""
        query = (
            select(Outbox.status, func.count()).where(Outbox.week == week).group_by(Outbox.status)
        )
        stats = dict.fromkeys(OUTBOX_STATUSES, 0)
        with self._read.begin() as session:
            for status, count in session.execute(query):
                stats[status] = count
        return stats
