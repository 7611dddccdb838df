"""Store tests; each runs on SQLite and on PostgreSQL through the ``db_url`` fixture."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, StatementError

from dcml_bot.store import Claim, Store, make_engine, open_store, upgrade
from dcml_bot.store.database import HEAD_REVISION, alembic_config, current_revision
from dcml_bot.store.schema import Base
from support import database_at

T = TypeVar("T")

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
WEEK = "2026-W48"
MINUTE = dt.timedelta(minutes=1)


def _member_id(store: Store, user_id: str = "U1", platform: str = "slack") -> int:
    return store.upsert_member(platform, user_id, now=T0).id


def _race(n: int, fn: Callable[[int], T]) -> list[T]:
    """Run ``fn(0..n-1)`` on n threads released together."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        barrier.wait(timeout=30)
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def _weekly(store: Store, key: str, member_id: int, **kwargs: Any) -> Claim | None:
    args: dict[str, Any] = {
        "member_id": member_id,
        "kind": "weekly",
        "week": WEEK,
        "item_id": "arxiv:2310.03744",
        "title": "Improved Baselines with Visual Instruction Tuning",
        "worker": "w1",
        "now": T0,
    }
    args.update(kwargs)
    return store.claim(key, **args)


# Members


def test_upsert_member_creates_then_fills_only_given_fields(store: Store) -> None:
    created = store.upsert_member("slack", "U1", display_name="Ann", now=T0)
    assert created.joined_at == T0
    assert created.enrolled is False
    assert (created.language, created.timezone, created.onboarded_at) == (None, None, None)

    later = T0 + dt.timedelta(days=3)
    updated = store.upsert_member("slack", "U1", language="zh", timezone="Asia/Shanghai", now=later)
    assert updated.id == created.id
    assert updated.display_name == "Ann"
    assert (updated.language, updated.timezone) == ("zh", "Asia/Shanghai")
    assert updated.joined_at == T0

    same = store.upsert_member("slack", "U1", now=later)
    assert same == updated

    other = store.upsert_member("feishu", "U1", now=T0)
    assert other.id != created.id


def test_upsert_member_race_creates_one_row(store: Store) -> None:
    records = _race(8, lambda i: store.upsert_member("slack", "U9", display_name=f"n{i}", now=T0))
    assert len({record.id for record in records}) == 1
    assert len(store.list_members()) == 1
    assert store.get_member("slack", "U9") is not None


def test_datetimes_come_back_as_aware_utc(store: Store) -> None:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    local = dt.datetime(2026, 11, 23, 18, 30, 15, 123456, tzinfo=shanghai)
    member = store.upsert_member("slack", "U1", now=local)
    fetched = store.get_member_by_id(member.id)
    assert fetched is not None
    assert fetched.joined_at == local
    assert fetched.joined_at.tzinfo is dt.UTC
    assert fetched.joined_at.hour == 10 and fetched.joined_at.microsecond == 123456

    with pytest.raises(StatementError, match="naive datetime"):
        store.upsert_member("slack", "U2", now=dt.datetime(2026, 1, 1))


def test_get_list_and_find_members(store: Store) -> None:
    ann = store.upsert_member("slack", "U1", display_name="Ann Lee", now=T0)
    bob = store.upsert_member("slack", "U2", display_name="Bob 100%", now=T0)
    zhang = store.upsert_member("feishu", "ou_abc", display_name="张三", now=T0)
    store.set_enrolled(bob.id, True, T0)

    assert store.get_member("slack", "U1") == ann
    assert store.get_member("slack", "nobody") is None
    assert store.get_member_by_id(zhang.id) == zhang
    assert store.get_member_by_id(999_999) is None

    assert [m.id for m in store.list_members()] == [ann.id, bob.id, zhang.id]
    assert [m.id for m in store.list_members(platform="slack")] == [ann.id, bob.id]
    assert [m.id for m in store.list_members(enrolled=True)] == [bob.id]
    assert [m.id for m in store.list_members(platform="slack", enrolled=False)] == [ann.id]

    assert [m.id for m in store.find_members("slack", "ann")] == [ann.id]
    assert [m.id for m in store.find_members("slack", "u2")] == [bob.id]
    assert [m.id for m in store.find_members("slack", "LEE")] == [ann.id]
    assert [m.id for m in store.find_members("feishu", "张")] == [zhang.id]
    assert store.find_members("feishu", "ann") == []
    # LIKE wildcards in the search text are literal.
    assert [m.id for m in store.find_members("slack", "%")] == [bob.id]
    assert store.find_members("slack", "_") == []


