"""Weekly fan-out against rate-limited fake platforms: wall time vs the rate-limit bound.

Run: .venv/bin/python bench/bench_fanout.py [--members N] [--platform slack|feishu|both] [--quick]
     [--unpaced]

N members (default 2,000) are enrolled on one platform in a temporary SQLite database, and the
real delivery runs: ``build_service(settings, clock=..., schedule=False).jobs.deliver()`` with the
clock an hour after the Monday slot, again and again (the clock moved 15 min each time, as the
scheduler's catch-up tick would, so retries fall due) until every member has their DM.

- Slack-only: a fake Web API allowing 100 calls/s in all (one token bucket over every method,
  burst 10), answering 429 ``ratelimited`` with ``Retry-After`` above that. The bound is
  calls needed / 100 per s, each first DM costing conversations.open + chat.postMessage. The
  messenger's budget is set to the fake's: ``Pacer(per_target=1.0, per_app=0.01)``.
- Feishu-only: a fake Open Platform allowing 50 messages/s per app and 5/s per user (429, code
  99991400, ``x-ogw-ratelimit-reset`` above that). The bound is N / 50 per s. The messenger keeps
  its own default Pacer (50/s per app, 5/s per user).

Ratio = wall time / bound (target <= 1.15x); duplicates = members with more than one DM (target
0); missing = members with none (target 0). ``--unpaced`` runs Slack with no client pacing, to
show what the 429s and Retry-After sleeps cost (slow: use it with --members 200).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import (
    BOT_TOKEN,
    CONFIG,
    MONDAY_SLOT,
    SIGNING_SECRET,
    FakeFeishu,
    FakeSlack,
    log,
    machine,
    setup_logging,
)
from pydantic import SecretStr
from sqlalchemy import insert

from dcml_bot.app import Service, build_service
from dcml_bot.settings import load_settings
from dcml_bot.store import open_store
from dcml_bot.store.database import writer
from dcml_bot.store.schema import Member

SLACK_RATE = 100.0
FEISHU_APP_RATE = 50.0
FEISHU_USER_RATE = 5.0
TICK = dt.timedelta(minutes=15)
MAX_ROUNDS = 40


class Clock:
    """The bot's clock, moved by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _seed(url: str, platform: str, users: list[str], now: dt.datetime) -> None:
    """Create (migrate) the database and enrol the members in bulk."""
    store = open_store(url)
    try:
        with writer(store.engine).begin() as connection:
            for start in range(0, len(users), 1000):
                rows = [
                    {"platform": platform, "user_id": u, "enrolled": True, "joined_at": now}
                    for u in users[start : start + 1000]
                ]
                connection.execute(insert(Member), rows)
    finally:
        store.dispose()


def _settings(url: str, **secrets: Any) -> Any:
    settings = load_settings(CONFIG)
    update: dict[str, Any] = {
        "database_url": url,
        "admins": [],
        "slack_bot_token": None,
        "slack_signing_secret": None,
        "slack_app_token": None,
        "feishu_app_id": None,
        "feishu_app_secret": None,
        "feishu_verification_token": None,
        "feishu_encrypt_key": None,
        **secrets,
    }
    return settings.model_copy(update=update)


def _drive(service: Service, clock: Clock, done: Callable[[], bool]) -> tuple[float, int]:
    """Run deliver() until ``done``; returns (wall seconds, rounds)."""
    start = time.perf_counter()
    rounds = 0
    while rounds < MAX_ROUNDS:
        rounds += 1
        report = service.jobs.deliver()
        if done():
            break
        outcomes = dict(report.outcomes) if report else {}
        log.info("  round %d: %s; moving the clock %s ahead", rounds, outcomes, TICK)
        clock.now += TICK
    return time.perf_counter() - start, rounds


def _report(
    name: str,
    members: int,
    wall: float,
    bound: float,
    rounds: int,
    counts: dict[str, int],
    calls: int,
    limited: int,
    waited: float | None = None,
) -> None:
    duplicates = sum(1 for n in counts.values() if n > 1)
    missing = members - sum(1 for n in counts.values() if n > 0)
    log.info(
        "%s: %d members, %d API calls (%d answered 429), %d round(s)",
        name,
        members,
        calls,
        limited,
        rounds,
    )
    if waited is not None:
        log.info("  client pacing slept %.2f s in all", waited)
    log.info(
        "  wall %.2f s   bound %.2f s   ratio %.3fx (target <= 1.15x)   %.1f members/s",
        wall,
        bound,
        wall / bound,
        members / wall,
    )
    log.info("  duplicates %d   missing %d (targets 0 and 0)", duplicates, missing)


