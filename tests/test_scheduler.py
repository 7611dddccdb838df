"""The scheduler: cron slot in the lab time zone, catch-up ticks, retries, catalog refresh."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dcml_bot.core.delivery import DeliveryReport
from dcml_bot.core.jobs import Jobs
from dcml_bot.core.outbound import SendError
from dcml_bot.scheduler import (
    PRUNE_JOB,
    REFRESH_JOB,
    REVIEW_JOB,
    TICK_JOB,
    WEEKLY_JOB,
    Scheduler,
)
from fakes.api import FakeAPI
from support import (
    MONDAY_SLOT,
    WEEK,
    Clock,
    Recorder,
    item_line,
    make_bot,
    make_settings,
    text_of,
    write_catalog,
)


def enrol(bot, *users: str) -> None:  # type: ignore[no-untyped-def]
    for user in users:
        member = bot.member("local", user)
        bot.store.set_enrolled(member.id, True, bot.clock())


def test_weekly_job_fires_monday_ten_in_the_lab_time_zone(db_url: str) -> None:
    bot = make_bot(db_url, Recorder(), Clock(MONDAY_SLOT))
    try:
        scheduler = Scheduler(Jobs(bot), make_settings(db_url))
        when = scheduler.next_run()
        assert when is not None
        local = when.astimezone(ZoneInfo("Asia/Shanghai"))
        assert (local.weekday(), local.hour, local.minute) == (0, 10, 0)
        assert dt.timedelta(0) < when - dt.datetime.now(dt.UTC) <= dt.timedelta(days=7)
        assert set(scheduler.job_ids()) == {WEEKLY_JOB, REVIEW_JOB, TICK_JOB, PRUNE_JOB}
    finally:
        bot.close()


def test_slot_and_time_zone_come_from_settings(db_url: str) -> None:
    bot = make_bot(db_url, Recorder(), Clock(MONDAY_SLOT))
    try:
        settings = make_settings(db_url)
        delivery = settings.delivery.model_copy(update={"day": "fri", "time": dt.time(9, 30)})
        settings = settings.model_copy(
            update={"delivery": delivery, "timezone": "America/New_York"}
        )
        when = Scheduler(Jobs(bot), settings).next_run()
        assert when is not None
        local = when.astimezone(ZoneInfo("America/New_York"))
        assert (local.weekday(), local.hour, local.minute) == (4, 9, 30)
    finally:
        bot.close()


def test_missed_slot_is_caught_up_later_in_the_week_not_before_the_slot(db_url: str) -> None:
    recorder, clock = Recorder(), Clock(MONDAY_SLOT - dt.timedelta(minutes=1))
    bot = make_bot(db_url, recorder, clock)
    try:
        enrol(bot, "ann", "bob")
        jobs = Jobs(bot)
        early = jobs.deliver()
        assert early is not None and early.count("not-due") == 2 and recorder.sent == []
        clock.now = MONDAY_SLOT + dt.timedelta(days=2, hours=5)  # the bot was down until Wed
        late = jobs.deliver()
        assert late is not None and late.count("sent") == 2
        assert recorder.keys("ann") == [f"weekly:local:ann:{WEEK}"]
        clock.advance(minutes=15)
        again = jobs.deliver()
        assert again is not None and again.count("sent") == 0 and len(recorder.sent) == 2
    finally:
        bot.close()


def test_member_time_zone_decides_when_their_tick_delivers(db_url: str) -> None:
    recorder, clock = Recorder(), Clock(MONDAY_SLOT + dt.timedelta(minutes=5))
    bot = make_bot(db_url, recorder, clock)
    try:
        enrol(bot, "shanghai", "berlin")
        berlin = bot.store.get_member("local", "berlin")
        assert berlin is not None
        bot.store.set_timezone(berlin.id, "Europe/Berlin")
        jobs = Jobs(bot)
        jobs.deliver()
        assert [u for u, _, _ in recorder.sent] == ["shanghai"]
        clock.now = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)  # 10:00 in Berlin
        jobs.deliver()
        assert sorted(u for u, _, _ in recorder.sent) == ["berlin", "shanghai"]
    finally:
        bot.close()


def test_the_real_scheduler_thread_runs_the_catch_up_tick(db_url: str) -> None:
    recorder, clock = Recorder(), Clock(MONDAY_SLOT + dt.timedelta(hours=3))
    bot = make_bot(db_url, recorder, clock)
    reports: list[DeliveryReport] = []
    ran = threading.Event()

    def on_report(report: DeliveryReport) -> None:
        reports.append(report)
        ran.set()

    try:
        enrol(bot, "ann")
        scheduler = Scheduler(
            Jobs(bot, on_report=on_report), make_settings(db_url), first_tick=dt.timedelta(0)
        )
        scheduler.start()
        try:
            assert ran.wait(10)
        finally:
            scheduler.shutdown()
        assert reports[0].count("sent") == 1
        assert recorder.keys("ann") == [f"weekly:local:ann:{WEEK}"]
    finally:
        bot.close()


def test_overlapping_runs_are_skipped_not_doubled(db_url: str) -> None:
    recorder, clock = Recorder(), Clock(MONDAY_SLOT + dt.timedelta(hours=1))
    bot = make_bot(db_url, recorder, clock)
    try:
        enrol(bot, "ann")
        jobs = Jobs(bot)
        gate = threading.Event()
        original = recorder.send_dm

        def slow_send(user_id, reply, *, key):  # type: ignore[no-untyped-def]
            gate.wait(10)
            return original(user_id, reply, key=key)

        recorder.send_dm = slow_send  # type: ignore[method-assign]
        results: list[DeliveryReport | None] = []
        first = threading.Thread(target=lambda: results.append(jobs.deliver()))
        first.start()
        time.sleep(0.2)
        assert jobs.deliver() is None  # the weekly job fired while the tick was running
        gate.set()
        first.join()
        assert results[0] is not None and results[0].count("sent") == 1
        assert len(recorder.sent) == 1
    finally:
        bot.close()


def test_failed_welcome_is_retried_by_the_tick(db_url: str) -> None:
    recorder, clock = Recorder(), Clock(MONDAY_SLOT)
    bot = make_bot(db_url, recorder, clock)
    try:
        recorder.fail["newbie"] = SendError("timeout")
        assert bot.onboarding.joined("local", "newbie", clock()) == "failed"
        jobs = Jobs(bot)
        assert jobs.retry_welcomes(clock()) == 0  # not due yet
        del recorder.fail["newbie"]
        clock.advance(minutes=10)
        assert jobs.retry_welcomes(clock()) == 1
        assert recorder.keys("newbie")[0] == "welcome:local:newbie"
        assert jobs.retry_welcomes(clock()) == 0
    finally:
        bot.close()


def test_old_event_ids_are_pruned(db_url: str) -> None:
    clock = Clock(MONDAY_SLOT)
    bot = make_bot(db_url, Recorder(), clock)
    try:
        assert bot.store.record_event("slack", "Ev-old", clock() - dt.timedelta(days=8))
        assert bot.store.record_event("slack", "Ev-new", clock() - dt.timedelta(hours=7))
        assert Jobs(bot).prune() == 1
        assert not bot.store.record_event("slack", "Ev-new", clock())
        assert bot.store.record_event("slack", "Ev-old", clock())
    finally:
        bot.close()


@pytest.fixture
def served_catalog(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A catalog URL whose content the test can change."""
    state = {"body": b"", "etag": "v1"}
    good = write_catalog(
        tmp_path / "good.md", [("Basics", [item_line("⚡", "Attention", 1)])]
    ).read_bytes()

    def handler(request):  # type: ignore[no-untyped-def]
        if request["headers"].get("If-None-Match") == state["etag"]:
            return 304, b"", {"ETag": state["etag"]}
        return 200, state["body"], {"ETag": state["etag"]}

    state["body"] = good
    fake = FakeAPI({"/guide.md": handler}).start()
    yield fake, state, good
    fake.stop()