def test_member_setters(store: Store) -> None:
    member_id = _member_id(store)
    later = T0 + dt.timedelta(days=1)

    enrolled = store.set_enrolled(member_id, True, T0)
    assert enrolled.enrolled is True and enrolled.opted_out_at is None
    opted_out = store.set_enrolled(member_id, False, later)
    assert opted_out.enrolled is False and opted_out.opted_out_at == later
    again = store.set_enrolled(member_id, True, later)
    assert again.enrolled is True and again.opted_out_at is None

    assert store.set_language(member_id, "zh").language == "zh"
    assert store.set_language(member_id, None).language is None
    assert store.set_timezone(member_id, "Europe/Berlin").timezone == "Europe/Berlin"

    assert store.mark_onboarded(member_id, T0).onboarded_at == T0
    assert store.mark_onboarded(member_id, later).onboarded_at == T0

    stored = store.get_member_by_id(member_id)
    assert stored is not None
    assert (stored.enrolled, stored.timezone, stored.onboarded_at) == (True, "Europe/Berlin", T0)

    for call in (
        lambda: store.set_enrolled(999_999, True, T0),
        lambda: store.set_language(999_999, "en"),
        lambda: store.set_timezone(999_999, "UTC"),
        lambda: store.mark_onboarded(999_999, T0),
    ):
        with pytest.raises(LookupError):
            call()


# Progress


def test_set_progress_upserts_and_clears(store: Store) -> None:
    member_id = _member_id(store)
    read = store.set_progress(member_id, "arxiv:1", "read", title="One", now=T0)
    assert (read.state, read.title, read.snoozed_week, read.updated_at) == ("read", "One", None, T0)

    later = T0 + MINUTE
    snoozed = store.set_progress(member_id, "arxiv:2", "snoozed", title="Two", week=WEEK, now=later)
    assert snoozed.snoozed_week == WEEK

    progress = store.progress_for(member_id)
    assert set(progress) == {"arxiv:1", "arxiv:2"}
    assert progress["arxiv:2"] == snoozed

    # Changing the state replaces the row; the old snooze week goes away.
    replaced = store.set_progress(member_id, "arxiv:2", "read", title="Two (v2)", now=later)
    assert (replaced.state, replaced.title, replaced.snoozed_week) == ("read", "Two (v2)", None)
    assert store.progress_for(member_id)["arxiv:2"] == replaced
    assert len(store.progress_for(member_id)) == 2

    assert store.progress_for(_member_id(store, "U2")) == {}


def test_set_progress_validates(store: Store) -> None:
    member_id = _member_id(store)
    with pytest.raises(ValueError, match="state"):
        store.set_progress(member_id, "arxiv:1", "done", title="One", now=T0)
    with pytest.raises(ValueError, match="week"):
        store.set_progress(member_id, "arxiv:1", "snoozed", title="One", now=T0)
    with pytest.raises(IntegrityError):
        store.set_progress(999_999, "arxiv:1", "read", title="One", now=T0)
    assert store.progress_for(member_id) == {}


