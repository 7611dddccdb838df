"""The store's reading-together layer: the share switch, notes, digests and channel posts."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.exc import IntegrityError

from dcml_bot.store import Store

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


def _reader(store: Store, user: str, item: str, *, share: bool | None, at: dt.datetime) -> int:
    member = store.upsert_member("slack", user, display_name=user.title(), now=T0)
    if share is not None:
        store.set_share_progress(member.id, share)
    store.set_progress(member.id, item, "read", title="Paper", now=at)
    return member.id


def test_readers_follow_each_members_choice_and_the_lab_default(store: Store) -> None:
    _reader(store, "alice", "p1", share=None, at=T0)
    _reader(store, "bob", "p1", share=True, at=T0 + dt.timedelta(hours=1))
    carol = _reader(store, "carol", "p1", share=False, at=T0 + dt.timedelta(hours=2))
    _reader(store, "dave", "p2", share=True, at=T0)
    skipper = store.upsert_member("slack", "erin", now=T0)
    store.set_progress(skipper.id, "p1", "skipped", title="Paper", now=T0)

    names = [m.user_id for m in store.readers_of("slack", "p1", share_default=True)]
    assert names == ["bob", "alice"]  # latest first; carol said off; erin skipped it
    assert [m.user_id for m in store.readers_of("slack", "p1", share_default=False)] == ["bob"]
    assert [m.user_id for m in store.readers_of("slack", "p1", share_default=True, limit=1)] == [
        "bob"
    ]
    assert store.readers_of("feishu", "p1", share_default=True) == []
    assert store.get_member_by_id(carol) is not None
    assert store.get_member_by_id(carol).share_progress is False  # type: ignore[union-attr]
    assert store.set_share_progress(carol, None).share_progress is None


def test_notes_newest_first_authors_per_share_and_deletion(store: Store) -> None:
    alice = _reader(store, "alice", "p1", share=True, at=T0)
    carol = _reader(store, "carol", "p1", share=False, at=T0)
    first = store.add_note(alice, "p1", "Read section 3 first.", T0)
    second = store.add_note(carol, "p1", "<b>not bold</b>", T0 + dt.timedelta(minutes=1))
    notes = store.notes_for("slack", "p1", share_default=True)
    assert [(n.id, n.author) for n in notes] == [(second, None), (first, "Alice")]
    assert notes[0].text == "<b>not bold</b>"  # stored as typed; escaping is the renderer's
    assert store.count_notes("p1") == 2
    assert store.delete_note(first, by=carol, now=T0) is True
    assert store.delete_note(first, by=carol, now=T0) is False  # already gone
    assert store.get_note(first, share_default=True) is None
    assert [n.id for n in store.notes_for("slack", "p1", share_default=True)] == [second]
    with pytest.raises(ValueError, match="1 to 2000"):
        store.add_note(alice, "p1", "x" * 2001, T0)
    with pytest.raises(ValueError):
        store.add_note(alice, "p1", "", T0)
    assert store.count_notes("p1") == 1  # nothing half-saved


def test_digest_pick_post_and_thread_lookup(store: Store) -> None:
    assert store.get_digest("slack", "C1", "2026-W49") is None
    picked = store.pick_digest_item("slack", "C1", "2026-W49", "p1", by=7)
    assert (picked.pick_item_id, picked.pick_by, picked.message_id) == ("p1", 7, None)
    assert store.pick_digest_item("slack", "C1", "2026-W49", "p2", by=8).pick_item_id == "p2"
    store.record_digest_post(
        "slack", "C1", "2026-W49", item_id="p2", title="Two", message_id="1.5", now=T0
    )
    posted = store.get_digest("slack", "C1", "2026-W49")
    assert posted is not None
    assert (posted.pick_item_id, posted.item_id, posted.message_id) == ("p2", "p2", "1.5")
    store.record_digest_post(
        "slack",
        "C1",
        "2026-W50",
        item_id="p2",
        title="Two",
        message_id="2.5",
        now=T0 + dt.timedelta(days=7),
    )
    thread = store.thread_for_item("slack", "C1", "p2")
    assert thread is not None and thread.message_id == "2.5"
    assert store.thread_for_item("slack", "C1", "p1") is None
    assert store.thread_for_item("slack", "C2", "p2") is None


def test_outbox_holds_channel_posts_once(store: Store) -> None:
    claim = store.claim(
        "digest:C1:2026-W49", member_id=None, channel="C1", kind="digest", worker="w", now=T0
    )
    assert claim is not None and claim.member_id is None
    assert (
        store.claim(
            "digest:C1:2026-W49", member_id=None, channel="C1", kind="digest", worker="v", now=T0
        )
        is None
    )
    store.mark_sent("digest:C1:2026-W49", worker="w", platform_message_id="1.5", now=T0)
    row = store.get_outbox("digest:C1:2026-W49")
    assert row is not None and (row.channel, row.member_id, row.status) == ("C1", None, "sent")
    with pytest.raises(ValueError, match=r"DM .* or a channel post"):
        store.claim("x", member_id=None, kind="digest", worker="w", now=T0)


def test_a_note_needs_a_member(store: Store) -> None:
    with pytest.raises(IntegrityError):
        store.add_note(999, "p1", "orphan", T0)
