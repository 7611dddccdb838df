"""Reading together: who shares their progress, notes on papers, the lab channel's digests."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import ColumnElement, and_, func, or_, select, update

from dcml_bot.store.base import StoreBase, _dml
from dcml_bot.store.records import DigestRecord, MemberRecord, NoteRecord, _member
from dcml_bot.store.schema import Digest, Member, Note, Progress

logger = logging.getLogger(__name__)

NOTE_MAX = 2000


def _sharing(default: bool) -> ColumnElement[bool]:
    """Members who may be named: their own choice, or the lab's default when they made none."""
    if default:
        return or_(Member.share_progress.is_(None), Member.share_progress.is_(True))
    return Member.share_progress.is_(True)


def _digest(row: Digest) -> DigestRecord:
    return DigestRecord(
        platform=row.platform,
        channel=row.channel,
        week=row.week,
        pick_item_id=row.pick_item_id,
        pick_by=row.pick_by,
        item_id=row.item_id,
        title=row.title,
        message_id=row.message_id,
        posted_at=row.posted_at,
    )


class ReadingTogetherStore(StoreBase):
    """The share switch, notes and digests."""

    def set_share_progress(self, member_id: int, share: bool | None) -> MemberRecord:
        """Set whether the member may be named as a reader (None: back to the lab default)."""
        with self._write.begin() as session:
            _dml(session, update(Member).where(Member.id == member_id).values(share_progress=share))
            return _member(
                session.execute(select(Member).where(Member.id == member_id)).scalar_one()
            )

    def readers_of(
        self,
        platform: str,
        item_id: str,
        *,
        share_default: bool,
        limit: int | None = None,
        exclude: int | None = None,
    ) -> list[MemberRecord]:
        """Members of ``platform`` who marked ``item_id`` done and may be named; latest first."""
        query = (
            select(Member)
            .join(Progress, Progress.member_id == Member.id)
            .where(
                Member.platform == platform,
                Progress.item_id == item_id,
                Progress.state == "read",
                _sharing(share_default),
            )
            .order_by(Progress.updated_at.desc(), Member.id)
        )
        if exclude is not None:
            query = query.where(Member.id != exclude)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as session:
            return [_member(row) for row in session.execute(query).scalars()]

    def add_note(self, member_id: int, item_id: str, text: str, now: dt.datetime) -> int:
        """Store a note (1..NOTE_MAX characters, already stripped by the caller); its id."""
        if not text or len(text) > NOTE_MAX:
            raise ValueError(f"a note is 1 to {NOTE_MAX} characters; got {len(text)}")
        with self._write.begin() as session:
            note = Note(member_id=member_id, item_id=item_id, text=text, created_at=now)
            session.add(note)
            session.flush()
            return note.id

    def notes_for(
        self, platform: str, item_id: str, *, share_default: bool, limit: int = 20
    ) -> list[NoteRecord]:
        """The item's notes not deleted, newest first; the author named only if they share."""
        return self._notes(
            and_(Note.item_id == item_id, Member.platform == platform), share_default, limit
        )

    def get_note(self, note_id: int, *, share_default: bool) -> NoteRecord | None:
        """One note not deleted, by id."""
        found = self._notes(Note.id == note_id, share_default, 1)
        return found[0] if found else None

    def _notes(
        self, where: ColumnElement[bool], share_default: bool, limit: int
    ) -> list[NoteRecord]:
        shares = _sharing(share_default)
        query = (
            select(Note, Member, shares.label("shares"))
            .join(Member, Member.id == Note.member_id)
            .where(where, Note.deleted_at.is_(None))
            .order_by(Note.created_at.desc(), Note.id.desc())
            .limit(limit)
        )
        with self._read() as session:
            return [
                NoteRecord(
                    id=note.id,
                    member_id=note.member_id,
                    item_id=note.item_id,
                    text=note.text,
                    created_at=note.created_at,
                    author=(member.display_name or member.user_id) if shares else None,
                )
                for note, member, shares in session.execute(query)
            ]

    def delete_note(self, note_id: int, *, by: int, now: dt.datetime) -> bool:
        """Hide a note (kept in the table); False when there is no such note shown."""
        with self._write.begin() as session:
            done = _dml(
                session,
                update(Note)
                .where(Note.id == note_id, Note.deleted_at.is_(None))
                .values(deleted_at=now, deleted_by=by),
            )
            return done.rowcount == 1

    def get_digest(self, platform: str, channel: str, week: str) -> DigestRecord | None:
        """The digest row of a channel's week, if any (a pick or a post)."""
        with self._read() as session:
            row = session.get(Digest, (platform, channel, week))
            return None if row is None else _digest(row)

    def pick_digest_item(
        self, platform: str, channel: str, week: str, item_id: str, *, by: int
    ) -> DigestRecord:
        """Set the admin's paper of the week for a channel's week."""
        insert = self._insert(Digest).values(
            platform=platform, channel=channel, week=week, pick_item_id=item_id, pick_by=by
        )
        with self._write.begin() as session:
            _dml(
                session,
                insert.on_conflict_do_update(
                    index_elements=["platform", "channel", "week"],
                    set_={"pick_item_id": item_id, "pick_by": by},
                ),
            )
            return _digest(
                session.get_one(Digest, (platform, channel, week), populate_existing=True)
            )

    def record_digest_post(
        self,
        platform: str,
        channel: str,
        week: str,
        *,
        item_id: str | None,
        title: str | None,
        message_id: str,
        now: dt.datetime,
    ) -> None:
        """Remember the week's post: the paper it named and the message its thread hangs on."""
        values = {"item_id": item_id, "title": title, "message_id": message_id, "posted_at": now}
        insert = self._insert(Digest).values(
            platform=platform, channel=channel, week=week, **values
        )
        with self._write.begin() as session:
            _dml(
                session,
                insert.on_conflict_do_update(
                    index_elements=["platform", "channel", "week"], set_=values
                ),
            )

    def thread_for_item(self, platform: str, channel: str, item_id: str) -> DigestRecord | None:
        """The latest posted digest of the channel whose paper of the week is ``item_id``."""
        query = (
            select(Digest)
            .where(
                Digest.platform == platform,
                Digest.channel == channel,
                Digest.item_id == item_id,
                Digest.message_id.is_not(None),
            )
            .order_by(Digest.posted_at.desc())
            .limit(1)
        )
        with self._read() as session:
            row = session.execute(query).scalar_one_or_none()
            return None if row is None else _digest(row)

    def count_notes(self, item_id: str) -> int:
        """How many notes an item has (deleted ones not counted)."""
        query = select(func.count()).where(Note.item_id == item_id, Note.deleted_at.is_(None))
        with self._read() as session:
            return int(session.execute(query).scalar_one())