def test_progress_for_members_matches_progress_for(store: Store) -> None:
    ann, bob, carol = (_member_id(store, user) for user in ("U1", "U2", "U3"))
    store.set_progress(ann, "b", "read", title="B", now=T0)
    store.set_progress(ann, "a", "snoozed", title="A", week=WEEK, now=T0 + MINUTE)
    store.set_progress(bob, "a", "skipped", title="A", now=T0)
    store.set_progress(carol, "c", "read", title="C", now=T0)
    assert store.progress_for_members([]) == {}
    grouped = store.progress_for_members([bob, ann, ann])
    assert grouped == {ann: store.progress_for(ann), bob: store.progress_for(bob)}
    assert list(grouped[ann]) == ["a", "b"]
    assert grouped[ann]["a"].snoozed_week == WEEK
    assert grouped[ann]["a"].updated_at == T0 + MINUTE
    # More ids than one IN list holds, most of them unknown: every id answers, unknown ones {}.
    many = store.progress_for_members(range(1, 2_500))
    assert len(many) == 2_499
    assert (many[ann], many[carol], many[2_000]) == (grouped[ann], store.progress_for(carol), {})


def test_deleting_a_member_deletes_its_progress(store: Store) -> None:
    member_id = _member_id(store)
    keep = _member_id(store, "U2")
    store.set_progress(member_id, "a", "read", title="A", now=T0)
    store.set_progress(keep, "a", "read", title="A", now=T0)
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM members WHERE id = :id"), {"id": member_id})
    assert store.progress_for(member_id) == {}
    assert set(store.progress_for(keep)) == {"a"}


# Processed events


def test_record_event_dedupes_and_prunes(store: Store) -> None:
    assert store.record_event("slack", "Ev1", T0) is True
    assert store.record_event("slack", "Ev1", T0 + MINUTE) is False
    assert store.record_event("feishu", "Ev1", T0) is True
    assert store.record_event("slack", "Ev2", T0 + dt.timedelta(hours=2)) is True

    assert store.prune_events(T0 + dt.timedelta(hours=1)) == 2
    assert store.prune_events(T0 + dt.timedelta(hours=1)) == 0
    # Pruned ids count as new again; the recent one is still remembered.
    assert store.record_event("slack", "Ev1", T0) is True
    assert store.record_event("slack", "Ev2", T0) is False


def test_record_event_race_has_one_winner(store: Store) -> None:
    for round_ in range(5):
        results = _race(8, lambda _i, r=round_: store.record_event("slack", f"Ev{r}", T0))
        assert results.count(True) == 1, results


# Outbox: claim semantics


def test_claim_new_key_and_blocked_while_leased(store: Store) -> None:
    member_id = _member_id(store)
    claim = _weekly(store, "weekly:slack:U1:2026-W48", member_id)
    assert claim is not None
    assert claim.recovered is False
    assert (claim.attempts, claim.worker, claim.lease_until) == (
        1,
        "w1",
        T0 + dt.timedelta(minutes=5),
    )
    assert claim.item_id == "arxiv:2310.03744"

    row = store.get_outbox("weekly:slack:U1:2026-W48")
    assert row is not None
    assert (row.status, row.attempts, row.claimed_by, row.created_at) == ("claimed", 1, "w1", T0)
    assert (row.kind, row.week, row.member_id) == ("weekly", WEEK, member_id)

    # Another worker (or the same one) cannot claim while the lease runs.
    for worker in ("w1", "w2"):
        blocked = _weekly(
            store,
            "weekly:slack:U1:2026-W48",
            member_id,
            worker=worker,
            now=T0 + dt.timedelta(minutes=4),
        )
        assert blocked is None
    assert store.get_outbox("weekly:slack:U1:2026-W48") == row


def test_claim_expired_lease_is_recovered_with_stored_item(store: Store) -> None:
    member_id = _member_id(store)
    key = "weekly:slack:U1:2026-W48"
    first = _weekly(store, key, member_id, lease=dt.timedelta(minutes=2))
    assert first is not None

    later = T0 + dt.timedelta(minutes=2)  # lease_until == now counts as expired
    recovered = _weekly(
        store, key, member_id, worker="w2", item_id="arxiv:other", title="Other", now=later
    )
    assert recovered is not None
    assert recovered.recovered is True
    assert (recovered.item_id, recovered.title) == (first.item_id, first.title)
    assert (recovered.attempts, recovered.worker) == (2, "w2")
    assert recovered.lease_until == later + dt.timedelta(minutes=5)
    assert recovered.created_at == T0

    # The new lease blocks everyone again, including the worker that lost it.
    assert _weekly(store, key, member_id, worker="w1", now=later + MINUTE) is None
    # The old worker can no longer fail the claim it lost; the new holder can.
    assert not store.mark_failed(key, worker="w1", error="late", retry_at=None, now=later)
    assert store.mark_failed(key, worker="w2", error="boom", retry_at=None, now=later)


