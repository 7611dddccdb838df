"""/healthz answers 503 naming what cannot work, and a broken SQLite file stops start-up.

Over real HTTP (uvicorn on port 0) on SQLite and PostgreSQL: a database the bot cannot write
(a dropped table; SQLite's write lock held by another process; a PostgreSQL role that lost its
privileges), every Slack worker held by a slow workspace, and a weekly run that hangs. Then
``dcml-bot serve`` on an empty, a garbage and a truncated SQLite file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from conftest import _reset_postgresql
from dcml_bot.app import Service, build_service
from dcml_bot.server import build_http_app
from dcml_bot.store import open_store
from dcml_bot.store.database import SQLITE_HEADER
from fakes.api import running
from fakes.slack import DELIVERY_TIME, GatedSlack, Slack, slack_settings, team_join
from support import Clock, lab_settings

SCRIPT = Path(sys.executable).parent / "dcml-bot"
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def served(service: Service) -> Iterator[str]:
    """The service started and served over HTTP; its base URL."""
    with running(build_http_app(service)) as base:
        yield base


def health(base: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(base + "/healthz", timeout=30)
    return response.status_code, response.json()


def until(base: str, wanted: Callable[[int, dict[str, Any]], bool], within: float = 20) -> Any:
    """Poll /healthz until ``wanted(status, body)``; the body then."""
    deadline = time.monotonic() + within
    while True:
        status, body = health(base)
        if wanted(status, body):
            return body
        assert time.monotonic() < deadline, f"/healthz stayed {status}: {body}"
        time.sleep(0.1)


# --- the database -----------------------------------------------------------------------------


def test_a_dropped_table_makes_healthz_503_naming_the_database(db_url: str) -> None:
    service = build_service(lab_settings(db_url), schedule=False)
    with served(service) as base:
        status, body = health(base)
        assert status == 200 and body["failed"] == [] and body["database"]["writable"] is True
        engine = create_engine(db_url)
        try:
            with engine.begin() as connection:
                connection.execute(text("DROP TABLE processed_events"))
        finally:
            engine.dispose()
        status, body = health(base)
        assert status == 503 and body["status"] == "degraded"
        assert body["failed"] == ["database"]
        database = body["database"]
        assert database["reachable"] is True and database["writable"] is False
        assert "processed_events" in database["error"]


def test_sqlite_write_lock_held_by_another_process_makes_healthz_503(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    service = build_service(lab_settings(f"sqlite:///{path}"), schedule=False)
    with served(service) as base:
        assert health(base)[0] == 200
        # `sqlite3 bot.sqlite3` left in BEGIN IMMEDIATE: every write of the bot would wait 30 s.
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys\n"
                f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
                "c.execute('BEGIN IMMEDIATE')\n"
                "print('locked', flush=True)\n"
                "sys.stdin.read()\n",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            status, body = health(base)
            assert status == 503 and body["failed"] == ["database"]
            assert body["database"]["error"] == "database is locked"
        finally:
            holder.communicate("", timeout=30)
        status, body = health(base)
        assert status == 200 and body["database"]["writable"] is True


@pytest.fixture
def pg_url(pg_database: Engine) -> str:
    _reset_postgresql(pg_database)
    return pg_database.url.render_as_string(hide_password=False)


def test_postgresql_role_without_write_privileges_makes_healthz_503(
    pg_url: str, pg_database: Engine
) -> None:
    role = f"dcml_health_{uuid.uuid4().hex[:12]}"
    open_store(pg_url).dispose()  # migrated by the owner, as a deployment's admin would
    with pg_database.connect() as admin:
        admin.execute(text(f"CREATE ROLE {role} LOGIN"))
        try:
            admin.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
            tables = "ALL TABLES IN SCHEMA public"
            admin.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {role}"))
            admin.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"))
            url = make_url(pg_url).set(username=role).render_as_string(hide_password=False)
            service = build_service(lab_settings(url), schedule=False)
            with served(service) as base:
                assert health(base)[0] == 200
                admin.execute(text(f"REVOKE INSERT, UPDATE, DELETE ON {tables} FROM {role}"))
                status, body = health(base)
                assert status == 503 and body["failed"] == ["database"]
                assert body["database"]["reachable"] is True
                assert "permission denied for table processed_events" in body["database"]["error"]
                admin.execute(text(f"GRANT INSERT, UPDATE, DELETE ON {tables} TO {role}"))
                assert health(base)[0] == 200
        finally:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE usename = '{role}'"
                )
            )
            admin.execute(text(f"DROP OWNED BY {role}"))
            admin.execute(text(f"DROP ROLE {role}"))


# --- workers and the scheduler ----------------------------------------------------------------


def test_every_slack_worker_held_makes_healthz_503_until_they_move(db_url: str) -> None:
    fake = GatedSlack().start()
    service = build_service(slack_settings(db_url, fake), schedule=False)
    service.stall_after = 0.5  # seconds every worker may stay busy (60 in production)
    users = [f"U0HOLD{n:02d}" for n in range(20)]
    try:
        with served(service) as base:
            slack = Slack(service, base, fake, Clock(DELIVERY_TIME))
            assert health(base)[0] == 200
            for n, user in enumerate(users):  # each a welcome DM, held by the workspace
                slack.post(json.dumps(team_join(user, f"EvHold{n:02d}")), "application/json")
            body = until(base, lambda status, _: status == 503)
            assert body["failed"] == ["workers.slack"]
            workers = body["workers"]["slack"]
            assert workers["stuck"] is True and workers["running"] == workers["workers"] == 8
            assert workers["queued"] > 0 and workers["all_busy_seconds"] >= 0.5
            fake.gate.set()
            body = until(base, lambda status, _: status == 200)
            assert body["workers"]["slack"]["stuck"] is False
            service.platforms[0].drain(timeout=30)  # type: ignore[attr-defined]
            assert fake.welcomed(users) == dict.fromkeys(users, 1)
    finally:
        fake.gate.set()
        fake.stop()


def test_a_hanging_weekly_run_makes_healthz_503_naming_the_scheduler(db_url: str) -> None:
    fake = GatedSlack().start()
    settings = slack_settings(db_url, fake)
    # Ticks every 1.2 s: stale after two (2.4 s) without one finishing (30 min in production).
    service = build_service(settings, clock=Clock(DELIVERY_TIME), tick_minutes=0.02)
    store = service.bot.store
    member = store.upsert_member("slack", "U0WEEK", display_name="week", now=DELIVERY_TIME)
    store.set_enrolled(member.id, True, DELIVERY_TIME)
    try:
        with served(service) as base:
            # The first tick's paper waits at the gate (a workspace that never answers).
            body = until(base, lambda status, _: status == 503)
            assert body["failed"] == ["scheduler"]
            assert body["scheduler"]["stale"] is True and body["scheduler"]["last_tick"] is None
            assert (
                body["database"]["writable"] is True and body["workers"]["slack"]["stuck"] is False
            )
            fake.gate.set()
            body = until(base, lambda status, b: status == 200 and b["scheduler"]["last_tick"])
            assert body["scheduler"]["stale"] is False and body["scheduler"]["running"] is True
            assert len(fake.dms("U0WEEK")) == 1
    finally:
        fake.gate.set()
        fake.stop()


# --- start-up on a broken SQLite file ---------------------------------------------------------


def truncated(path: Path) -> None:
    """A real database with members, cut after its first two pages (a copy cut short)."""
    store = open_store(f"sqlite:///{path}")
    try:
        for n in range(200):
            store.upsert_member("local", f"u{n}", display_name="x" * 100, now=DELIVERY_TIME)
    finally:
        store.dispose()
    with path.open("r+b") as file:
        file.truncate(8192)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda path: path.write_bytes(b""), "the database file is empty (0 bytes)"),
        (
            lambda path: path.write_bytes(b"members: ann, bob\n" * 300),
            "not an SQLite database (its first bytes are not 'SQLite format 3')",
        ),
        (truncated, "the SQLite database is damaged (quick_check: database disk image is"),
    ],
    ids=["empty", "garbage", "truncated"],
)
def test_serve_refuses_a_broken_sqlite_file_and_leaves_it_untouched(
    tmp_path: Path, make: Callable[[Path], None], says: str
) -> None:
    path = tmp_path / "dcml-bot.sqlite3"
    make(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DCML_BOT_", "SLACK_"))}
    env.update(
        {
            "DCML_BOT_DATABASE_URL": f"sqlite:///{path}",
            "DCML_BOT_PORT": "0",
            "COLUMNS": "400",
            "NO_COLOR": "1",
        }
    )
    result = subprocess.run(
        [str(SCRIPT), "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: {path}: {says}")
    assert "restore it from a backup (README, Operations: Backup)" in errors[0]
    assert "Traceback" not in result.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != path.name)
    assert leftovers in ([], ["dcml-bot.sqlite3-shm", "dcml-bot.sqlite3-wal"]), leftovers


def test_a_new_database_file_is_created_whole(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dcml-bot.sqlite3"
    done = threading.Barrier(4)
    errors: list[BaseException] = []

    def start() -> None:
        done.wait()
        try:
            open_store(f"sqlite:///{path}").dispose()
        except BaseException as exc:  # collected: a start refused the file another created
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert path.read_bytes()[: len(SQLITE_HEADER)] == SQLITE_HEADER
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".new")] == []
    store = open_store(f"sqlite:///{path}")
    try:
        assert store.write_problem() is None and store.list_members() == []
    finally:
        store.dispose()


# --- the disk ---------------------------------------------------------------------------------


def test_too_little_free_disk_makes_healthz_503_naming_the_disk(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lab.sqlite3'}"
    service = build_service(lab_settings(url), schedule=False)
    with served(service) as base:
        status, body = health(base)
        disk = body["database"]["disk"]
        assert status == 200 and "disk" not in body["failed"]
        assert disk["path"] == str(tmp_path.resolve()) and disk["min_free_mb"] == 64
        # A floor above what this file system has free stands for a disk filling up.
        service.settings = service.settings.model_copy(
            update={"disk_min_free_mb": disk["free_mb"] + 10_000_000}
        )
        status, body = health(base)
        assert status == 503 and body["failed"] == ["disk"]
        assert body["database"]["writable"] is True  # the write probe alone would say ok


def test_postgresql_reports_no_local_disk(pg_database: Engine) -> None:
    _reset_postgresql(pg_database)
    service = build_service(
        lab_settings(pg_database.url.render_as_string(hide_password=False)), schedule=False
    )
    with served(service) as base:
        status, body = health(base)
        assert status == 200 and "disk" not in body["database"]
