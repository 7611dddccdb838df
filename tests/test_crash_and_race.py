"""Exactly one weekly paper per member per week, proven with real ``dcml-bot remind`` processes.

A run is SIGKILLed mid-delivery several times and then restarted; two runs race each other.
Both on SQLite and on PostgreSQL, on the built-in local platform, whose ``local_messages``
table is what the members actually received (at most one message per once-only key).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from dcml_bot.core.reply import Reply, render_plain
from dcml_bot.store import Store, open_store
from fakes.api import FakeAPI, Handler

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "dcml-bot"
GUIDE = ROOT / "config" / "catalog" / "dcml.md"
WEEK = "2026-W49"
MEMBERS = 300
KILLS = 3
SUMMARY = re.compile(r"^(\d+) enrolled member\(s\); (.+)$", re.MULTILINE)


USERS = [f"u{index:04d}" for index in range(MEMBERS)]


def weekly_key(user_id: str) -> str:
    return f"weekly:local:{user_id}:{WEEK}"


def seed(url: str) -> Store:
    """Migrate the database and enrol MEMBERS local members; the store stays open for checks."""
    store = open_store(url)
    now = dt.datetime.now(dt.UTC)
    for user_id in USERS:
        member = store.upsert_member("local", user_id, display_name=user_id, now=now)
        store.set_enrolled(member.id, True, now)
    return store


def child_env(url: str, **extra: str) -> dict[str, str]:
    """The parent's environment without bot settings or chat secrets: only the local platform."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("DCML_BOT_", "SLACK_", "FEISHU_"))
    }
    env.update(
        {
            "DCML_BOT_DATABASE_URL": url,
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "NO_PROXY": "127.0.0.1",
            **extra,
        }
    )
    return env


@dataclass
class Remind:
    """A ``dcml-bot remind --week WEEK`` process with its output in files (no pipe can fill)."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    @classmethod
    def start(cls, url: str, where: Path, **extra: str) -> Remind:
        out, err = where.with_suffix(".out"), where.with_suffix(".err")
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                [str(SCRIPT), "remind", "--week", WEEK],
                cwd=ROOT,
                env=child_env(url, **extra),
                stdout=stdout,
                stderr=stderr,
            )
        return cls(proc, out, err)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.stop()

    def stop(self) -> None:
        """Kill the process if it is still running (cleanup only)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    @property
    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8")

    @property
    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8")

    def outcomes(self, enrolled: int = MEMBERS) -> Counter[str]:
        """The outcome counts of the summary line, e.g. {"sent": 98, "already": 199}."""
        found = SUMMARY.findall(self.stdout)
        assert len(found) == 1, f"no summary line in:\n{self.stdout}\n{self.stderr}"
        members, summary = found[0]
        assert int(members) == enrolled
        if summary == "nothing to do":
            return Counter()
        pairs = (part.split(": ") for part in summary.split(", "))
        return Counter({outcome: int(count) for outcome, count in pairs})


def run_remind(url: str, where: Path) -> tuple[Counter[str], Remind]:
    """Run remind to completion (exit 0); return its outcome counts."""
    remind = Remind.start(url, where)
    code = remind.wait()
    assert code == 0, remind.stderr
    return remind.outcomes(), remind


def local_count(store: Store) -> int:
    with store.engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM local_messages")).scalar_one()


def delivered_keys(store: Store) -> set[str]:
    with store.engine.connect() as connection:
        return set(connection.execute(text("SELECT key FROM local_messages")).scalars())


def ledger(store: Store) -> dict[str, tuple[str, bool]]:
    """The week's outbox as key -> (status, whether the local platform has that message)."""
    query = text(
        "SELECT o.key, o.status, l.id IS NOT NULL FROM outbox o"
        " LEFT JOIN local_messages l ON l.key = o.key"
        " WHERE o.week = :week AND o.kind = 'weekly'"
    )
    with store.engine.connect() as connection:
        return {
            key: (status, bool(has))
            for key, status, has in connection.execute(query, {"week": WEEK})
        }


def kill_mid_run(url: str, store: Store, growth: int, where: Path) -> tuple[int, int]:
    """Start remind, SIGKILL it once it has stored ``growth`` more DMs; return (before, after)."""
    before = local_count(store)
    remind = Remind.start(url, where)
    try:
        deadline = time.monotonic() + 30
        while local_count(store) < before + growth:
            assert remind.proc.poll() is None, f"remind ended before the kill:\n{remind.stderr}"
            assert time.monotonic() < deadline, "remind made no progress in 30 s"
            time.sleep(0.005)
        remind.proc.send_signal(signal.SIGKILL)
        code = remind.proc.wait(timeout=10)
    finally:
        remind.stop()
    assert code == -signal.SIGKILL, f"exit {code}, expected death by SIGKILL:\n{remind.stderr}"
    return before, local_count(store)


