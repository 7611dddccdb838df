"""Memory: peak RSS (VmHWM) of a Slack-only ``serve`` with 10,000 members, after a fan-out.

Run: .venv/bin/python bench/bench_memory.py [--members N] [--quick]

A temporary SQLite database is seeded with N members (default 10,000) enrolled on Slack, member i
having read the first i % 4 papers of the plan. Then ``serve`` starts as a child process, Slack-only
against a fake Web API in this process (no rate limit), through bench/serve_budget.py, which is
``dcml-bot serve`` with the Slack messenger's pacing set to zero (at the default budget the fan-out
would take N x 2 / 50 s; pacing holds no memory). The fan-out is triggered by a signed admin
``/dcml remind`` command request (the ack says "working on it"; the answer arrives on
``response_url`` when all N DMs are sent), with 200 ``/dcml`` commands from 20 users before it and
after it. VmRSS and VmHWM are read from /proc/<pid>/status at each stage.

Baseline: the bare Bolt app (bench/bare_bolt_app.py, inline ack) after the same 400 commands.
Target: the bot's peak <= 150 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from benchkit import (
    ADMIN,
    CONFIG,
    Child,
    RateLimitedSlack,
    bare_command,
    bot_env,
    free_port,
    log,
    machine,
    post_command,
    setup_logging,
)
from sqlalchemy import insert, select

from dcml_bot.core.library import CatalogLibrary
from dcml_bot.core.plan import reading_order
from dcml_bot.settings import load_settings
from dcml_bot.store import open_store
from dcml_bot.store.database import writer
from dcml_bot.store.schema import Member, Progress

LINES = ["essential", "progress", "next", "topics", "video", "help", "search clip", "math"]
CHUNK = 1000


def _seed(url: str, members: int) -> None:
    """Enrol members in bulk; member i has read the first i % 4 papers."""
    library = CatalogLibrary(load_settings(CONFIG).catalog)
    library.load()
    order = reading_order(library.catalog)
    now = dt.datetime.now(dt.UTC)
    users = [f"U0M{i:05d}" for i in range(members)]
    store = open_store(url)
    try:
        with writer(store.engine).begin() as connection:
            for start in range(0, members, CHUNK):
                rows = [
                    {"platform": "slack", "user_id": u, "enrolled": True, "joined_at": now}
                    for u in users[start : start + CHUNK]
                ]
                connection.execute(insert(Member), rows)
            ids = dict(connection.execute(select(Member.user_id, Member.id)).all())
            progress = [
                {
                    "member_id": ids[u],
                    "item_id": entry.id,
                    "state": "read",
                    "title": entry.title,
                    "updated_at": now,
                }
                for i, u in enumerate(users)
                for entry in order[: i % 4]
            ]
            for start in range(0, len(progress), CHUNK):
                connection.execute(insert(Progress), progress[start : start + CHUNK])
    finally:
        store.dispose()


def _commands(base: str, response_url: str, count: int = 200) -> None:
    for n in range(count):
        status, _ = post_command(base, LINES[n % len(LINES)], f"U0M{n % 20:05d}", response_url)
        if status != 200:
            raise RuntimeError(f"command answered {status}")


def _stage(child: Child, stage: str, rows: list[tuple[str, int, int]]) -> None:
    rss, hwm = child.status("VmRSS"), child.status("VmHWM")
    rows.append((stage, rss, hwm))
    log.info("  %-38s VmRSS %7.1f MB   VmHWM %7.1f MB", stage, rss / 1024, hwm / 1024)


def main() -> None:
    """Measure and print."""
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="2,000 members")
    args = parser.parse_args()
    if args.quick:
        args.members = 2000
    log.info("machine: %s", machine())
    fake = RateLimitedSlack().start()
    api = fake.base + "/api/"
    bot_rows: list[tuple[str, int, int]] = []
    bare_rows: list[tuple[str, int, int]] = []
    with tempfile.TemporaryDirectory(prefix="dcml-memory-") as name:
        directory = Path(name)
        url = f"sqlite:///{directory / 'bot.sqlite3'}"
        start = time.perf_counter()
        _seed(url, args.members)
        log.info("seeded %d enrolled members in %.1f s", args.members, time.perf_counter() - start)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = bot_env(
            url,
            port,
            slack_api=api,
            extra={"BENCH_SLACK_UNPACED": "1"},
        )
        wrapper = str(Path(__file__).resolve().parent / "serve_budget.py")
        child = Child([sys.executable, wrapper, "serve"], env, directory / "bot.log")
        try:
            log.info("bot (dcml-bot serve, Slack-only, %d members):", args.members)
            child.wait_healthy(base)
            _stage(child, "started, /healthz 200", bot_rows)
            _commands(base, fake.base + "/respond/member")
            _stage(child, "after 200 commands", bot_rows)
            fake.responded.clear()
            fake.answers.clear()
            start = time.perf_counter()
            status, ack = post_command(base, "remind", ADMIN, fake.base + "/respond/admin")
            said = ack.get("text") if isinstance(ack, dict) else ack
            log.info(
                "  admin /dcml remind acked %d in %.2f s: %r",
                status,
                time.perf_counter() - start,
                said,
            )
            if not fake.responded.wait(900):
                raise RuntimeError("the remind never answered on response_url")
            elapsed = time.perf_counter() - start
            sent = sum(1 for n in fake.received.values() if n > 0)
            log.info(
                "  fan-out done in %.1f s: %d members have a DM (%d duplicates)",
                elapsed,
                sent,
                sum(1 for n in fake.received.values() if n > 1),
            )
            _stage(child, "after the fan-out", bot_rows)
            _commands(base, fake.base + "/respond/member")
            _stage(child, "after 200 more commands", bot_rows)
        finally:
            child.stop()

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = bot_env(f"sqlite:///{directory / 'unused.sqlite3'}", port, slack_api=api)
        child = Child(bare_command(port, api, inline=True), env, directory / "bare.log")
        try:
            log.info("baseline (bare Bolt app, inline ack):")
            child.wait_healthy(base)
            _stage(child, "started, /healthz 200", bare_rows)
            _commands(base, fake.base + "/respond/member", 400)
            _stage(child, "after 400 commands", bare_rows)
        finally:
            child.stop()
    fake.stop()
    peak, bare_peak = bot_rows[-1][2], bare_rows[-1][2]
    log.info("")
    log.info(
        "peak RSS: bot %.1f MB, bare Bolt app %.1f MB, ratio %.2fx (target: bot <= 150 MB)",
        peak / 1024,
        bare_peak / 1024,
        peak / bare_peak,
    )


if __name__ == "__main__":
    main()