def run_slack(directory: Path, members: int, paced: bool) -> None:
    """Slack-only fan-out."""
    from dcml_bot.platforms.slack import SlackMessenger

    try:
        from dcml_bot.platforms.background import Pacer  # type: ignore[attr-defined]
    except ImportError:  # until Pacer moves there from feishu.py (slack.py holds a copy)
        from dcml_bot.platforms.slack import Pacer

    fake = FakeSlack(rate=SLACK_RATE, burst=10).start()
    users = [f"U0F{i:05d}" for i in range(members)]
    url = f"sqlite:///{directory / 'slack.sqlite3'}"
    clock = Clock(MONDAY_SLOT + dt.timedelta(hours=1))
    _seed(url, "slack", users, clock.now)
    settings = _settings(
        url,
        slack_api_url=fake.base + "/api/",
        slack_bot_token=SecretStr(BOT_TOKEN),
        slack_signing_secret=SecretStr(SIGNING_SECRET),
    )
    service = build_service(settings, clock=clock, schedule=False)
    try:
        messenger = service.bot.messengers["slack"]
        assert isinstance(messenger, SlackMessenger)
        # The fake's budget: 100 calls/s in all; 1 message/s per DM channel (never binds here).
        pacer = Pacer(1.0, 1 / SLACK_RATE) if paced else Pacer(0.0, 0.0)
        waited = [0.0]
        wait = pacer.wait

        def counted(target: str) -> float:
            seconds = wait(target)
            waited[0] += seconds
            return seconds

        pacer.wait = counted  # type: ignore[method-assign]
        messenger.pacer = pacer
        fake.hits.clear()
        wall, rounds = _drive(service, clock, lambda: len(fake.dms) >= members)
        calls_needed = 2 * members  # conversations.open + chat.postMessage per first DM
        _report(
            f"slack ({'paced to 100 calls/s' if paced else 'UNPACED'})",
            members,
            wall,
            calls_needed / SLACK_RATE,
            rounds,
            {u: fake.dms.get(u, 0) for u in users},
            fake.attempts,
            fake.limited,
            waited[0],
        )
    finally:
        service.stop()
        fake.stop()


def run_feishu(directory: Path, members: int) -> None:
    """Feishu-only fan-out."""
    fake = FakeFeishu(per_app=FEISHU_APP_RATE, per_user=FEISHU_USER_RATE, burst=5).start()
    users = [f"ou_f{i:05d}" for i in range(members)]
    url = f"sqlite:///{directory / 'feishu.sqlite3'}"
    clock = Clock(MONDAY_SLOT + dt.timedelta(hours=1))
    _seed(url, "feishu", users, clock.now)
    settings = _settings(
        url,
        feishu_domain=fake.base,
        feishu_app_id=SecretStr(f"cli_bench{int(time.time())}"),
        feishu_app_secret=SecretStr("bench-app-secret"),
    )
    service = build_service(settings, clock=clock, schedule=False)
    try:
        wall, rounds = _drive(service, clock, lambda: len(fake.sent) >= members)
        _report(
            "feishu (default Pacer: 50/s per app, 5/s per user)",
            members,
            wall,
            members / FEISHU_APP_RATE,
            rounds,
            {u: fake.sent.get(u, 0) for u in users},
            fake.attempts,
            fake.limited,
        )
    finally:
        service.stop()
        fake.stop()


def main() -> None:
    """Measure and print."""
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--platform", choices=["slack", "feishu", "both"], default="both")
    parser.add_argument("--unpaced", action="store_true", help="Slack without client pacing")
    parser.add_argument("--quick", action="store_true", help="500 members")
    args = parser.parse_args()
    if args.quick:
        args.members = 500
    # The weekly run logs one warning per failed send; keep the output to the figures.
    logging.getLogger("dcml_bot").setLevel(logging.ERROR)
    log.info("machine: %s", machine())
    with tempfile.TemporaryDirectory(prefix="dcml-fanout-") as name:
        directory = Path(name)
        if args.platform in {"slack", "both"}:
            run_slack(directory, args.members, paced=not args.unpaced)
        if args.platform in {"feishu", "both"}:
            run_feishu(directory, args.members)


if __name__ == "__main__":
    main()
