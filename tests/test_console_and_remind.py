"""``dcml-bot console`` and ``dcml-bot remind`` on the local platform; the console's lab clock."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from pydantic import SecretStr

from dcml_bot.app import build_console, build_service
from dcml_bot.platforms.local.console import Console
from dcml_bot.platforms.local.messenger import LocalClock
from dcml_bot.store import Store, open_store
from support import MONDAY_SLOT, Clock, lab_settings

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "dcml-bot"


def run(db: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCML_BOT_")}
    env.update({"DCML_BOT_DATABASE_URL": f"sqlite:///{db}", "COLUMNS": "200", "NO_COLOR": "1"})
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def local_keys(db: Path) -> list[str]:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT key FROM local_messages ORDER BY id")).all()
    engine.dispose()
    return [row[0] for row in rows]


def test_console_join_click_week_and_state_kept(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    session = (
        ":join alice\n:join alice\n:click 1\n/dcml progress\n:as bob\n/dcml start\n:week\n:quit\n"
    )
    result = run(db, "console", stdin=session)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("Welcome to the lab, alice!") == 1  # the second :join sends nothing
    assert "alice joined the lab (already)" in out
    assert "Marked as read: MIT DCAI 2024" in out
    assert "essential: 1 of 43 read" in out
    assert "You are enrolled" in out
    assert "📩 DM to bob:" in out and "Your paper for" in out
    keys = local_keys(db)
    assert sum(k.startswith("welcome:local:alice") for k in keys) == 1
    assert sum(k.startswith("weekly:local:bob:") for k in keys) == 1
    # A new process on the same database remembers everything.
    again = run(db, "console", "--as", "alice", stdin="/dcml progress\n")
    assert "essential: 1 of 43 read" in again.stdout


def test_remind_once_per_week_dry_run_and_bad_week(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    run(db, "console", stdin=":as ann\n/dcml start\n:as ben\n/dcml start\n:as cid\n")
    dry = run(db, "remind", "--week", "2026-W50", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing sent" in dry.stdout and "would-send: 2" in dry.stdout
    assert local_keys(db) == []
    first = run(db, "remind", "--week", "2026-W50")
    assert "2 enrolled member(s); sent: 2" in first.stdout
    second = run(db, "remind", "--week", "2026-W50")
    assert "already: 2" in second.stdout
    assert sorted(local_keys(db)) == ["weekly:local:ann:2026-W50", "weekly:local:ben:2026-W50"]
    bad = run(db, "remind", "--week", "2026-W99")
    assert bad.returncode == 2
    assert "2026 has no week 99" in bad.stderr and "Traceback" not in bad.stderr


# --- the console on the lab clock ----------------------------------------------------------------

THURSDAY = MONDAY_SLOT + dt.timedelta(days=3)  # 2026-W49, its Monday slot passed


def session(console: Console, *lines: str) -> str:
    """A scripted console session: what it printed for these lines."""
    shown: list[str] = []
    script = iter(lines)

    def read(prompt: str) -> str:
        line = next(script, None)
        if line is None:
            raise EOFError  # the end of input ends the session, as in a terminal
        return line

    console.run(read=read, write=shown.append)
    return "\n".join(shown)


def test_advance_brings_a_newcomer_next_weeks_paper_and_the_clock_persists(db_url: str) -> None:
    web = build_service(lab_settings(db_url), clock=Clock(THURSDAY), schedule=False)
    console = build_console(lab_settings(db_url), "alice", clock=Clock(THURSDAY))
    try:
        web_clock = web.bot.clock
        assert isinstance(web_clock, LocalClock)
        web_clock.refresh = 0  # read the database on every call (default: at most once a second)
        shown = session(console, ":help")
        assert ":week " in shown and ":advance " in shown

        out = session(console, ":join alice", ":week")
        assert "Welcome to the lab, alice!" in out  # with this week's (W49) paper
        assert "weekly delivery: already: 1" in out
        assert "nothing new in alice's DMs: alice has this week's paper already" in out

        out = session(console, ":advance")
        assert console.bot.clock() == THURSDAY + dt.timedelta(days=7)
        assert "the lab clock is Thu 2026-12-10 02:00 UTC (7 days ahead of real time)" in out
        assert "1 weekly paper(s) went out" in out
        assert "📩 DM to alice:" in out and "Your paper for 2026-W50" in out
        assert [k for k in _keys(console) if k.startswith("weekly:local:alice:")] == [
            "weekly:local:alice:2026-W50"
        ]  # W49's paper came with the welcome
        assert "Marked as read" in session(console, ":click 1")  # the weekly paper's Done

        # The web lab on the same database, already running, now shows the same lab time …
        assert web_clock() == THURSDAY + dt.timedelta(days=7)
        # … and so does a second console session, which says so when it starts.
        again = build_console(lab_settings(db_url), "alice", clock=Clock(THURSDAY))
        try:
            assert again.bot.clock() == THURSDAY + dt.timedelta(days=7)
            out = session(again, ":week")
            assert "The lab clock is Thu 2026-12-10 02:00 UTC (7 days ahead of real time)." in out
            assert "alice has this week's paper already" in out
        finally:
            again.bot.close()
    finally:
        console.bot.close()
        web.stop()


def test_advance_from_the_web_lab_shows_in_the_console(db_url: str) -> None:
    console = build_console(lab_settings(db_url), "bob", clock=Clock(THURSDAY))
    web = build_service(lab_settings(db_url), clock=Clock(THURSDAY), schedule=False)
    try:
        session(console, ":as bob", "/dcml start")
        web_clock = web.bot.clock
        assert isinstance(web_clock, LocalClock)
        web_clock.advance(dt.timedelta(days=7))
        assert isinstance(console.clock, LocalClock)
        console.clock.refresh = 0
        out = session(console, ":advance")  # from the web lab's time, not the console's old one
        assert console.bot.clock() == THURSDAY + dt.timedelta(days=14)
        assert "(14 days ahead of real time)" in out and "Your paper for 2026-W51" in out
    finally:
        console.bot.close()
        web.stop()


def test_advance_refused_when_a_chat_platform_keeps_real_time(db_url: str) -> None:
    settings = lab_settings(
        db_url, slack_bot_token=SecretStr("xoxb-test"), slack_signing_secret=SecretStr("s")
    )
    assert settings.slack_enabled
    console = build_console(settings, "carol", clock=Clock(THURSDAY))
    try:
        assert console.clock is None
        out = session(console, ":advance")
        assert "the lab clock moves only when the local platform runs alone" in out
        assert console.bot.clock() == THURSDAY
    finally:
        console.bot.close()


def test_console_entry_point_advance_persists_between_sessions(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    first = run(db, "console", "--as", "dan", stdin=":help\n:join dan\n:advance\n:quit\n")
    assert first.returncode == 0, first.stderr
    assert ":advance" in first.stdout and ":week" in first.stdout
    assert "(7 days ahead of real time)" in first.stdout
    second = run(db, "console", "--as", "dan", stdin=":quit\n")
    assert second.returncode == 0, second.stderr
    assert "(7 days ahead of real time)." in second.stdout  # said when the session starts


def _keys(console: Console) -> list[str]:
    """The once-only keys of every local DM sent, oldest first."""
    with console.bot.store.engine.connect() as connection:
        query = sa.text("SELECT key FROM local_messages WHERE key IS NOT NULL ORDER BY id")
        return [row[0] for row in connection.execute(query)]


# --- remind after a crash: claims of ended processes, and who is left ----------------------------

HOST = socket.gethostname()
W50 = "2026-W50"


def enrolled(db: Path, *users: str) -> tuple[Store, dict[str, int]]:
    """Open (and migrate) the database and enrol these local users; returns their member ids."""
    store = open_store(f"sqlite:///{db}")
    now = dt.datetime.now(dt.UTC)
    ids = {}
    for user in users:
        ids[user] = store.upsert_member("local", user, now=now).id
        store.set_enrolled(ids[user], True, now)
    return store, ids


def hold(store: Store, member_id: int, user: str, worker: str) -> str:
    """Claim a user's W50 paper as ``worker``, as a run that has not finished would have."""
    key = f"weekly:local:{user}:{W50}"
    now = dt.datetime.now(dt.UTC)
    assert store.claim(key, member_id=member_id, kind="weekly", week=W50, worker=worker, now=now)
    return key


