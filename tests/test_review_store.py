"""The store's queries for the weekly review, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from dcml_bot.store import Store

MON = dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.UTC)
NEXT_MON = MON + dt.timedelta(days=7)


def test_a_weeks_newcomers_and_reads_stay_within_the_week_and_the_platform(store: Store) -> None:
    before = store.upsert_member("slack", "U0OLD", now=MON)
    store.mark_onboarded(before.id, MON - dt.timedelta(seconds=1))
    first = store.upsert_member("slack", "U0A", now=MON)
    store.mark_onboarded(first.id, MON)  # the week's first instant counts
    second = store.upsert_member("slack", "U0B", now=MON)
    store.mark_onboarded(second.id, NEXT_MON - dt.timedelta(microseconds=1))
    later = store.upsert_member("slack", "U0LATE", now=MON)
    store.mark_onboarded(later.id, NEXT_MON)  # the next week's
    elsewhere = store.upsert_member("feishu", "ou_x", now=MON)
    store.mark_onboarded(elsewhere.id, MON + dt.timedelta(days=1))
    never = store.upsert_member("slack", "U0NEVER", now=MON)
    assert [m.user_id for m in store.onboarded_between("slack", MON, NEXT_MON)] == ["U0A", "U0B"]

    store.set_progress(first.id, "p1", "read", title="One", now=MON + dt.timedelta(hours=1))
    store.set_progress(second.id, "p1", "read", title="One", now=MON + dt.timedelta(hours=2))
    store.set_progress(second.id, "p2", "skipped", title="Two", now=MON + dt.timedelta(hours=3))
    store.set_progress(before.id, "p3", "read", title="Three", now=MON - dt.timedelta(days=1))
    store.set_progress(elsewhere.id, "p1", "read", title="One", now=MON + dt.timedelta(hours=1))
    store.set_progress(never.id, "p4", "sent", title="Four", now=MON + dt.timedelta(hours=1))
    reads = store.reads_between("slack", MON, NEXT_MON)
    assert [(r.member_id, r.item_id) for r in reads] == [(first.id, "p1"), (second.id, "p1")]

    answers = store.last_answers()
    assert answers[second.id] == MON + dt.timedelta(hours=3)  # a skip is an answer too
    assert answers[before.id] == MON - dt.timedelta(days=1)
    assert never.id not in answers  # a paper sent and not answered is not one


def _dm(store: Store, key: str, member_id: int, kind: str, *, error: str | None = None) -> None:
    store.claim(key, member_id=member_id, kind=kind, worker="w", now=MON)
    if error is None:
        store.mark_sent(key, worker="w", platform_message_id="m", now=MON)
    else:
        store.mark_failed(key, worker="w", error=error, retry_at=None, dead=True, now=MON)


def test_undeliverable_is_the_members_latest_dm_dead_and_not_dropped(store: Store) -> None:
    gone = store.upsert_member("slack", "U0GONE", display_name="Gone", now=MON)
    back = store.upsert_member("slack", "U0BACK", now=MON)
    done = store.upsert_member("slack", "U0DONE", now=MON)
    fine = store.upsert_member("slack", "U0FINE", now=MON)
    _dm(store, "welcome:slack:U0GONE", gone.id, "welcome")
    _dm(store, "weekly:slack:U0GONE:W1", gone.id, "weekly", error="slack: user_disabled")
    _dm(store, "weekly:slack:U0BACK:W1", back.id, "weekly", error="slack: user_disabled")
    _dm(store, "weekly:slack:U0BACK:W2", back.id, "weekly")  # reachable again since
    _dm(store, "weekly:slack:U0DONE:W1", done.id, "weekly", error="dropped: paper left the guide")
    _dm(store, "weekly:slack:U0FINE:W1", fine.id, "weekly")
    store.claim(
        "digest:slack:C1:W1", member_id=None, channel="C1", kind="digest", worker="w", now=MON
    )
    store.mark_failed(
        "digest:slack:C1:W1",
        worker="w",
        error="slack: not_in_channel",
        retry_at=None,
        dead=True,
        now=MON,
    )
    found = store.undeliverable()
    assert [(m.user_id, row.last_error) for m, row in found] == [("U0GONE", "slack: user_disabled")]


def test_reopen_makes_only_a_dead_row_due_again(store: Store) -> None:
    key = "digest:slack:C1:2026-W49"
    assert store.reopen(key) is False  # unknown
    store.claim(key, member_id=None, channel="C1", kind="digest", worker="w", now=MON)
    assert store.reopen(key) is False  # held
    store.mark_failed(
        key, worker="w", error="slack: not_in_channel", retry_at=None, dead=True, now=MON
    )
    assert store.reopen(key) is True
    row = store.get_outbox(key)
    assert row is not None and (row.status, row.retry_at) == ("failed", None)
    claim = store.claim(key, member_id=None, channel="C1", kind="digest", worker="v", now=MON)
    assert claim is not None and claim.attempts == 2
    store.mark_sent(key, worker="v", platform_message_id="C1/1.5", now=MON)
    assert store.reopen(key) is False  # sent stays sent