def assert_no_duplicates(store: Store) -> None:
    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT user_id, key FROM local_messages")).all()
    doubles = {u: n for u, n in Counter(u for u, _ in rows).items() if n > 1}
    assert not doubles, f"members with more than one message: {doubles}"
    assert all(key == weekly_key(user_id) for user_id, key in rows)


def assert_exactly_once(store: Store) -> None:
    """Every member holds exactly one weekly DM for WEEK, and the ledger and progress agree."""
    with store.engine.connect() as connection:
        messages = connection.execute(
            text("SELECT id, user_id, key, reply FROM local_messages ORDER BY id")
        ).all()
        outbox = connection.execute(
            text(
                "SELECT o.key, o.status, o.platform_message_id, o.item_id, o.title, m.user_id"
                " FROM outbox o JOIN members m ON m.id = o.member_id"
                " WHERE o.week = :week AND o.kind = 'weekly'"
            ),
            {"week": WEEK},
        ).all()
        progress = connection.execute(
            text(
                "SELECT m.user_id, p.item_id, p.state FROM progress p"
                " JOIN members m ON m.id = p.member_id"
            )
        ).all()
    per_user = Counter(row.user_id for row in messages)
    doubles = {u: n for u, n in per_user.items() if n > 1}
    missing = sorted(set(USERS) - set(per_user))
    assert not doubles, f"members with more than one message: {doubles}"
    assert not missing, f"{len(missing)} member(s) without their paper: {missing[:10]}"
    assert len(messages) == MEMBERS
    assert {row.key for row in messages} == {weekly_key(u) for u in USERS}
    assert all(row.key == weekly_key(row.user_id) for row in messages)

    assert len(outbox) == MEMBERS, f"{len(outbox)} outbox rows for {MEMBERS} members"
    assert Counter(row.status for row in outbox) == {"sent": MEMBERS}
    # The ledger names the very message the member holds, and that message is the ledger's paper.
    by_key = {row.key: row for row in messages}
    for row in outbox:
        message = by_key[row.key]
        assert row.platform_message_id == str(message.id), row.key
        assert row.title in render_plain(Reply.model_validate_json(message.reply)), row.key
    # The paper is recorded as delivered (state "sent"), once, for every member.
    assert sorted((row.user_id, row.item_id, "sent") for row in outbox) == sorted(
        tuple(row) for row in progress
    )


def test_sigkill_mid_run_then_restart_sends_each_paper_exactly_once(
    db_url: str, tmp_path: Path
) -> None:
    store = seed(db_url)
    try:
        rng = random.Random()
        growths = [rng.randint(10, 45) for _ in range(KILLS)]
        for cycle, growth in enumerate(growths):
            before, after = kill_mid_run(db_url, store, growth, tmp_path / f"killed-{cycle}")
            assert before + growth <= after < MEMBERS, "the kill must land mid-run"
        assert_no_duplicates(store)

        # Each kill can leave one claim behind, its DM stored or not; a later run takes over
        # the claims of the runs killed before it, so some may be settled already.
        left = ledger(store)
        claimed = {k for k, (status, _) in left.items() if status == "claimed"}
        stored = {k for k in claimed if left[k][1]}
        assert len(claimed) <= KILLS
        sent_before = sum(status == "sent" for status, _ in left.values())

        # Restarted at once (no clock moved): the killed runs' claims are taken over without
        # waiting for their leases; a DM already stored is recorded ("recovered"), not resent.
        started = time.monotonic()
        outcomes, final = run_remind(db_url, tmp_path / "restart")
        took = time.monotonic() - started
        assert outcomes == Counter(
            {
                "already": sent_before,
                "recovered": len(stored),
                "sent": MEMBERS - sent_before - len(stored),
            }
        ), final.stdout
        assert "without this week's paper" not in final.stdout
        assert_exactly_once(store)

        log.info(
            "kills after +%s DMs left %d claim(s), %d with the DM stored; restart took %.1f s: %s",
            growths,
            len(claimed),
            len(stored),
            took,
            dict(outcomes),
        )

        # And again: nothing new.
        outcomes, _ = run_remind(db_url, tmp_path / "again")
        assert outcomes == Counter({"already": MEMBERS})
        assert local_count(store) == MEMBERS
        assert_exactly_once(store)
    finally:
        store.dispose()


