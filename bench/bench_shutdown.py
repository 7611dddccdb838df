"""SIGTERM with a backlog: how long ``dcml-bot serve`` takes to exit, and whether anything is lost.

Run: .venv/bin/python bench/bench_shutdown.py [--joins 1000] [--runs 3]

A ``dcml-bot serve`` child (SQLite in a temporary directory, Slack against the benches' fake Web
API allowing 100 calls/s) gets ``--joins`` signed ``team_join`` events as fast as it takes them;
each is a welcome DM to send (conversations.open + chat.postMessage, paced by the bot). Right
after the last event is acknowledged it gets SIGTERM, and the time to its exit is measured
(target: <= 5 s whatever the backlog). Then a second child starts on the same database and runs
until every newcomer has their welcome; the bench reports welcomes sent before the SIGTERM, after
the restart, duplicates (users with more than one welcome) and missing (none): targets 0 and 0.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchkit import (
    Child,
    RateLimitedSlack,
    bot_env,
    free_port,
    log,
    machine,
    pct,
    serve_command,
    setup_logging,
    signed_headers,
)

RATE = 100.0
TARGET = 5.0


def team_join(user: str, event_id: str) -> str:
    """A signed-to-be team_join envelope (the user object trimmed to what the bot reads)."""
    now = int(time.time())
    return json.dumps(
        {
            "token": "deprecated",
            "team_id": "T0001",
            "api_app_id": "A0APP",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": now,
            "event": {
                "type": "team_join",
                "user": {"id": user, "name": user.lower(), "tz": "UTC", "profile": {}},
                "event_ts": f"{now}.000100",
            },
        }
    )


def post_events(port: int, bodies: list[str]) -> None:
    """Post the events over four keep-alive connections; every answer must be 200."""

    def post_all(chunk: list[str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for body in chunk:
            headers = {**signed_headers(body), "Content-Type": "application/json"}
            connection.request("POST", "/slack/events", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"event answered {response.status}")
        connection.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(post_all, [bodies[i::4] for i in range(4)]))


def one_run(directory: Path, joins: int, run: int) -> dict[str, float]:
    """One SIGTERM and one restart; returns the figures."""
    fake = RateLimitedSlack(rate=RATE, burst=10).start()
    url = f"sqlite:///{directory / f'shutdown-{run}.sqlite3'}"
    users = [f"U0S{run}{n:05d}" for n in range(joins)]
    bodies = [team_join(u, f"EvS{run}{n:05d}") for n, u in enumerate(users)]
    try:
        port = free_port()
        env = bot_env(url, port, slack_api=fake.base + "/api/")
        child = Child(serve_command(), env, directory / f"serve-{run}.log")
        try:
            child.wait_healthy(f"http://127.0.0.1:{port}")
            post_events(port, bodies)
            before = sum(fake.received.values())
            started = time.perf_counter()
            child.process.send_signal(signal.SIGTERM)
            code = child.process.wait(timeout=120)
            exit_seconds = time.perf_counter() - started
        finally:
            child.stop()
        sent_first = sum(fake.received.values())
        port = free_port()
        env = bot_env(url, port, slack_api=fake.base + "/api/")
        again = Child(serve_command(), env, directory / f"restart-{run}.log")
        try:
            again.wait_healthy(f"http://127.0.0.1:{port}")
            restarted = time.perf_counter()
            deadline = restarted + 600
            while sum(1 for u in users if fake.received.get(u)) < joins:
                if time.perf_counter() > deadline:
                    break
                time.sleep(0.05)
            catch_up = time.perf_counter() - restarted
            time.sleep(1.0)  # anything sent twice would show up now
        finally:
            again.stop()
        counts = [fake.received.get(u, 0) for u in users]
        return {
            "exit_code": float(code),
            "exit_seconds": exit_seconds,
            "queued_at_sigterm": float(joins - before),
            "sent_before_exit": float(sent_first),
            "sent_after_restart": float(sum(counts) - sent_first),
            "catch_up_seconds": catch_up,
            "duplicates": float(sum(1 for n in counts if n > 1)),
            "missing": float(sum(1 for n in counts if n == 0)),
        }
    finally:
        fake.stop()


def main() -> None:
    """Measure and print."""
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--joins", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    log.info("machine: %s", machine())
    results = []
    with tempfile.TemporaryDirectory(prefix="dcml-shutdown-") as name:
        for run in range(args.runs):
            figures = one_run(Path(name), args.joins, run)
            results.append(figures)
            log.info(
                "run %d: exit %d after %.2f s (target <= %.0f s) with %d of %d welcomes still "
                "queued; %d sent before the exit, %d after the restart (in %.1f s); "
                "duplicates %d, missing %d",
                run + 1,
                figures["exit_code"],
                figures["exit_seconds"],
                TARGET,
                figures["queued_at_sigterm"],
                args.joins,
                figures["sent_before_exit"],
                figures["sent_after_restart"],
                figures["catch_up_seconds"],
                figures["duplicates"],
                figures["missing"],
            )
    exits = [r["exit_seconds"] for r in results]
    log.info(
        "SIGTERM → exit: median %.2f s, worst %.2f s over %d run(s); duplicates %d, missing %d",
        pct(exits, 0.5),
        max(exits),
        len(exits),
        sum(r["duplicates"] for r in results),
        sum(r["missing"] for r in results),
    )


if __name__ == "__main__":
    main()