def test_claim_failed_row_respects_retry_at(store: Store) -> None:
    member_id = _member_id(store)
    key = "weekly:slack:U1:2026-W48"
    assert _weekly(store, key, member_id) is not None
    retry_at = T0 + dt.timedelta(hours=1)
    assert store.mark_failed(key, worker="w1", error="rate limited", retry_at=retry_at, now=T0)

    failed = store.get_outbox(key)
    assert failed is not None
    assert (failed.status, failed.retry_at, failed.last_error) == (
        "failed",
        retry_at,
        "rate limited",
    )
    assert failed.lease_until is None

    assert _weekly(store, key, member_id, now=retry_at - MINUTE) is None
    retried = _weekly(store, key, member_id, worker="w2", item_id="x", title="X", now=retry_at)
    assert retried is not None
    assert retried.recovered is False
    assert (retried.attempts, retried.worker) == (2, "w2")
    assert (retried.item_id, retried.title) == ("arxiv:2310.03744", failed.title)

    row = store.get_outbox(key)
    assert row is not None
    assert (row.status, row.retry_at, row.claimed_by) == ("claimed", None, "w2")


def test_claim_failed_without_retry_at_is_due_immediately(store: Store) -> None:
    member_id = _member_id(store)
    key = "welcome:slack:U1"
    assert store.claim(key, member_id=member_id, kind="welcome", worker="w1", now=T0) is not None
    assert store.mark_failed(key, worker="w1", error="timeout", retry_at=None, now=T0)
    again = store.claim(key, member_id=member_id, kind="welcome", worker="w1", now=T0)
    assert again is not None
    assert (again.attempts, again.recovered, again.week, again.item_id) == (2, False, None, None)


@pytest.mark.parametrize("final", ["sent", "dead"])
def test_claim_after_sent_or_dead_is_refused_forever(store: Store, final: str) -> None:
    member_id = _member_id(store)
    key = "weekly:slack:U1:2026-W48"
    assert _weekly(store, key, member_id) is not None
    if final == "sent":
        assert store.mark_sent(key, worker="w1", platform_message_id="1700.01", now=T0)
    else:
        assert store.mark_failed(
            key, worker="w1", error="user_not_found", retry_at=T0, dead=True, now=T0
        )
    row = store.get_outbox(key)
    assert row is not None and row.status == final
    assert row.retry_at is None and row.lease_until is None

    far = T0 + dt.timedelta(days=365)
    assert _weekly(store, key, member_id, worker="w2", now=far) is None
    assert store.due_retries(far) == []
    assert store.get_outbox(key) == row


def test_claim_validates_arguments(store: Store) -> None:
    member_id = _member_id(store)
    with pytest.raises(ValueError, match="kind"):
        store.claim("k", member_id=member_id, kind="sermon", worker="w", now=T0)
    with pytest.raises(ValueError, match="lease"):
        store.claim(
            "k", member_id=member_id, kind="welcome", worker="w", now=T0, lease=dt.timedelta(0)
        )
    assert store.get_outbox("k") is None


# Outbox: confirmation


def test_mark_sent_records_delivery_from_any_worker_once(store: Store) -> None:
    member_id = _member_id(store)
    key = "weekly:slack:U1:2026-W48"
    assert store.mark_sent(key, worker="w1", now=T0) is False  # unknown key
    assert _weekly(store, key, member_id, lease=MINUTE) is not None
    assert _weekly(store, key, member_id, worker="w2", now=T0 + MINUTE) is not None

    # w1 lost its lease but did deliver: that fact is recorded, stopping further retries.
    sent_at = T0 + 2 * MINUTE
    assert store.mark_sent(key, worker="w1", platform_message_id="1700.01", now=sent_at)
    assert not store.mark_sent(key, worker="w2", platform_message_id="1700.02", now=sent_at)
    assert not store.mark_failed(key, worker="w2", error="late", retry_at=None, now=sent_at)

    row = store.get_outbox(key)
    assert row is not None
    assert (row.status, row.sent_at, row.platform_message_id) == ("sent", sent_at, "1700.01")
    assert (row.claimed_by, row.attempts) == ("w1", 2)