def test_catalog_refresh_keeps_the_good_version_and_tells_admins_once(
    db_url: str, served_catalog, tmp_path: Path
) -> None:
    fake, state, good = served_catalog
    recorder, clock = Recorder(), Clock(MONDAY_SLOT)
    bot = make_bot(db_url, recorder, clock)
    try:
        settings = make_settings(
            db_url, catalog=fake.base + "/guide.md", catalog_refresh_minutes=30
        )
        bot.library.source = fake.base + "/guide.md"
        jobs = Jobs(bot)
        assert REFRESH_JOB in Scheduler(jobs, settings).job_ids()
        assert jobs.refresh_catalog().status == "loaded"
        assert jobs.refresh_catalog().status == "unchanged"  # 304 via If-None-Match
        state["body"], state["etag"] = good + "- `❓` 📄 [Bad](https://x.org/1)\n".encode(), "v2"
        first = jobs.refresh_catalog()
        assert first.status == "rejected" and first.catalog is not None
        assert [e.title for e in bot.library.catalog.entries] == ["Attention"]
        assert len(recorder.to("boss")) == 1
        told = text_of(recorder.to("boss")[0])
        assert "guide.md:" in told and "❓" in told  # where it is and what is wrong
        state["etag"] = "v3"  # same broken text, new etag: no second DM
        assert jobs.refresh_catalog().status == "rejected"
        assert len(recorder.to("boss")) == 1
        state["body"], state["etag"] = b"", "v4"  # a different problem: a new DM
        assert jobs.refresh_catalog().status == "rejected"
        assert len(recorder.to("boss")) == 2
    finally:
        bot.close()


