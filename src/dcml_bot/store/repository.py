"""The ``Store``: short transactions over the schema, returning plain frozen records."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Engine,
    Executable,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from dcml_bot.store.database import single_reader, writer
from dcml_bot.store.schema import (
    LOCAL_CHANNELS,
    OUTBOX_KINDS,
    OUTBOX_STATUSES,
    PROGRESS_STATES,
    UNANSWERED_STATES,
    LocalMessage,
    LocalState,
    Member,
    Outbox,
    ProcessedEvent,
    Progress,
)

logger = logging.getLogger(__name__)

_MEMBER_BY_USER = select(*Member.__table__.c).where(
    Member.__table__.c.platform == bindparam("platform"),
    Member.__table__.c.user_id == bindparam("user_id"),
)

DEFAULT_LEASE = dt.timedelta(minutes=5)
# Ids per IN (...) list: below the 999 bound parameters older SQLite builds allow.
_IN_BATCH = 900


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
    member_id: int
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


@dataclass(frozen=True, slots=True)
class Claim:
    """The right to send one outbox message, held by ``worker`` until ``lease_until``.

    ``recovered`` means an earlier worker's lease expired before it confirmed: the message
    may already have gone out, so ask the platform before sending again.
    """

    key: str
    member_id: int
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


def _dml(session: Session, statement: Executable) -> CursorResult[Any]:
    """Run INSERT/UPDATE/DELETE as Core on the session's connection (no ORM bulk semantics)."""
    return session.connection().execute(statement)