def test_mark_sent_after_failure_stops_retries(store: Store) -> None:
    member_id = _member_id(store)
    key = "welcome:slack:U1"
    assert store.claim(key, member_id=member_id, kind="welcome", worker="w1", now=T0)
    assert store.mark_failed(key, worker="w1", error="timeout", retry_at=T0, now=T0)
    assert [r.key for r in store.due_retries(T0)] == [key]
    assert store.mark_sent(key, worker="w1", now=T0)
    assert store.due_retries(T0) == []


def test_confirm_sent_records_progress_without_undoing_answers(store: Store) -> None:
    member_id = _member_id(store)
    store.set_progress(member_id, "b", "read", title="B", now=T0)
    store.set_progress(member_id, "c", "snoozed", title="C", week="2026-W47", now=T0)
    later = T0 + MINUTE
    for item in ("a", "b", "c"):
        key = f"weekly:slack:U1:{item}"
        assert _weekly(store, key, member_id, item_id=item, title=item.upper()) is not None
        assert store.confirm_sent(
            key,
            worker="w1",
            platform_message_id=f"m-{item}",
            member_id=member_id,
            item_id=item,
            title=item.upper(),
            week=WEEK,
            now=later,
        )
    progress = store.progress_for(member_id)
    assert {item: record.state for item, record in progress.items()} == {
        "a": "sent",
        "b": "read",  # an answer is never replaced by a delivery
        "c": "sent",  # a snoozed paper that came back
    }
    assert (progress["a"].updated_at, progress["c"].snoozed_week) == (later, None)
    assert progress["b"].updated_at == T0
    row = store.get_outbox("weekly:slack:U1:a")
    assert row is not None and (row.status, row.platform_message_id) == ("sent", "m-a")

    # A second confirmation changes nothing in the outbox and keeps the member's answer.
    store.set_progress(member_id, "a", "read", title="A", now=later)
    assert not store.confirm_sent(
        "weekly:slack:U1:a", worker="w2", member_id=member_id, item_id="a", title="A", now=later
    )
    assert store.progress_for(member_id)["a"].state == "read"
    with pytest.raises(ValueError, match="state"):
        store.confirm_sent(
            "k", worker="w", member_id=member_id, item_id="a", title="A", state="x", now=T0
        )


def test_mark_failed_requires_current_claim(store: Store) -> None:
    member_id = _member_id(store)
    key = "welcome:slack:U1"
    assert not store.mark_failed(key, worker="w1", error="x", retry_at=None, now=T0)
    assert store.claim(key, member_id=member_id, kind="welcome", worker="w1", now=T0)
    assert not store.mark_failed(key, worker="w2", error="x", retry_at=None, now=T0)
    assert store.mark_failed(key, worker="w1", error="x", retry_at=None, now=T0)
    # Already failed: there is no claim left to fail.
    assert not store.mark_failed(key, worker="w1", error="y", retry_at=None, now=T0)
    row = store.get_outbox(key)
    assert row is not None and (row.status, row.last_error) == ("failed", "x")


# Outbox: queries