class _BarrierServer(ThreadingHTTPServer):
    """Serves the guide, but answers only when two processes have both asked for it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _BarrierHandler)
        self.barrier = threading.Barrier(2, timeout=30)
        self.requests = 0


class _BarrierHandler(BaseHTTPRequestHandler):
    server: _BarrierServer

    def do_GET(self) -> None:
        self.server.requests += 1
        try:
            self.server.barrier.wait()
        except threading.BrokenBarrierError:
            self.send_error(503, "the other remind never asked for the catalog")
            return
        body = GUIDE.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/markdown; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def starting_gate() -> Iterator[_BarrierServer]:
    """A catalog URL that releases both remind processes at the same moment.

    The catalog is the last thing remind loads before delivering, so both start delivering
    together instead of one finishing before the other has started.
    """
    server = _BarrierServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.barrier.abort()
        server.shutdown()
        server.server_close()


def wait_for_lock_waiters(store: Store, count: int, runs: list[Remind]) -> None:
    """Wait until ``count`` PostgreSQL sessions queue for a lock on the outbox table."""
    query = text(
        "SELECT count(*) FROM pg_locks WHERE relation = 'outbox'::regclass AND NOT granted"
    )
    deadline = time.monotonic() + 30
    with store.engine.connect() as connection:
        while connection.execute(query).scalar_one() < count:
            for remind in runs:
                assert remind.proc.poll() is None, f"remind ended at the gate:\n{remind.stderr}"
            assert time.monotonic() < deadline, "the remind processes never reached the gate"
            connection.rollback()
            time.sleep(0.005)


def test_two_reminds_racing_send_each_paper_exactly_once(
    db_url: str, tmp_path: Path, starting_gate: _BarrierServer
) -> None:
    store = seed(db_url)
    catalog = f"http://127.0.0.1:{starting_gate.server_address[1]}/dcml.md"
    runs: list[Remind] = []
    try:
        with store.engine.connect() as gate:
            if store.engine.dialect.name == "postgresql":
                # Reads pass, but both runs queue at their first claim (member 0), so the two
                # are sure to contend, however the machine schedules them.
                gate.execute(text("LOCK TABLE outbox IN EXCLUSIVE MODE"))
            for name in ("a", "b"):
                runs.append(Remind.start(db_url, tmp_path / name, DCML_BOT_CATALOG=catalog))
            if store.engine.dialect.name == "postgresql":
                wait_for_lock_waiters(store, 2, runs)
            gate.commit()
        codes = [remind.wait() for remind in runs]
        assert codes == [0, 0], [remind.stderr for remind in runs]
        assert starting_gate.requests == 2
        outcomes = [remind.outcomes() for remind in runs]
        # Each member is served by exactly one of the two; the other saw it taken.
        assert sum(o["sent"] for o in outcomes) == MEMBERS, outcomes
        for o in outcomes:
            # A paper the other run held is waited for, so each run ends with it "already" sent.
            assert o.total() == MEMBERS and set(o) <= {"sent", "already"}, o
        assert_exactly_once(store)
        log.info("race outcomes: %s", [dict(o) for o in outcomes])
    finally:
        for remind in runs:
            remind.stop()
        store.dispose()


# --- a slow chat platform: a SIGKILL while a request is on the wire ------------------------------

SLACK_MEMBERS = 40


class SlowSlack(FakeAPI):
    """The Slack Web API ``remind`` calls; keeps every DM posted, duplicates included.

    ``hold(path, nth)`` makes the nth next request to ``path`` wait for ``release`` before it
    is answered (its effect, such as a posted DM, already done): a slow network, during which
    the test kills the caller.
    """

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[tuple[str, str, str]] = []  # (channel, key, ts) of every DM posted
        self.held, self.release = threading.Event(), threading.Event()
        self._hold: tuple[str, int] | None = None
        self._ts = 1_700_000_000
        auth = {"ok": True, "team_id": "T0001", "user_id": "U0BOT", "bot_id": "B1"}
        for path, answer in {
            "/api/auth.test": lambda r: auth,
            "/api/conversations.open": lambda r: {
                "ok": True,
                "channel": {"id": "D" + arg(r, "users")},
            },
            "/api/chat.postMessage": self._post,
            "/api/conversations.history": self._history,
            "/api/users.info": lambda r: {"ok": True, "user": {"id": arg(r, "user"), "tz": "UTC"}},
        }.items():
            self.routes[path] = self._slow(path, answer)

    def hold(self, path: str, nth: int) -> None:
        with self.lock:
            self._hold = (path, self.hits[path] + nth)
        self.held.clear()
        self.release.clear()

    def _slow(self, path: str, answer: Callable[[dict[str, Any]], Any]) -> Handler:
        def handler(request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
            payload = answer(request)
            with self.lock:
                held = self._hold == (path, self.hits[path])
            if held:
                self.held.set()
                self.release.wait(timeout=30)
            return 200, payload, {}

        return handler

    def _post(self, request: dict[str, Any]) -> dict[str, Any]:
        key = request["body"]["metadata"]["event_payload"]["key"]
        with self.lock:
            self._ts += 1
            ts = f"{self._ts}.000100"
            self.posts.append((arg(request, "channel"), key, ts))
        return {"ok": True, "channel": arg(request, "channel"), "ts": ts}

    def _history(self, request: dict[str, Any]) -> dict[str, Any]:
        channel = arg(request, "channel")
        with self.lock:
            found = [(k, ts) for c, k, ts in reversed(self.posts) if c == channel]
        messages = [
            {"ts": ts, "metadata": {"event_type": "dcml", "event_payload": {"key": k}}}
            for k, ts in found
        ]
        return {"ok": True, "messages": messages}


def arg(request: dict[str, Any], name: str) -> str:
    """A Web API argument, from the query or the body."""
    body = request["body"] if isinstance(request["body"], dict) else {}
    return str({**request["query"], **body}[name])


def kill_when_held(remind: Remind, fake: SlowSlack) -> None:
    """SIGKILL remind while the fake holds its request, then let the fake answer nobody."""
    try:
        deadline = time.monotonic() + 30
        while not fake.held.wait(timeout=0.01):
            assert remind.proc.poll() is None, f"remind ended before the kill:\n{remind.stderr}"
            assert time.monotonic() < deadline, "remind never reached the held request"
        remind.proc.send_signal(signal.SIGKILL)
        assert remind.proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        fake.release.set()
        remind.stop()


def test_sigkill_on_a_slow_platform_then_one_remind_completes_the_week(
    db_url: str, tmp_path: Path
) -> None:
    users = [f"U{index:05d}" for index in range(SLACK_MEMBERS)]
    fake = SlowSlack().start()
    store = open_store(db_url)
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "secret",
        "DCML_BOT_SLACK_API_URL": fake.base + "/api/",
    }
    try:
        now = dt.datetime.now(dt.UTC)
        for user_id in users:
            store.set_enrolled(store.upsert_member("slack", user_id, now=now).id, True, now)
        key = {u: f"weekly:slack:{u}:{WEEK}" for u in users}

        # 1. Killed while Slack is slow to open the 8th member's DM: a claim, nothing posted.
        fake.hold("/api/conversations.open", 8)
        kill_when_held(Remind.start(db_url, tmp_path / "first", **env), fake)
        # 2. The next run, at once, takes that claim over (checks Slack, finds nothing, sends),
        #    then is killed while the answer to its 10th post is on its way: the DM is posted,
        #    but the run never learns it.
        fake.hold("/api/chat.postMessage", 10)
        kill_when_held(Remind.start(db_url, tmp_path / "second", **env), fake)
        rows = {row.key: row for row in map(store.get_outbox, key.values()) if row is not None}
        held = {k for k, row in rows.items() if row.status == "claimed"}
        posted = [k for _, k, _ in fake.posts]
        assert len(posted) == len(set(posted)) == 7 + 10
        assert held == {key[users[16]]} and posted[-1] == key[users[16]]
        assert rows[key[users[7]]].status == "sent" and key[users[7]] in posted
        sent_before = sum(row.status == "sent" for row in rows.values())
        assert sent_before == 16
        assert fake.hits["/api/conversations.history"] == 1  # the first run's claim, reconciled

        # 3. One more run, at once: every member ends with exactly one DM; exit 0.
        started = time.monotonic()
        final = Remind.start(db_url, tmp_path / "final", **env)
        assert final.wait() == 0, final.stdout + final.stderr
        took = time.monotonic() - started
        outcomes = final.outcomes(SLACK_MEMBERS)
        assert outcomes == Counter(
            {"already": sent_before, "recovered": 1, "sent": SLACK_MEMBERS - sent_before - 1}
        ), final.stdout
        assert fake.hits["/api/conversations.history"] == 2  # only the recovered claims asked
        per_key = Counter(k for _, k, _ in fake.posts)
        assert per_key == Counter(set(key.values())), "each member: exactly one DM"
        by_key = {k: f"{channel}/{ts}" for channel, k, ts in fake.posts}
        for user_id in users:
            row = store.get_outbox(key[user_id])
            assert row is not None and row.status == "sent", user_id
            assert row.platform_message_id == by_key[key[user_id]], user_id
        log.info("after two kills, the final remind took %.1f s: %s", took, dict(outcomes))
    finally:
        fake.release.set()
        store.dispose()
        fake.stop()