def test_without_catch_up_a_long_missed_slot_is_skipped_but_retries_go(db_url: str) -> None:
    recorder, clock = Recorder(), Clock(MONDAY_SLOT + dt.timedelta(minutes=30))
    bot = make_bot(db_url, recorder, clock)
    try:
        bot.policy = dataclasses.replace(bot.policy, catch_up=False)
        enrol(bot, "ontime", "retry")
        recorder.fail["retry"] = SendError("timeout")
        jobs = Jobs(bot)
        first = jobs.deliver()  # 30 min late: still within the hour
        assert first is not None and first.count("sent") == 1 and first.count("failed") == 1
        enrol(bot, "latecomer")
        del recorder.fail["retry"]
        clock.now = MONDAY_SLOT + dt.timedelta(days=2)
        late = jobs.deliver()
        assert late is not None
        assert late.count("missed") == 1 and late.count("sent") == 1  # the retry went
        assert recorder.keys("latecomer") == [] and recorder.keys("retry") == [
            f"weekly:local:retry:{WEEK}"
        ]
    finally:
        bot.close()


def test_admins_hear_once_about_a_member_who_cannot_be_reached(db_url: str) -> None:
    recorder, clock = Recorder(), Clock(MONDAY_SLOT + dt.timedelta(hours=1))
    bot = make_bot(db_url, recorder, clock)
    try:
        jobs = Jobs(bot)
        recorder.fail["gone"] = SendError(
            "feishu: 230013 user not in app availability", permanent=True
        )
        assert bot.onboarding.joined("local", "gone", clock()) == "failed"
        enrol(bot, "gone")
        jobs.deliver()
        clock.advance(days=7)
        jobs.deliver()
        told = recorder.to("boss")
        assert len(told) == 1
        assert "local:gone" in text_of(told[0]) and "230013" in text_of(told[0])
        attempts = [key for user, key in recorder.attempts if user == "gone"]
        assert len(attempts) == 3  # the welcome and two weeks: each tried once, never retried
    finally:
        bot.close()