def test_due_retries(store: Store) -> None:
    member_id = _member_id(store)
    later = T0 + dt.timedelta(hours=1)
    keys = {
        name: f"weekly:slack:{name}:{WEEK}"
        for name in ("due", "future", "null", "expired", "leased", "sent", "dead")
    }
    for name, key in keys.items():
        lease = dt.timedelta(minutes=30) if name == "expired" else dt.timedelta(hours=2)
        assert _weekly(store, key, member_id, lease=lease) is not None
    store.mark_failed(keys["due"], worker="w1", error="e", retry_at=later, now=T0)
    store.mark_failed(keys["future"], worker="w1", error="e", retry_at=later + MINUTE, now=T0)
    store.mark_failed(keys["null"], worker="w1", error="e", retry_at=None, now=T0)
    store.mark_sent(keys["sent"], worker="w1", now=T0)
    store.mark_failed(keys["dead"], worker="w1", error="e", retry_at=None, dead=True, now=T0)
    assert store.claim(
        "welcome:slack:U1", member_id=member_id, kind="welcome", worker="w1", now=T0, lease=MINUTE
    )

    due = store.due_retries(later)
    assert [r.key for r in due] == [keys["due"], keys["null"], keys["expired"], "welcome:slack:U1"]
    assert [r.key for r in store.due_retries(later, kind="welcome")] == ["welcome:slack:U1"]
    assert [r.key for r in store.due_retries(T0)] == [keys["null"]]


def test_outbox_for_keys_and_stats(store: Store) -> None:
    ann, bob, carol = (_member_id(store, user) for user in ("U1", "U2", "U3"))
    for member_id, user in ((ann, "U1"), (bob, "U2"), (carol, "U3")):
        assert _weekly(store, f"weekly:slack:{user}:{WEEK}", member_id) is not None
    assert _weekly(store, "weekly:slack:U1:2026-W49", ann, week="2026-W49") is not None
    assert store.claim("welcome:slack:U1", member_id=ann, kind="welcome", worker="w1", now=T0)
    store.mark_sent(f"weekly:slack:U1:{WEEK}", worker="w1", now=T0)
    store.mark_failed(f"weekly:slack:U2:{WEEK}", worker="w1", error="e", retry_at=None, now=T0)

    rows = [store.get_outbox(f"weekly:slack:{user}:{WEEK}") for user in ("U1", "U2", "U3")]
    assert [r.status for r in rows if r is not None] == ["sent", "failed", "claimed"]
    assert store.outbox_stats(WEEK) == {"claimed": 1, "sent": 1, "failed": 1, "dead": 0}
    assert store.outbox_stats("2026-W49") == {"claimed": 1, "sent": 0, "failed": 0, "dead": 0}
    assert store.outbox_stats("2030-W01") == {"claimed": 0, "sent": 0, "failed": 0, "dead": 0}

    by_key = store.outbox_for_keys([f"weekly:slack:{u}:{WEEK}" for u in ("U3", "U1", "U9", "U1")])
    assert by_key == {row.key: row for row in rows if row is not None and row.member_id != bob}
    assert store.outbox_for_keys([]) == {}
    # More keys than one IN list holds, most of them unknown.
    many = store.outbox_for_keys([f"k{i}" for i in range(2_000)] + ["welcome:slack:U1"])
    assert list(many) == ["welcome:slack:U1"] and many["welcome:slack:U1"].kind == "welcome"


# Outbox: concurrency


def test_claim_race_between_threads_has_one_winner(store: Store) -> None:
    member_id = _member_id(store)
    for round_ in range(5):
        key = f"weekly:slack:U1:2026-W{round_:02d}"
        claims = _race(8, lambda i, k=key: _weekly(store, k, member_id, worker=f"t{i}"))
        winners = [claim for claim in claims if claim is not None]
        assert len(winners) == 1, claims
        row = store.get_outbox(key)
        assert row is not None and (row.claimed_by, row.attempts) == (winners[0].worker, 1)

    # Recovering an expired lease is also a race with one winner.
    key = "weekly:slack:U1:2026-W00"
    later = T0 + dt.timedelta(hours=1)
    claims = _race(8, lambda i: _weekly(store, key, member_id, worker=f"r{i}", now=later))
    winners = [claim for claim in claims if claim is not None]
    assert len(winners) == 1 and winners[0].recovered is True
    row = store.get_outbox(key)
    assert row is not None and (row.claimed_by, row.attempts) == (winners[0].worker, 2)


