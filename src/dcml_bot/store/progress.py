"""Reading progress: each member's state per item."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from sqlalchemy import (
    select,
)

from dcml_bot.store.base import _IN_BATCH, StoreBase, _check, _dml
from dcml_bot.store.records import _PROGRESS_COLUMNS, ProgressRecord, _progress
from dcml_bot.store.schema import (
    PROGRESS_STATES,
    Progress,
)

logger = logging.getLogger(__name__)


class ProgressStore(StoreBase):
    """Reading progress: done, skipped, snoozed or sent-and-unanswered per item."""

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
