"""What the health checks cost: one ``Service.health()`` (/healthz), and opening the store.

Run: .venv/bin/python bench/bench_health.py [--members 10000] [--database-url URL]

In process, on a temporary SQLite file (or ``--database-url``, emptied first: give a throwaway
PostgreSQL database) with ``--members`` members: the median and p99 of 300 ``Service.health()``
calls of a local-lab service (the database ping, the write probe: a row inserted and rolled
back, the workers and the scheduler), then the median of 30 ``open_store`` calls (on SQLite:
the header check and ``PRAGMA quick_check`` included), next to ``PRAGMA quick_check`` alone and a
bare ``SELECT 1``. ``PYTHONPATH=<checkout>/src`` measures that checkout (before / after).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchkit import CONFIG, log, machine, pct, setup_logging
from sqlalchemy import create_engine, text

from dcml_bot.app import build_service
from dcml_bot.settings import load_settings
from dcml_bot.store import open_store

NOW = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)


def timed(work: Callable[[], object], runs: int) -> list[float]:
    """Seconds per call, ``runs`` calls."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return samples


def empty(url: str) -> None:
    """Drop everything in a PostgreSQL database given to the bench."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def main() -> None:
    """Measure and print."""
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    log.info("machine: %s", machine())
    log.info("code: %s", os.environ.get("PYTHONPATH") or "the venv's installed dcml_bot")
    with tempfile.TemporaryDirectory(prefix="dcml-health-") as name:
        url = args.database_url or f"sqlite:///{Path(name) / 'health.sqlite3'}"
        if args.database_url:
            empty(url)
        store = open_store(url)
        for n in range(args.members):
            store.upsert_member("local", f"u{n:05d}", display_name=f"member {n}", now=NOW)
        store.dispose()
        settings = load_settings(CONFIG).model_copy(
            update={
                "database_url": url,
                "slack_bot_token": None,
                "slack_signing_secret": None,
                "slack_app_token": None,
                "feishu_app_id": None,
                "feishu_app_secret": None,
            }
        )
        service = build_service(settings, tick_minutes=15)
        try:
            service.start()
            ok, _ = service.health()
            checks = timed(lambda: service.health(), 300)
        finally:
            service.stop()
        log.info(
            "Service.health() (/healthz without HTTP), %d members: p50 %.3f ms, p99 %.3f ms "
            "(ok=%s)",
            args.members,
            statistics.median(checks) * 1000,
            pct(checks, 0.99) * 1000,
            ok,
        )
        opens = timed(lambda: open_store(url).dispose(), 30)
        engine = create_engine(url)
        with engine.connect() as connection:
            select = timed(lambda: connection.execute(text("SELECT 1")).all(), 300)
            quick = (
                timed(lambda: connection.exec_driver_sql("PRAGMA quick_check").all(), 10)
                if engine.dialect.name == "sqlite"
                else None
            )
        engine.dispose()
        size = Path(url.removeprefix("sqlite:///")).stat().st_size if quick else 0
        log.info(
            "open_store, %d members%s: median %.2f ms; PRAGMA quick_check alone %s; "
            "SELECT 1 %.3f ms",
            args.members,
            f" ({size / 1024 / 1024:.1f} MiB file)" if size else "",
            statistics.median(opens) * 1000,
            f"{statistics.median(quick) * 1000:.2f} ms" if quick else "n/a (PostgreSQL)",
            statistics.median(select) * 1000,
        )


if __name__ == "__main__":
    main()
