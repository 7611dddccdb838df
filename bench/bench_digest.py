"""The weekly review at lab scale: composing the digest, the needs-attention list and the admins'
``lab`` table (progress bars) over N members; prints figures, asserts nothing.

Run: .venv/bin/python bench/bench_digest.py [--members N] [--database-url URL]

Without ``--database-url`` a temporary SQLite file is used. A PostgreSQL URL must name an
empty database (create it before and drop it after the run).

Population: N enrolled local members; a tenth joined (and were welcomed) this week, a tenth four
weeks ago without answering anything since; member i has read the first i % 8 papers of the
plan, this week for every third member.

Baseline, measured in the same run: the reads every one of these views needs at least, i.e. all
members and all their progress rows (``list_members`` + ``progress_for_members``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, insert, select

from dcml_bot.app import build_bot
from dcml_bot.core.lab_table import lab_rows
from dcml_bot.core.plan import reading_order
from dcml_bot.platforms.local.messenger import LocalMessenger
from dcml_bot.settings import DigestSettings, load_settings
from dcml_bot.store import Store, open_store
from dcml_bot.store.database import writer
from dcml_bot.store.schema import Member, Progress

log = logging.getLogger("bench.digest")

ROOT = Path(__file__).resolve().parent.parent
# Friday 2026-12-04 17:00 in Shanghai: the digest slot (16:00) of 2026-W49 has passed.
NOW = dt.datetime(2026, 12, 4, 9, 0, tzinfo=dt.UTC)
WEEK = "2026-W49"
CHUNK = 1000
RUNS = 5


def _populate(store: Store, members: int, order: list[tuple[str, str]]) -> None:
    """Insert the members and their progress in bulk (see the module docstring)."""
    with writer(store.engine).begin() as connection:
        if connection.scalar(select(func.count()).select_from(Member)):
            raise SystemExit("the database is not empty: give the bench a fresh one")
        rows = []
        for i in range(members):
            joined = NOW - dt.timedelta(days=28 if i % 10 == 1 else 60)
            if i % 10 == 0:
                joined = NOW - dt.timedelta(days=1)
            rows.append(
                {
                    "platform": "local",
                    "user_id": f"u{i:05d}",
                    "display_name": f"Member {i}",
                    "enrolled": True,
                    "joined_at": joined,
                    "onboarded_at": joined,
                }
            )
        for start in range(0, members, CHUNK):
            connection.execute(insert(Member), rows[start : start + CHUNK])
        ids = dict(connection.execute(select(Member.user_id, Member.id)).all())
        progress = [
            {
                "member_id": ids[f"u{i:05d}"],
                "item_id": item_id,
                "state": "read",
                "title": title,
                "updated_at": NOW - dt.timedelta(hours=1 if i % 3 == 0 else 24 * 20),
            }
            for i in range(members)
            if i % 10 != 1  # the quiet tenth never answered
            for item_id, title in order[: i % 8]
        ]
        for start in range(0, len(progress), CHUNK):
            connection.execute(insert(Progress), progress[start : start + CHUNK])


def _timed(work: Callable[[], object]) -> tuple[float, float]:
    """Best and median seconds of RUNS runs."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def _run(url: str, members: int) -> None:
    store = open_store(url)
    try:
        settings = load_settings(ROOT / "config" / "dcml-bot.toml").model_copy(
            update={
                "database_url": url,
                "slack_bot_token": None,
                "slack_signing_secret": None,
                "slack_app_token": None,
                "feishu_app_id": None,
                "feishu_app_secret": None,
                "digest": DigestSettings(channel="lab"),
            }
        )
        messenger = LocalMessenger(store, lambda: NOW)
        bot = build_bot(settings, messengers={"local": messenger}, clock=lambda: NOW, store=store)
        order = [(e.id, e.title) for e in reading_order(bot.library.catalog)]
        _populate(store, members, order)
        everyone = [m.id for m in store.list_members()]

        def baseline() -> None:
            store.list_members()
            store.progress_for_members(everyone)

        figures = {
            "baseline (members + progress)": _timed(baseline),
            "digest compose": _timed(lambda: bot.digest.compose(WEEK)),
            "needs attention": _timed(lambda: bot.attention.concerns(NOW)),
            "lab rows (bars)": _timed(lambda: lab_rows(bot.commands.services)),
        }
        start = time.perf_counter()
        run = bot.digest.run(NOW)
        posting = time.perf_counter() - start
        week = bot.digest.compose(WEEK)
        concerns = bot.attention.concerns(NOW)
        log.info(
            "database: %s   members: %d   week: %s",
            store.engine.url.get_backend_name(),
            members,
            WEEK,
        )
        base = figures["baseline (members + progress)"][1]
        for name, (best, median) in figures.items():
            log.info(
                "%-30s best %7.1f ms  median %7.1f ms  (%.2fx baseline)",
                name,
                best * 1000,
                median * 1000,
                median / base,
            )
        log.info(
            "digest run (compose + post + thread): %.1f ms, %s / thread %s",
            posting * 1000,
            run.outcome,
            run.thread,
        )
        log.info(
            "the week: %d newcomers named, %d papers done, %d finishes, paper of the week: %s",
            len(week.newcomers),
            week.done,
            len(week.finishes),
            week.paper.entry.title if week.paper else None,
        )
        log.info("needs attention: %d members", len(concerns))
    finally:
        store.dispose()


def main() -> None:
    """Measure and print."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--database-url", help="an empty database (default: temp SQLite file)")
    args = parser.parse_args()
    if args.database_url:
        _run(args.database_url, args.members)
        return
    with tempfile.TemporaryDirectory() as directory:
        _run(f"sqlite:///{Path(directory) / 'bench.sqlite3'}", args.members)


if __name__ == "__main__":
    main()