def test_claim_takes_over_a_gone_holder_only_when_told(store: Store) -> None:
    member_id = _member_id(store)
    key = "weekly:slack:U1:2026-W48"
    assert _weekly(store, key, member_id, worker="dead")
    soon = T0 + MINUTE  # the lease runs until T0 + 5 min
    asked: list[str] = []

    def gone(holder: str) -> bool:
        asked.append(holder)
        return holder == "dead"

    assert _weekly(store, key, member_id, worker="w2", now=soon) is None
    assert (
        _weekly(store, key, member_id, worker="w2", now=soon, holder_gone=lambda h: False) is None
    )
    claim = _weekly(store, key, member_id, worker="w2", item_id="x", now=soon, holder_gone=gone)
    assert claim is not None and claim.recovered and claim.attempts == 2
    assert (claim.worker, claim.item_id, claim.lease_until) == (
        "w2",
        "arxiv:2310.03744",
        soon + 5 * MINUTE,
    )
    assert _weekly(store, key, member_id, worker="w3", now=soon, holder_gone=gone) is None
    assert asked == ["dead", "w2"]
    # Rows that are not claimed are never its business.
    assert store.mark_failed(key, worker="w2", error="timeout", retry_at=T0 + 9 * MINUTE, now=soon)
    assert _weekly(store, key, member_id, worker="w3", now=soon, holder_gone=gone) is None
    assert store.mark_sent(key, worker="w2", now=soon)
    assert _weekly(store, key, member_id, worker="w3", now=soon, holder_gone=gone) is None
    assert asked == ["dead", "w2"]


def test_claim_race_over_a_gone_holder_has_one_winner(store: Store) -> None:
    member_id = _member_id(store)
    key = "weekly:slack:U1:2026-W48"
    assert _weekly(store, key, member_id, worker="dead")
    callers = 8
    # On PostgreSQL every caller reads the orphaned claim before any takes it over (the worst
    # interleaving); SQLite's BEGIN IMMEDIATE runs them one after another (no barrier there).
    read_all = threading.Barrier(callers, timeout=30)
    postgresql = store.engine.dialect.name == "postgresql"

    def gone(holder: str) -> bool:
        if postgresql:
            read_all.wait()
        return holder == "dead"

    soon = T0 + MINUTE
    claims = _race(
        callers,
        lambda i: _weekly(store, key, member_id, worker=f"r{i}", now=soon, holder_gone=gone),
    )
    winners = [claim for claim in claims if claim is not None]
    assert len(winners) == 1 and winners[0].recovered is True
    row = store.get_outbox(key)
    assert row is not None and (row.claimed_by, row.attempts) == (winners[0].worker, 2)


PROCESSES = 4
PROCESS_KEYS = 10


def _claim_in_process(url: str, worker: str, barrier: Any, results: Any) -> None:
    """Child process: open a store (migrating concurrently), then race for every key."""
    try:
        store = open_store(url)
        try:
            member_id = store.upsert_member("slack", "U1", now=T0).id
            won = []
            barrier.wait(timeout=60)
            for n in range(PROCESS_KEYS):
                claim = _weekly(store, f"weekly:slack:U1:{n}", member_id, worker=worker)
                if claim is not None:
                    won.append(claim.key)
            results.put((worker, won, None))
        finally:
            store.dispose()
    except BaseException as exc:
        barrier.abort()  # release the siblings at once instead of after the barrier timeout
        results.put((worker, [], repr(exc)))
        raise


def test_claim_race_between_processes_has_one_winner(db_url: str) -> None:
    # The database is fresh: the children also race to migrate it and to create the member.
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_claim_in_process, args=(db_url, f"p{i}", barrier, results))
        for i in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = []
    try:
        for _ in processes:
            outcomes.append(results.get(timeout=120))
    except queue.Empty:
        pytest.fail(f"child processes did not report; got {outcomes}")
    finally:
        for process in processes:
            process.join(timeout=60)
    assert [error for _, _, error in outcomes if error] == []
    assert [process.exitcode for process in processes] == [0] * PROCESSES

    won = sorted(key for _, keys, _ in outcomes for key in keys)
    assert won == sorted(f"weekly:slack:U1:{n}" for n in range(PROCESS_KEYS))
    store = open_store(db_url)
    try:
        assert len(store.list_members()) == 1
        winners = {key: worker for worker, keys, _ in outcomes for key in keys}
        for key, worker in winners.items():
            row = store.get_outbox(key)
            assert row is not None and (row.claimed_by, row.attempts) == (worker, 1)
    finally:
        store.dispose()