def test_remind_takes_over_the_claim_of_an_ended_process_at_once(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    store, ids = enrolled(db, "ann", "ben")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    try:
        hold(store, ids["ann"], "ann", f"{HOST}:{ended.pid}")  # its lease has 5 minutes to go
        result = run(db, "remind", "--week", W50)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 enrolled member(s); sent: 2" in result.stdout
        assert sorted(local_keys(db)) == [f"weekly:local:{u}:{W50}" for u in ("ann", "ben")]
    finally:
        store.dispose()


def test_remind_names_each_member_left_and_why_then_exits_1(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    store, ids = enrolled(db, "ann", "ben", "cid", "dan", "eve")
    try:
        now = dt.datetime.now(dt.UTC)
        live = hold(store, ids["ann"], "ann", f"{HOST}:{os.getpid()}")  # this test: running
        remote = hold(store, ids["ben"], "ben", "elsewhere.invalid:1")
        failed = hold(store, ids["cid"], "cid", "w0")
        retry_at = now + dt.timedelta(hours=1)
        assert store.mark_failed(failed, worker="w0", error="timeout", retry_at=retry_at, now=now)
        dead = hold(store, ids["dan"], "dan", "w0")
        assert store.mark_failed(dead, worker="w0", error="gone", retry_at=None, dead=True, now=now)

        result = run(db, "remind", "--week", W50, "--wait", "0")
        assert result.returncode == 1, result.stdout + result.stderr
        leases = {k: getattr(store.get_outbox(k), "lease_until", None) for k in (live, remote)}
        until = {k: f"{lease:%H:%M:%S} UTC" for k, lease in leases.items()}
        lines = result.stdout.splitlines()
        assert lines[lines.index("5 enrolled member(s); already: 2, busy: 2, sent: 1") + 1 :] == [
            f"local:ann {W50}: held by {HOST}:{os.getpid()}, still running on this host, "
            f"until {until[live]}",
            f"local:ben {W50}: held by elsewhere.invalid:1 on another host until {until[remote]}",
            f"local:cid {W50}: failed (timeout); tried again from {retry_at:%H:%M} UTC",
            "3 member(s) still without this week's paper: the scheduler of a running `serve` "
            "(or another `remind`) sends them later, never twice.",
        ]
        assert local_keys(db) == [f"weekly:local:eve:{W50}"]
    finally:
        store.dispose()


def test_remind_waits_for_a_paper_a_live_process_is_sending(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    store, ids = enrolled(db, "ann", "ben")
    holder = f"{HOST}:{os.getpid()}"
    key = hold(store, ids["ann"], "ann", holder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCML_BOT_")}
    env.update({"DCML_BOT_DATABASE_URL": f"sqlite:///{db}", "COLUMNS": "200", "NO_COLOR": "1"})
    out = tmp_path / "remind.out"
    with out.open("wb") as stdout:
        remind = subprocess.Popen(
            [str(SCRIPT), "remind", "--week", W50, "--wait", "30"],
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while getattr(store.get_outbox(f"weekly:local:ben:{W50}"), "status", None) != "sent":
            assert remind.poll() is None, out.read_text()
            assert time.monotonic() < deadline, "remind never served ben"
            time.sleep(0.02)
        time.sleep(0.5)
        assert remind.poll() is None, "remind ended while ann's paper was still held"
        # The holder (this test) finishes: remind sees it and ends, complete.
        assert store.mark_sent(
            key, worker=holder, platform_message_id="m0", now=dt.datetime.now(dt.UTC)
        )
        assert remind.wait(timeout=10) == 0, out.read_text()
    finally:
        if remind.poll() is None:
            remind.kill()
            remind.wait()
        store.dispose()
    shown = out.read_text()
    assert "2 enrolled member(s); already: 1, sent: 1" in shown
    assert "without this week's paper" not in shown
    assert local_keys(db) == [f"weekly:local:ben:{W50}"]
