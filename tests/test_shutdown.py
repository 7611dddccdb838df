"""Prompt, lossless shutdown: queued joins are kept in the database and sent once after a restart.

In process (the service stopped while the fake Slack holds every post) and with real
``dcml-bot serve`` processes stopped by SIGTERM, on SQLite and PostgreSQL; and a weekly fan-out
that stops between members and is finished, once each, by the next run.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dcml_bot.app import build_service
from dcml_bot.core.delivery import STOPPED, WELCOME_PENDING
from dcml_bot.core.metrics import Metrics
from dcml_bot.core.outbound import Stopping
from dcml_bot.platforms.common.background import Background
from dcml_bot.server import build_http_app
from dcml_bot.store import open_store
from fakes.api import running
from fakes.slack import (
    DELIVERY_TIME,
    SECRET,
    FakeSlack,
    GatedSlack,
    Slack,
    slack_settings,
    team_join,
)
from support import MONDAY_SLOT, WEEK, Clock, Recorder, make_bot

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "dcml-bot"
JOINS = 40
# uvicorn ends a clean shutdown by re-raising the signal it caught (systemd counts that a success).
CLEAN_EXIT = {0, -signal.SIGTERM}


def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_stop_leaves_queued_joins_in_the_database_and_the_next_start_sends_each_once(
    db_url: str,
) -> None:
    fake = GatedSlack().start()
    users = [f"U0J{n:04d}" for n in range(JOINS)]
    settings = slack_settings(db_url, fake)
    try:
        service = build_service(settings, clock=Clock(DELIVERY_TIME), schedule=False)
        with running(build_http_app(service)) as base:
            slack = Slack(service, base, fake, Clock(DELIVERY_TIME))
            for n, user in enumerate(users):
                body = json.dumps(team_join(user, f"EvJoin{n:04d}"))
                assert slack.post(body, "application/json").status_code == 200
            wait_until(lambda: fake.waiting >= 1)
            # The workers hold posts at the gate and the rest wait in the queue; open the gate a
            # moment into the shutdown, as a slow workspace would answer.
            threading.Timer(0.5, fake.gate.set).start()
        # running() has stopped uvicorn, and with it the service (the lifespan).
        store = open_store(db_url)
        try:
            pending = {e.event_id for e in store.pending_events("slack")}
        finally:
            store.dispose()
        first = fake.welcomed(users)
        assert pending, "the shutdown drained the whole backlog instead of leaving it"
        assert all(n <= 1 for n in first.values())
        assert len(pending) + sum(first.values()) == JOINS

        again = build_service(settings, clock=Clock(DELIVERY_TIME), schedule=False)
        with running(build_http_app(again)):
            again.platforms[0].drain(30)  # type: ignore[attr-defined]
        twice = {u: keys_of(fake, u) for u, n in fake.welcomed(users).items() if n != 1}
        assert twice == {}
        store = open_store(db_url)
        try:
            assert store.pending_events("slack") == []
        finally:
            store.dispose()
    finally:
        fake.gate.set()
        fake.stop()


def test_a_redelivered_join_is_kept_once_and_not_replayed_after_it_was_handled(
    db_url: str,
) -> None:
    fake = FakeSlack().start()
    settings = slack_settings(db_url, fake)
    try:
        service = build_service(settings, clock=Clock(DELIVERY_TIME), schedule=False)
        with running(build_http_app(service)) as base:
            slack = Slack(service, base, fake, Clock(DELIVERY_TIME))
            body = json.dumps(team_join("U0ONCE", "EvOnce"))
            for _ in range(3):
                assert slack.post(body, "application/json").status_code == 200
            slack.platform.drain(10)
        again = build_service(settings, clock=Clock(DELIVERY_TIME), schedule=False)
        with running(build_http_app(again)):
            assert again.platforms[0].inbox.replay() == 0  # type: ignore[attr-defined]
            again.platforms[0].drain(10)  # type: ignore[attr-defined]
        assert len(fake.dms("U0ONCE")) == 1
    finally:
        fake.stop()


def test_background_shutdown_drops_only_replayable_work_not_yet_started() -> None:
    background = Background("test", Metrics(), workers=1)
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def hold() -> None:
        started.set()
        release.wait(10)
        done.append("held")

    background.submit(hold)
    started.wait(10)
    for n in range(5):
        background.submit(done.append, f"join{n}", replayable=True)
    background.submit(done.append, "press")
    threading.Timer(0.2, release.set).start()
    assert background.shutdown(grace=10) == 5
    assert done == ["held", "press"]


def test_a_fan_out_stopped_between_members_is_finished_once_by_the_next_run(db_url: str) -> None:
    recorder, clock = Recorder(), Clock(MONDAY_SLOT + dt.timedelta(hours=1))
    bot = make_bot(db_url, recorder, clock)
    users = [f"m{n:02d}" for n in range(12)]
    for user in users:
        member = bot.store.upsert_member("local", user, now=clock())
        bot.store.set_enrolled(member.id, True, clock())

    def stop_after_five(member: Any, outcome: str) -> None:
        if len(recorder.sent) == 5:
            bot.delivery.stopping.set()

    first = bot.delivery.deliver(clock(), week=WEEK, force=True, on_member=stop_after_five)
    assert first.count("sent") == 5 and first.count(STOPPED) == 7
    bot.delivery.stopping.clear()
    second = bot.delivery.deliver(clock(), week=WEEK, force=True)
    assert second.count("sent") == 7 and second.count("already") == 5
    assert sorted(uid for uid, _, _ in recorder.sent) == users
    bot.close()


def test_a_welcome_cut_short_is_not_overtaken_by_the_weekly_paper(db_url: str) -> None:
    recorder, clock = Recorder(), Clock(MONDAY_SLOT + dt.timedelta(hours=1))
    bot = make_bot(db_url, recorder, clock)
    recorder.fail["nina"] = Stopping()
    with pytest.raises(Stopping):
        bot.onboarding.joined("local", "nina", clock())
    member = bot.store.get_member("local", "nina")
    assert member is not None and member.enrolled and member.onboarded_at is None
    report = bot.delivery.deliver(clock())
    assert report.count(WELCOME_PENDING) == 1 and recorder.sent == []
    del recorder.fail["nina"]
    assert bot.onboarding.welcome(member, clock()) == "welcomed"
    assert bot.delivery.deliver(clock()).count("already") == 1
    assert [key.split(":")[0] for key in recorder.keys("nina")] == ["welcome"]
    bot.close()


# --- real processes: SIGTERM ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_env(db_url: str, fake: FakeSlack, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("DCML_BOT_", "SLACK_", "FEISHU_"))
    }
    env.update(
        {
            "DCML_BOT_DATABASE_URL": db_url,
            "DCML_BOT_HOST": "127.0.0.1",
            "DCML_BOT_PORT": str(port),
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": SECRET,
            "DCML_BOT_SLACK_API_URL": fake.base + "/api/",
            "NO_PROXY": "127.0.0.1",
        }
    )
    return env


@contextmanager
def serving(
    db_url: str, fake: FakeSlack, log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(SCRIPT), "serve"],
            cwd=ROOT,
            env=serve_env(db_url, fake, port),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: healthy(port) or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, log.read_text()
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/healthz")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def post_join(port: int, user: str, event_id: str) -> int:
    import hashlib
    import hmac

    body = json.dumps(team_join(user, event_id))
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(
        "POST",
        "/slack/events",
        body=body,
        headers={
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": "v0=" + digest,
        },
    )
    status = connection.getresponse().status
    connection.close()
    return status


def test_sigterm_with_welcomes_queued_exits_and_the_restart_sends_each_once(
    db_url: str, tmp_path: Path
) -> None:
    fake = GatedSlack().start()
    users = [f"U0T{n:04d}" for n in range(JOINS)]
    log = tmp_path / "serve.log"
    try:
        with serving(db_url, fake, log) as (proc, port):
            for n, user in enumerate(users):
                assert post_join(port, user, f"EvTerm{n:04d}") == 200
            wait_until(lambda: fake.waiting >= 1)
            proc.send_signal(signal.SIGTERM)
            threading.Timer(0.5, fake.gate.set).start()
            assert proc.wait(timeout=30) in CLEAN_EXIT, log.read_text()
        assert "Application shutdown complete" in log.read_text()
        first = fake.welcomed(users)
        assert all(n <= 1 for n in first.values())
        assert sum(first.values()) < JOINS, "the backlog was drained before exiting"
        assert "left for the next start" in log.read_text()

        with serving(db_url, fake, log) as (proc, _):
            wait_until(lambda: sum(fake.welcomed(users).values()) >= JOINS, timeout=60)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) in CLEAN_EXIT, log.read_text()
        twice = {u: keys_of(fake, u) for u, n in fake.welcomed(users).items() if n != 1}
        assert twice == {}
    finally:
        fake.gate.set()
        fake.stop()


def keys_of(fake: FakeSlack, user: str) -> list[str]:
    """The once-only keys of the DMs a user got (a duplicate names its key twice)."""
    return [m["metadata"]["event_payload"]["key"] for m in fake.dms(user)]
