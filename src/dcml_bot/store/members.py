"""Members: who the bot knows on each platform, and their choices."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    bindparam,
    or_,
    select,
    update,
)

from dcml_bot.store.base import StoreBase, _dml, _escape_like
from dcml_bot.store.records import MemberRecord, _member
from dcml_bot.store.schema import (
    Member,
)

logger = logging.getLogger(__name__)


_MEMBER_BY_USER = select(*Member.__table__.c).where(
    Member.__table__.c.platform == bindparam("platform"),
    Member.__table__.c.user_id == bindparam("user_id"),
)


class MemberStore(StoreBase):
    """Members: created on first contact, enrolment, language, time zone."""

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

    def set_tracks(self, member_id: int, tracks: Sequence[str] | None) -> MemberRecord:
        """Set the tracks the member reads besides the common one (None: not chosen yet)."""
        if tracks is not None and any(
            not name or name != name.strip() or " " in name for name in tracks
        ):
            raise ValueError(f"track names are single words: {list(tracks)!r}")
        value = " ".join(dict.fromkeys(tracks)) if tracks is not None else None
        return self._update_member(member_id, {"tracks": value})

    def dm_channels(self, platform: str) -> DMChannelBook:
        """The platform's DM channel ids, kept with its members (for its messenger)."""
        return DMChannelBook(self, platform)

    def get_dm_channel(self, platform: str, user_id: str) -> str | None:
        """The DM channel last opened with a member, if any."""
        query = select(Member.dm_channel).where(
            Member.platform == platform, Member.user_id == user_id
        )
        with self._read.begin() as session:
            return session.execute(query).scalar_one_or_none()

    def set_dm_channel(self, platform: str, user_id: str, channel: str | None) -> bool:
        """Remember (or, with None, forget) a member's DM channel; False when no such member."""
        statement = (
            update(Member)
            .where(Member.platform == platform, Member.user_id == user_id)
            .values(dm_channel=channel)
        )
        with self._write.begin() as session:
            return _dml(session, statement).rowcount == 1

    def mark_onboarded(self, member_id: int, now: dt.datetime) -> MemberRecord:
        """Record when onboarding finished; a later call keeps the first time."""
        return self._update_member(member_id, {"onboarded_at": now}, Member.onboarded_at.is_(None))


class DMChannelBook:
    """One platform's DM channels in the store: what a messenger opened, any process reuses."""

    def __init__(self, store: MemberStore, platform: str) -> None:
        self.store = store
        self.platform = platform

    def get(self, user_id: str) -> str | None:
        """The channel opened before, if any."""
        return self.store.get_dm_channel(self.platform, user_id)

    def put(self, user_id: str, channel: str | None) -> None:
        """Remember a channel just opened (None: forget it, e.g. Slack no longer knows it)."""
        self.store.set_dm_channel(self.platform, user_id, channel)
