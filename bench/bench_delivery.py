"""Weekly delivery at lab scale: one run over N enrolled members; prints figures, asserts nothing.

Run: .venv/bin/python bench/bench_delivery.py [--members N] [--database-url URL]

Without ``--database-url`` a temporary SQLite file is used. A PostgreSQL URL must name an
empty database (create it before and drop it after the run).

Baseline, measured in the same run on the same database (before and after the delivery, the mean
is used): the bare minimum database work per member, i.e. one INSERT ... ON CONFLICT DO NOTHING
claim and one UPDATE confirm, each in its own transaction, through SQLAlchemy Core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dcml_bot.core.delivery import Delivery
from dcml_bot.core.library import CatalogLibrary
from dcml_bot.core.once import OnceOnly
from dcml_bot.core.plan import reading_order, week_of
from dcml_bot.core.profile import Profiles
from dcml_bot.core.reply import Reply
from dcml_bot.store import Store, open_store
from dcml_bot.store.database import writer
from dcml_bot.store.schema import Member, Outbox, Progress

log = logging.getLogger("bench.delivery")

LAB_TIMEZONE = "Asia/Shanghai"
# Monday 2026-11-30 10:30 in Shanghai: every member's slot of ISO week 2026-W49 has passed.
NOW = dt.datetime(2026, 11, 30, 2, 30, tzinfo=dt.UTC)
BARE_WEEK = "2000-W01"
CHUNK = 1000


class Inbox:
    """An in-memory messenger for platform "local" that remembers every DM by user."""

    platform = "local"
    resend_window = None  # find_sent always tells

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: dict[str, list[str]] = defaultdict(list)
        self.count = 0

    def send_dm(self, user_id: str, reply: Reply, *, key: str) -> str:
        """Record the DM and return a message id."""
        with self.lock:
            self.keys[user_id].append(key)
            self.count += 1
            return f"m{self.count}"

    def find_sent(self, user_id: str, key: str) -> str | None:
        """The id of a DM already sent with this key (never: the bench does not crash)."""
        with self.lock:
            return "found" if key in self.keys.get(user_id, []) else None


def _populate(store: Store, members: int, library: CatalogLibrary) -> list[str]:
    """Insert enrolled members in bulk, member i having read the first i % 4 papers."""
    order = reading_order(library.catalog)
    users = [f"u{i:05d}" for i in range(members)]
    with writer(store.engine).begin() as connection:
        if connection.scalar(select(func.count()).select_from(Member)):
            raise SystemExit("the database is not empty: give the bench a fresh one")
        for start in range(0, members, CHUNK):
            rows = [
                {"platform": "local", "user_id": u, "enrolled": True, "joined_at": NOW}
                for u in users[start : start + CHUNK]
            ]
            connection.execute(insert(Member), rows)
        ids = {u: i for u, i in connection.execute(select(Member.user_id, Member.id))}
        progress = [
            {
                "member_id": ids[u],
                "item_id": entry.id,
                "state": "read",
                "title": entry.title,
                "updated_at": NOW,
            }
            for i, u in enumerate(users)
            for entry in order[: i % 4]
        ]
        for start in range(0, len(progress), CHUNK):
            connection.execute(insert(Progress), progress[start : start + CHUNK])
    return users


def _bare_claim_confirm(store: Store) -> float:
    """Seconds for one claim INSERT and one confirm UPDATE per member, each its own transaction."""
    with store.engine.connect() as connection:
        member_ids = list(connection.scalars(select(Member.id).order_by(Member.id)))
    engine = writer(store.engine)
    dialect = postgresql if store.engine.dialect.name == "postgresql" else sqlite
    upsert: Any = dialect.insert(Outbox)
    start = time.perf_counter()
    for member_id in member_ids:
        key = f"bare:{member_id}"
        with engine.begin() as connection:
            connection.execute(
                upsert.values(
                    key=key,
                    member_id=member_id,
                    kind="weekly",
                    week=BARE_WEEK,
                    status="claimed",
                    attempts=1,
                    claimed_by="bare",
                    lease_until=NOW + dt.timedelta(minutes=5),
                    created_at=NOW,
                ).on_conflict_do_nothing(index_elements=["key"])
            )
        with engine.begin() as connection:
            connection.execute(
                update(Outbox)
                .where(Outbox.key == key, Outbox.status != "sent")
                .values(status="sent", sent_at=NOW, platform_message_id="m", lease_until=None)
            )
    elapsed = time.perf_counter() - start
    with engine.begin() as connection:
        connection.execute(delete(Outbox).where(Outbox.week == BARE_WEEK))
    return elapsed


def _run(url: str, members: int, guide: Path) -> None:
    library = CatalogLibrary(str(guide))
    library.load()
    store = open_store(url)
    try:
        users = _populate(store, members, library)
        inbox = Inbox()
        delivery = Delivery(
            store=store,
            library=library,
            once=OnceOnly(store=store, messengers={"local": inbox}, worker="bench"),
            profiles=Profiles(LAB_TIMEZONE, {"local": "en"}),
            day="mon",
            at=dt.time(10, 0),
        )
        # Measured before and after the delivery, so load changes during the run average out.
        bare_before = _bare_claim_confirm(store)

        counts = {"statements": 0, "transactions": 0}

        def count_statement(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            # SQLite's explicit BEGIN is counted as a transaction, not a statement.
            if not statement.startswith("BEGIN"):
                counts["statements"] += 1

        def count_transaction(_conn: object) -> None:
            counts["transactions"] += 1

        event.listen(store.engine, "before_cursor_execute", count_statement)
        event.listen(store.engine, "begin", count_transaction)
        start = time.perf_counter()
        report = delivery.deliver(NOW)
        total = time.perf_counter() - start
        event.remove(store.engine, "before_cursor_execute", count_statement)
        event.remove(store.engine, "begin", count_transaction)

        bare_after = _bare_claim_confirm(store)
        bare = (bare_before + bare_after) / 2

        again_start = time.perf_counter()
        again = delivery.deliver(NOW)
        again_total = time.perf_counter() - again_start

        duplicates = sum(1 for u in users if len(inbox.keys.get(u, [])) > 1)
        missing = sum(1 for u in users if not inbox.keys.get(u))
        backend = store.engine.url.get_backend_name()
        log.info(
            "database: %s   members: %d   week: %s", backend, members, week_of(NOW, LAB_TIMEZONE)
        )
        log.info("outcomes: %s", dict(report.outcomes))
        log.info(
            "delivery        %7.2f s  %8.0f members/s  %6.3f ms/member",
            total,
            members / total,
            total / members * 1000,
        )
        log.info(
            "                %d statements in %d transactions (%.2f and %.2f per member)",
            counts["statements"],
            counts["transactions"],
            counts["statements"] / members,
            counts["transactions"] / members,
        )
        log.info(
            "bare claim+conf %7.2f s  %8.0f members/s  %6.3f ms/member  (runs: %.2f s, %.2f s)",
            bare,
            members / bare,
            bare / members * 1000,
            bare_before,
            bare_after,
        )
        log.info("ratio delivery / bare claim+confirm: %.2fx", total / bare)
        log.info(
            "second run (all already sent): %.2f s, outcomes %s", again_total, dict(again.outcomes)
        )
        log.info("duplicates (members with >1 message): %d", duplicates)
        log.info("missing (enrolled members with 0):    %d", missing)
    finally:
        store.dispose()


def main() -> None:
    """Measure and print."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    default = Path(__file__).resolve().parent.parent / "config" / "catalog" / "dcml.md"
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=5_000)
    parser.add_argument("--guide", type=Path, default=default)
    parser.add_argument("--database-url", help="an empty database (default: temp SQLite file)")
    args = parser.parse_args()
    if args.database_url:
        _run(args.database_url, args.members, args.guide)
        return
    with tempfile.TemporaryDirectory() as directory:
        _run(f"sqlite:///{Path(directory) / 'bench.sqlite3'}", args.members, args.guide)


if __name__ == "__main__":
    main()