# Migrations and engines


def _current_revision(store: Store) -> str | None:
    with store.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_upgrade_is_idempotent_and_reaches_head(store: Store) -> None:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    # One linear history: a single head that every revision leads to.
    assert script.get_heads() == [head]
    assert [r.revision for r in script.walk_revisions()][-1] == "0001"
    member_id = _member_id(store)
    upgrade(store.engine)
    upgrade(store.engine)
    assert _current_revision(store) == head == HEAD_REVISION  # open_store skips Alembic at head
    assert current_revision(store.engine) == head
    assert store.get_member_by_id(member_id) is not None
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"members", "progress", "outbox", "processed_events", "alembic_version"} <= tables


def test_a_database_behind_head_is_upgraded_when_opened(db_url: str) -> None:
    engine = database_at(db_url, "0002")
    assert current_revision(engine) == "0002"
    engine.dispose()
    reopened = open_store(db_url)
    try:
        assert current_revision(reopened.engine) == HEAD_REVISION
        assert reopened.local_get("anything") is None  # a table from 0004 exists again
    finally:
        reopened.dispose()


def test_downgrade_then_upgrade_round_trips(store: Store) -> None:
    from alembic import command

    config = alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(sa.inspect(store.engine).get_table_names()) <= {"alembic_version"}
    upgrade(store.engine)
    assert _current_revision(store) == _head()
    assert store.list_members() == []
    assert store.record_event("slack", "Ev1", T0) is True


def _head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _schema_diff(store: Store, metadata: sa.MetaData) -> list[Any]:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_migrations_match_models(store: Store) -> None:
    assert _schema_diff(store, Base.metadata) == []

    # The comparison is not vacuous: a model change the migration lacks shows up.
    changed = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    sa.Table("members", changed, sa.Column("nickname", sa.String()), extend_existing=True)
    changed.tables["outbox"].c.attempts.type = sa.String()
    kinds = {
        diff[0] if isinstance(diff, tuple) else diff[0][0] for diff in _schema_diff(store, changed)
    }
    assert kinds == {"add_column", "modify_type"}


def test_engine_configuration(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        if engine.dialect.name == "postgresql":
            assert engine.pool._pre_ping is True
            bare = make_engine(db_url.replace("postgresql+psycopg://", "postgresql://"))
            assert bare.dialect.driver == "psycopg"
            bare.dispose()
            return
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
        assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000}

        statements: list[str] = []
        event.listen(
            engine, "before_cursor_execute", lambda _c, _cur, sql, *_a: statements.append(sql)
        )
        store = Store(engine)
        upgrade(engine)
        statements.clear()
        store.record_event("slack", "Ev1", T0)
        store.list_members()
        store.get_member("slack", "U1")  # one statement: no transaction needed
        assert [s for s in statements if s.startswith("BEGIN")] == ["BEGIN IMMEDIATE", "BEGIN"]
        assert statements[-1].startswith("SELECT") and "FROM members" in statements[-1]
    finally:
        engine.dispose()


def test_sqlite_file_created_in_missing_directory_with_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///var/nested/dcml-bot.sqlite3")
    try:
        assert store.record_event("local", "e", T0) is True
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        store.dispose()
    assert (tmp_path / "var" / "nested" / "dcml-bot.sqlite3").is_file()
    # WAL mode is persistent: even a plain connection without our PRAGMAs sees it.
    plain = sa.create_engine("sqlite:///var/nested/dcml-bot.sqlite3")
    try:
        with plain.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        plain.dispose()


def test_make_engine_rejects_other_databases() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        make_engine("mysql+pymysql://user:secret@localhost/db")
