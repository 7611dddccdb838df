"""The built-in local platform's messages and state."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import (
    select,
    update,
)

from dcml_bot.store.base import StoreBase, _check, _dml
from dcml_bot.store.records import LocalMessageRecord
from dcml_bot.store.schema import (
    LOCAL_CHANNELS,
    LocalMessage,
    LocalState,
)

logger = logging.getLogger(__name__)


class LabStore(StoreBase):
    """Messages and settings of the local lab (DMs, the lab chat, its clock)."""

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
        self,
        user_id: str | None = None,
        *,
        channel: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[LocalMessageRecord]:
        """Local messages, oldest first, for one user or everyone, in one channel or all.

        ``before``: only messages older than that id; ``limit``: only the latest that many.
        """
        query = select(LocalMessage)
        if user_id is not None:
            query = query.where(LocalMessage.user_id == user_id)
        if channel is not None:
            query = query.where(LocalMessage.channel == channel)
        if before is not None:
            query = query.where(LocalMessage.id < before)
        if limit is None:
            query = query.order_by(LocalMessage.id)
        else:
            query = query.order_by(LocalMessage.id.desc()).limit(limit)
        with self._read.begin() as session:
            records = [
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
        return records if limit is None else records[::-1]

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
