"""Weekly delivery, onboarding, plan order and catalog reloads, end to end on each database."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dcml_bot.core.bot import Bot
from dcml_bot.core.delivery import weekly_key
from dcml_bot.core.outbound import SendError
from dcml_bot.store import Claim, MemberRecord
from support import (
    MONDAY_SLOT,
    NEXT_WEEK,
    WEEK,
    Clock,
    Recorder,
    item_line,
    make_bot,
    text_of,
    write_catalog,
)

AFTER = MONDAY_SLOT + dt.timedelta(minutes=30)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def clock() -> Clock:
    return Clock(AFTER)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return write_catalog(
        tmp_path / "guide.md",
        [
            ("Basics", [item_line("💡", "Adv One", 1), item_line("💎", "Opt One", 2)]),
            ("Core", [item_line("⚡", "Ess One", 3), item_line("💎", "Opt Two", 4)]),
            ("Last", [item_line("⚡", "Ess Two", 5)]),
        ],
    )


@pytest.fixture
def bot(db_url: str, recorder: Recorder, clock: Clock, small: Path) -> Iterator[Bot]:
    built = make_bot(db_url, recorder, clock, catalog=small)
    try:
        yield built
    finally:
        built.close()


def enrol(bot: Bot, *users: str) -> None:
    for user in users:
        bot.commands.handle(bot.member("local", user), "start")


def sent_titles(recorder: Recorder, user: str) -> list[str]:
    return [reply.items[0].title for reply in recorder.to(user)]


def test_plan_order_and_weekly_sequence(bot: Bot, recorder: Recorder, clock: Clock) -> None:
    enrol(bot, "alice")
    for _ in range(6):
        bot.delivery.deliver(clock())
        clock.advance(days=7)
    assert sent_titles(recorder, "alice") == ["Ess One", "Ess Two", "Opt One", "Opt Two", "Adv One"]


def test_deliver_twice_once_per_member_and_opted_out_skipped(
    bot: Bot, recorder: Recorder, clock: Clock
) -> None:
    enrol(bot, "alice", "bob", "carol")
    bot.commands.handle(bot.member("local", "carol"), "stop")
    bot.member("local", "dave")  # never enrolled
    first = bot.delivery.deliver(clock())
    second = bot.delivery.deliver(clock())
    assert first.count("sent") == 2 and second.count("already") == 2
    assert sorted(uid for uid, _, _ in recorder.sent) == ["alice", "bob"]
    assert recorder.keys("alice") == [f"weekly:local:alice:{WEEK}"]
    assert bot.store.get_outbox(weekly_key(bot.member("local", "alice"), WEEK)).status == "sent"


def test_not_before_slot_unless_forced(bot: Bot, recorder: Recorder) -> None:
    enrol(bot, "alice")
    early = MONDAY_SLOT - dt.timedelta(minutes=1)
    assert bot.delivery.deliver(early).count("not-due") == 1
    assert recorder.sent == []
    assert bot.delivery.deliver(early, force=True).count("sent") == 1
    assert bot.delivery.deliver(MONDAY_SLOT).count("already") == 1
    assert len(recorder.sent) == 1


def test_new_york_member_waits_for_new_york_morning(bot: Bot, recorder: Recorder) -> None:
    enrol(bot, "alice")
    bot.store.upsert_member("local", "nyc", timezone="America/New_York", now=AFTER)
    enrol(bot, "nyc")
    morning_utc = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)  # 01:00 in New York
    report = bot.delivery.deliver(morning_utc)
    assert report.count("sent") == 1 and report.count("not-due") == 1
    assert recorder.to("nyc") == []
    bot.delivery.deliver(dt.datetime(2026, 11, 30, 14, 59, tzinfo=dt.UTC))
    assert recorder.to("nyc") == []
    bot.delivery.deliver(dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC))  # 10:00 New York
    assert recorder.keys("nyc") == [f"weekly:local:nyc:{WEEK}"]


def test_concurrent_forced_runs_send_once(
    db_url: str, bot: Bot, recorder: Recorder, clock: Clock, small: Path
) -> None:
    users = [f"u{i}" for i in range(5)]
    enrol(bot, *users)
    bots = [make_bot(db_url, recorder, clock, catalog=small, worker=f"w{i}") for i in range(8)]
    barrier = threading.Barrier(len(bots))
    errors: list[BaseException] = []

    def run(worker: Bot) -> None:
        try:
            barrier.wait()
            worker.delivery.deliver(clock(), force=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in bots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for b in bots:
        b.close()
    assert errors == []
    assert sorted(uid for uid, _, _ in recorder.sent) == users
    assert len(recorder.attempts) == len(users)


def test_papers_sent_by_another_process_after_the_preload_go_once(
    db_url: str,
    bot: Bot,
    recorder: Recorder,
    clock: Clock,
    small: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enrol(bot, "alice", "bob", "carol")
    bob, carol = bot.member("local", "bob"), bot.member("local", "carol")
    other = make_bot(db_url, recorder, clock, catalog=small, worker="other")
    claimed: list[str] = []
    claim = bot.store.claim

    def counting_claim(key: str, **kwargs: Any) -> Claim | None:
        claimed.append(key)
        return claim(key, **kwargs)

    monkeypatch.setattr(bot.store, "claim", counting_claim)
    outcomes: dict[str, str] = {}

    def after(member: MemberRecord, outcome: str) -> None:
        outcomes[member.user_id] = outcome
        if member.user_id == "alice":
            # The run has read everyone's (empty) outbox rows and progress already.
            for late in (bob, carol):
                outcomes[f"other:{late.user_id}"] = other.delivery.deliver_one(late, WEEK, clock())

    try:
        report = bot.delivery.deliver(clock(), on_member=after)
    finally:
        other.close()
    assert outcomes == {
        "alice": "sent",
        "other:bob": "sent",
        "other:carol": "sent",
        "bob": "already",
        "carol": "already",
    }
    assert report.count("sent") == 1 and report.count("already") == 2
    for late in (bob, carol):
        assert recorder.keys(late.user_id) == [weekly_key(late, WEEK)]
        row = bot.store.get_outbox(weekly_key(late, WEEK))
        assert row is not None and (row.status, row.claimed_by) == ("sent", "other")
    assert len(recorder.attempts) == 3
    # Bob's claim found the preload stale; carol's row was then read afresh, without a claim.
    assert claimed == [weekly_key(m, WEEK) for m in (bot.member("local", "alice"), bob)]
    # A paper already sent is skipped on the preload alone.
    assert bot.delivery.deliver(clock()).count("already") == 3
    assert len(claimed) == 2


def test_transient_failure_is_retried_once(bot: Bot, recorder: Recorder, clock: Clock) -> None:
    enrol(bot, "alice")
    key = weekly_key(bot.member("local", "alice"), WEEK)
    recorder.fail["alice"] = SendError("rate limited", permanent=False)
    assert bot.delivery.deliver(clock()).count("failed") == 1
    row = bot.store.get_outbox(key)
    assert row is not None and row.status == "failed" and row.retry_at is not None
    del recorder.fail["alice"]
    bot.delivery.deliver(clock() + dt.timedelta(seconds=30))  # before retry_at
    assert recorder.sent == []
    later = row.retry_at + dt.timedelta(seconds=1)
    assert bot.delivery.deliver(later).count("sent") == 1
    assert bot.delivery.deliver(later).count("already") == 1
    assert recorder.keys("alice") == [key]
    assert bot.store.get_outbox(key).status == "sent"


def test_permanent_failure_is_dead(bot: Bot, recorder: Recorder, clock: Clock) -> None:
    enrol(bot, "alice")
    key = weekly_key(bot.member("local", "alice"), WEEK)
    recorder.fail["alice"] = SendError("user gone", permanent=True)
    bot.delivery.deliver(clock())
    assert bot.store.get_outbox(key).status == "dead"
    del recorder.fail["alice"]
    bot.delivery.deliver(clock() + dt.timedelta(hours=7), force=True)
    # Tried once, never again; the admin heard about it once.
    assert recorder.attempts == [
        ("alice", key),
        ("boss", "notice:unreachable:local:alice:local:boss"),
    ]
    assert [user for user, _, _ in recorder.sent] == ["boss"]


def test_crash_between_claim_and_send(bot: Bot, recorder: Recorder, clock: Clock) -> None:
    enrol(bot, "alice")
    alice = bot.member("local", "alice")
    key = weekly_key(alice, WEEK)
    entry = bot.library.catalog.get("arxiv:2301.00003")
    assert entry is not None
    bot.store.claim(
        key,
        member_id=alice.id,
        kind="weekly",
        week=WEEK,
        item_id=entry.id,
        title=entry.title,
        worker="ghost",
        now=clock(),
        lease=dt.timedelta(seconds=30),
    )
    assert bot.delivery.deliver(clock()).count("busy") == 1
    assert recorder.sent == []
    assert bot.delivery.deliver(clock() + dt.timedelta(minutes=1)).count("sent") == 1
    bot.delivery.deliver(clock() + dt.timedelta(minutes=2))
    assert sent_titles(recorder, "alice") == ["Ess One"]


def test_crash_after_send_is_reconciled(bot: Bot, recorder: Recorder, clock: Clock) -> None:
    enrol(bot, "alice")
    key = weekly_key(bot.member("local", "alice"), WEEK)
    recorder.crash_after_send.add("alice")
    with pytest.raises(RuntimeError):
        bot.delivery.deliver(clock())
    assert bot.store.get_outbox(key).status == "claimed"
    recorder.crash_after_send.clear()
    report = bot.delivery.deliver(clock() + dt.timedelta(minutes=10))
    assert report.count("recovered") == 1
    assert len(recorder.attempts) == 1 and recorder.find_calls == [("alice", key)]
    row = bot.store.get_outbox(key)
    assert row.status == "sent" and row.platform_message_id == "m1"
    progress = bot.store.progress_for(bot.member("local", "alice").id)
    assert progress["arxiv:2301.00003"].state == "sent"


def test_later_comes_back_next_week_not_this_week(
    bot: Bot, recorder: Recorder, clock: Clock
) -> None:
    enrol(bot, "alice")
    bot.delivery.deliver(clock())
    alice = bot.member("local", "alice")
    first = recorder.to("alice")[0]
    later = next(b for b in first.buttons if b.action == "later")
    bot.commands.press(alice, later.action, later.value)
    this_week = bot.commands.handle(alice, "next")
    assert [i.title for i in this_week.items] == ["Ess Two"]
    clock.advance(days=7)
    assert [i.title for i in bot.commands.handle(alice, "next").items] == ["Ess One"]
    bot.delivery.deliver(clock())
    assert sent_titles(recorder, "alice") == ["Ess One", "Ess One"]
    assert recorder.keys("alice")[-1].endswith(NEXT_WEEK)


def test_onboarding_welcomes_once_and_carries_first_paper(
    bot: Bot, recorder: Recorder, clock: Clock
) -> None:
    outcomes = [bot.onboarding.joined("local", "nina", clock(), event_id="ev1") for _ in range(3)]
    outcomes += [
        bot.onboarding.joined("local", "nina", clock(), event_id=f"ev{i}") for i in range(2, 5)
    ]
    assert outcomes[0] == "welcomed"
    assert outcomes[1:3] == ["duplicate-event"] * 2
    assert set(outcomes[3:]) == {"already"}
    welcome = recorder.to("nina")
    assert len(welcome) == 1
    assert [i.title for i in welcome[0].items][-1] == "Ess One"
    assert bot.member("local", "nina").enrolled
    assert bot.delivery.deliver(clock()).count("already") == 1
    assert len(recorder.to("nina")) == 1
    clock.advance(days=7)
    bot.delivery.deliver(clock())
    assert sent_titles(recorder, "nina")[1:] == ["Ess Two"]
    assert "Welcome to the lab, nina!" in text_of(welcome[0])


def test_catalog_edit_keeps_progress(bot: Bot, small: Path, clock: Clock) -> None:
    alice = bot.member("local", "alice")
    for words in ("Ess One", "Opt One"):
        bot.commands.handle(alice, f"done {words}")
    write_catalog(
        small,
        [
            ("Basics", [item_line("💡", "Adv One", 1), item_line("⚡", "Ess New", 9)]),
            ("Core", [item_line("💎", "Opt Two", 4), item_line("⚡", "Ess One", 3)]),
            ("Last", [item_line("⚡", "Ess Two", 5)]),
        ],
    )  # Opt One removed, Ess New added, Ess One moved
    result = bot.library.reload()
    assert result.status == "loaded"
    progress = bot.commands.handle(alice, "progress")
    body = text_of(progress)
    assert "1 of 5 items read" in body
    assert "1 read item(s) were later removed" in body
    assert [i.title for i in bot.commands.handle(alice, "next").items] == ["Ess New"]
    assert bot.store.progress_for(alice.id)["arxiv:2301.00002"].state == "read"
    bot.commands.handle(alice, "done")
    bot.commands.handle(alice, "done")
    assert [i.title for i in bot.commands.handle(alice, "next").items] == ["Opt Two"]


def test_broken_reload_keeps_old_catalog(bot: Bot, small: Path) -> None:
    boss = bot.member("local", "boss")
    lines = small.read_text(encoding="utf-8").splitlines()
    bad_line = len(lines) + 1
    small.write_text("\n".join([*lines, item_line("🔥", "Hot", 7)]) + "\n", encoding="utf-8")
    reply = text_of(bot.commands.handle(boss, "reload"))
    assert "NOT loaded; still serving the previous one (5 items)" in reply
    assert f"{small}:{bad_line}" in reply
    assert len(bot.library.catalog.entries) == 5
    small.unlink()
    gone = text_of(bot.commands.handle(boss, "reload"))
    assert str(small) in gone and "(5 items)" in gone
    assert next(e.title for e in bot.library.catalog.entries) == "Adv One"


def test_batches_cover_every_member_once(
    bot: Bot, recorder: Recorder, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dcml_bot.core.delivery

    monkeypatch.setattr(dcml_bot.core.delivery, "BATCH", 3)
    users = [f"m{n}" for n in range(8)]
    enrol(bot, *users)
    bot.member("local", "lurker")  # not enrolled: not counted
    seen: list[str] = []
    report = bot.delivery.deliver(clock(), on_member=lambda m, o: seen.append(m.user_id))
    assert report.count("sent") == 8 and sorted(seen) == sorted(users)
    assert all(recorder.keys(u) == [f"weekly:local:{u}:{WEEK}"] for u in users)
    again = bot.delivery.deliver(clock())
    assert again.count("already") == 8 and len(recorder.sent) == 8