def _check(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _due(
    column: InstrumentedAttribute[dt.datetime | None], now: dt.datetime
) -> ColumnElement[bool]:
    """True when ``column`` is unset or not after ``now``."""
    return or_(column.is_(None), column <= now)


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


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Store:
    """Persistence for members, progress, processed events and the outbox.

    Every method runs in its own short transaction. On SQLite, writing methods start with
    BEGIN IMMEDIATE (see ``database.writer``), so their read-then-write steps cannot interleave
    with another process's; that needs an engine from ``database.make_engine``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database dialect {self._dialect!r}")
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(writer(engine), expire_on_commit=False)
        self._single = single_reader(engine)

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()

    def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
        except Exception:
            logger.warning("database ping failed", exc_info=True)
            return False
        return True

    def _insert(self, model: type[Any]) -> postgresql.Insert | sqlite.Insert:
        if self._dialect == "postgresql":
            return postgresql.insert(model)
        return sqlite.insert(model)

    # Members

    def upsert_member(
        self,
        platform: str,
        user_id: str,
        *,
        display_name: str | None = None,
        timezone: str | None = None,
        language: str | None = None,
        now: dt.datetime,
    ) -> MemberRecord:
        """Create the member (joined now) or update only the given non-None fields."""
        given = {
            name: value
            for name, value in (
                ("display_name", display_name),
                ("timezone", timezone),
                ("language", language),
            )
            if value is not None
        }
        insert = self._insert(Member).values(
            platform=platform, user_id=user_id, enrolled=False, joined_at=now, **given
        )
        where = (Member.platform == platform, Member.user_id == user_id)
        with self._write.begin() as session:
            inserted = _dml(
                session,
                insert.on_conflict_do_nothing(index_elements=["platform", "user_id"]).returning(
                    Member.id
                ),
            ).first()
            if inserted is None and given:
                _dml(session, update(Member).where(*where).values(**given))
            return _member(session.execute(select(Member).where(*where)).scalar_one())

    def get_member(self, platform: str, user_id: str) -> MemberRecord | None:
        """Return the member with this platform user id, if any."""
        # Core and a prebuilt statement: this runs on every command, and building the statement
        # or opening an ORM session costs more than the query itself.
        with self._single.connect() as connection:
            row = connection.execute(
                _MEMBER_BY_USER, {"platform": platform, "user_id": user_id}
            ).first()
        return None if row is None else _member(row)  # type: ignore[arg-type]

    def get_member_by_id(self, member_id: int) -> MemberRecord | None:
        """Return the member with this id, if any."""
        with self._read.begin() as session:
            row = session.get(Member, member_id)
            return None if row is None else _member(row)

    def list_members(
        self, *, platform: str | None = None, enrolled: bool | None = None
    ) -> list[MemberRecord]:
        """Return members, optionally filtered, ordered by id."""
        query = select(Member).order_by(Member.id)
        if platform is not None:
            query = query.where(Member.platform == platform)
        if enrolled is not None:
            query = query.where(Member.enrolled == enrolled)
        with self._read.begin() as session:
            return [_member(row) for row in session.execute(query).scalars()]

    def find_members(self, platform: str, text: str) -> list[MemberRecord]:
        """Return members whose user id or display name contains ``text``, ignoring case."""
        pattern = f"%{_escape_like(text)}%"
        query = (
            select(Member)
            .where(
                Member.platform == platform,
                or_(
                    Member.user_id.ilike(pattern, escape="\\"),
                    Member.display_name.ilike(pattern, escape="\\"),
                ),
            )
            .order_by(Member.id)
        )
        with self._read.begin() as session:
            return [_member(row) for row in session.execute(query).scalars()]

    def _update_member(
        self, member_id: int, values: dict[str, Any], *extra: ColumnElement[bool]
    ) -> MemberRecord:
        with self._write.begin() as session:
            _dml(session, update(Member).where(Member.id == member_id, *extra).values(**values))
            row = session.get(Member, member_id)
            if row is None:
                raise LookupError(f"no member with id {member_id}")
            return _member(row)

    def set_enrolled(self, member_id: int, enrolled: bool, now: dt.datetime) -> MemberRecord:
        """Enrol (clearing opted_out_at) or opt out (opted_out_at = now)."""
        return self._update_member(
            member_id, {"enrolled": enrolled, "opted_out_at": None if enrolled else now}
        )

    def set_language(self, member_id: int, language: str | None) -> MemberRecord:
        """Set the member's language ("en"/"zh"; None = platform default)."""
        return self._update_member(member_id, {"language": language})

    def set_timezone(self, member_id: int, timezone: str | None) -> MemberRecord:
        """Set the member's IANA time zone (None = the lab's)."""
        return self._update_member(member_id, {"timezone": timezone})

    def mark_onboarded(self, member_id: int, now: dt.datetime) -> MemberRecord:
        """Record when onboarding finished; a later call keeps the first time."""
        return self._update_member(member_id, {"onboarded_at": now}, Member.onboarded_at.is_(None))

    # Progress

    def set_progress(
        self,
        member_id: int,
        item_id: str,
        state: str,
        *,
        title: str,
        week: str | None = None,
        now: dt.datetime,
    ) -> ProgressRecord:
        """Insert or replace the member's state for an item; ``week`` is required for snoozes."""
        _check("state", state, PROGRESS_STATES)
        if state == "snoozed" and week is None:
            raise ValueError("a snooze needs the ISO week it was pressed in (week=...)")
        values = {
            "state": state,
            "title": title,
            "snoozed_week": week if state == "snoozed" else None,
            "updated_at": now,
        }
        insert = self._insert(Progress).values(member_id=member_id, item_id=item_id, **values)
        with self._write.begin() as session:
            _dml(
                session,
                insert.on_conflict_do_update(index_elements=["member_id", "item_id"], set_=values),
            )
            row = session.get(Progress, (member_id, item_id))
            assert row is not None
            return _progress(row)

    def clear_progress(self, member_id: int, item_id: str) -> bool:
        """Forget the member's state for an item; return whether there was one."""
        with self._write.begin() as session:
            row = session.get(Progress, (member_id, item_id))
            if row is None:
                return False
            session.delete(row)
            return True

    def progress_for(self, member_id: int) -> dict[str, ProgressRecord]:
        """Return the member's progress keyed by item id."""
        query = select(Progress).where(Progress.member_id == member_id).order_by(Progress.item_id)
        with self._read.begin() as session:
            return {row.item_id: _progress(row) for row in session.execute(query).scalars()}

    def progress_for_members(
        self, member_ids: Iterable[int]
    ) -> dict[int, dict[str, ProgressRecord]]:
        """Return member id -> item id -> progress for the given members ({} for none yet)."""
        ids = sorted(set(member_ids))
        progress: dict[int, dict[str, ProgressRecord]] = {member_id: {} for member_id in ids}
        with self._read.begin() as session:
            for start in range(0, len(ids), _IN_BATCH):
                query = (
                    select(*_PROGRESS_COLUMNS)
                    .where(Progress.member_id.in_(ids[start : start + _IN_BATCH]))
                    .order_by(Progress.member_id, Progress.item_id)
                )
                # Plain columns, not ORM objects: this is the hot path of a weekly run.
                for row in session.execute(query):
                    record = ProgressRecord(*row)
                    progress[record.member_id][record.item_id] = record
        return progress

    def progress_counts(self) -> dict[int, dict[str, int]]:
        """Return member id -> state -> count (every state present) for members with progress."""
        query = select(Progress.member_id, Progress.state, func.count()).group_by(
            Progress.member_id, Progress.state
        )
        counts: dict[int, dict[str, int]] = {}
        with self._read.begin() as session:
            for member_id, state, count in session.execute(query):
                counts.setdefault(member_id, dict.fromkeys(PROGRESS_STATES, 0))[state] = count
        return counts

    # Processed platform events

    def record_event(self, platform: str, event_id: str, now: dt.datetime) -> bool:
        """Return True the first time (platform, event_id) is recorded, False for repeats."""
        insert = self._insert(ProcessedEvent).values(
            platform=platform, event_id=event_id, received_at=now
        )
        with self._write.begin() as session:
            # RETURNING, not rowcount: drivers need not report rowcount for INSERT.
            statement = insert.on_conflict_do_nothing(
                index_elements=["platform", "event_id"]
            ).returning(ProcessedEvent.event_id)
            return _dml(session, statement).first() is not None

    def prune_events(self, older_than: dt.datetime) -> int:
        """Forget events received before ``older_than``; return how many."""
        with self._write.begin() as session:
            statement = delete(ProcessedEvent).where(ProcessedEvent.received_at < older_than)
            return _dml(session, statement).rowcount

    # Outbox

    def claim(
        self,
        key: str,
        *,
        member_id: int,
        kind: str,
        week: str | None = None,
        item_id: str | None = None,
        title: str | None = None,
        worker: str,
        now: dt.datetime,
        lease: dt.timedelta = DEFAULT_LEASE,
    ) -> Claim | None:
        """Atomically take the right to send message ``key``, or return None if not allowed.

        New key: inserted as claimed. Existing row: sent/dead or validly claimed -> None;
        claimed with an expired lease -> taken over with ``recovered=True``; failed and due
        (retry_at null or <= now) -> taken over. Item and title of an existing row win over
        the arguments. Exactly one of any number of concurrent callers gets a Claim.
        """
        _check("kind", kind, OUTBOX_KINDS)
        if lease <= dt.timedelta(0):
            raise ValueError("lease must be positive")
        lease_until = now + lease
        insert = self._insert(Outbox).values(
            key=key,
            member_id=member_id,
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
            for recovered, condition in (
                (True, and_(Outbox.status == "claimed", _due(Outbox.lease_until, now))),
                (False, and_(Outbox.status == "failed", _due(Outbox.retry_at, now))),
            ):
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

    def outbox_for_week(self, week: str, kind: str = "weekly") -> list[OutboxRecord]:
        """Return the week's outbox rows of one kind, oldest first."""
        query = select(Outbox).where(Outbox.week == week, Outbox.kind == kind).order_by(Outbox.id)
        with self._read.begin() as session:
            return [_outbox(row) for row in session.execute(query).scalars()]

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

    # The built-in local platform's messages

    def local_post(
        self,
        user_id: str,
        reply: str,
        *,
        key: str | None,
        now: dt.datetime,
        channel: str = "dm",
    ) -> tuple[int, bool]:
        """Store a local DM; with a key already used, keep the first. Returns (id, created)."""
        _check("channel", channel, LOCAL_CHANNELS)
        insert = self._insert(LocalMessage).values(
            user_id=user_id, key=key, channel=channel, reply=reply, created_at=now, updated_at=now
        )
        with self._write.begin() as session:
            if key is None:
                return _dml(session, insert.returning(LocalMessage.id)).scalar_one(), True
            created = _dml(
                session,
                insert.on_conflict_do_nothing(index_elements=["key"]).returning(LocalMessage.id),
            ).first()
            if created is not None:
                return int(created[0]), True
            existing = session.scalar(select(LocalMessage.id).where(LocalMessage.key == key))
            assert existing is not None
            return existing, False

    def local_find(self, key: str) -> int | None:
        """The id of the local message sent with this key, if any."""
        with self._read.begin() as session:
            return session.scalar(select(LocalMessage.id).where(LocalMessage.key == key))

    def local_update(self, message_id: int, reply: str, now: dt.datetime) -> bool:
        """Rewrite a local message (a pressed button shows the choice); return whether it exists."""
        statement = (
            update(LocalMessage)
            .where(LocalMessage.id == message_id)
            .values(reply=reply, updated_at=now)
        )
        with self._write.begin() as session:
            return bool(_dml(session, statement).rowcount)

    def local_messages(
        self, user_id: str | None = None, *, channel: str | None = None
    ) -> list[LocalMessageRecord]:
        """Local messages, oldest first, for one user or everyone, in one channel or all."""
        query = select(LocalMessage).order_by(LocalMessage.id)
        if user_id is not None:
            query = query.where(LocalMessage.user_id == user_id)
        if channel is not None:
            query = query.where(LocalMessage.channel == channel)
        with self._read.begin() as session:
            return [
                LocalMessageRecord(
                    id=row.id,
                    user_id=row.user_id,
                    key=row.key,
                    reply=row.reply,
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                    channel=row.channel,
                )
                for row in session.scalars(query)
            ]

    def local_get(self, name: str) -> str | None:
        """A named value of the local lab, if set."""
        with self._read.begin() as session:
            return session.scalar(select(LocalState.value).where(LocalState.name == name))

    def local_set(self, name: str, value: str) -> None:
        """Set a named value of the local lab."""
        insert = self._insert(LocalState).values(name=name, value=value)
        with self._write.begin() as session:
            _dml(
                session,
                insert.on_conflict_do_update(index_elements=["name"], set_={"value": value}),
            )
