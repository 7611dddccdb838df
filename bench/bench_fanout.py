"""Weekly fan-out against rate-limited fake platforms: wall time vs the rate-limit bound.

Run: .venv/bin/python bench/bench_fanout.py [--shape NAME ...] [--members N ...] [--verbose]

N members (default 300, then 2,000) are enrolled on one platform in a temporary SQLite database,
and the real delivery runs once: ``build_service(settings, clock=..., schedule=False)
.jobs.deliver()`` with the clock an hour after the Monday slot. The bot is not told the fake's
limits: its messenger keeps its default pacing (platforms/common/pacing.py), which learns them
from the 429s. One run must reach every member; if it does not, that is reported as a failure,
and the run is repeated (clock +15 min, as the catch-up tick would) only to count its rounds.

Shapes (the fakes are tests/fakes/'s rate-limited ones, through bench/benchkit.py; a refused
call is answered 429 with an honest ``Retry-After`` / ``x-ogw-ratelimit-reset`` = whole seconds
until a token, at least 1):

- ``slack-realistic``: a token bucket per method as Slack documents them: chat.postMessage 10/s
  for the workspace (burst 10) and 1/s per channel (burst 1); conversations.open and
  conversations.history Tier 3 (50/min, burst 5); users.info Tier 4 (100/min, burst 10). Members
  have a persisted DM channel (``members.dm_channel``: the bot wrote to them before), so each
  costs one chat.postMessage: bound N / 10 s.
- ``slack-today``: one bucket of 100 calls/s over every method (burst 10); channels persisted:
  bound N / 100 s.
- ``slack-today-open``: the same fake, no persisted channels: conversations.open +
  chat.postMessage per member, bound 2N / 100 s.
- ``feishu``: 50 messages/s per app (burst 5; 429, code 99991400, ``x-ogw-ratelimit-reset``) and
  5/s per user (code 230020): bound N / 50 s.
- ``slack-unlimited`` / ``feishu-unlimited``: no buckets, the default pacing (its slow start and
  ceiling); ``slack-raw`` / ``feishu-raw``: no buckets and no pacing, the client's own ceiling.

Ratio = wall / bound (target <= 1.15x); duplicates = members with more than one DM, missing =
members with none (targets 0 and 0); 429s = calls the fake refused. Figures only: nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchkit import (
    BOT_TOKEN,
    CONFIG,
    MONDAY_SLOT,
    SIGNING_SECRET,
    SLACK_PER_CHANNEL,
    SLACK_REALISTIC,
    RateLimitedFeishu,
    RateLimitedSlack,
    log,
    machine,
    setup_logging,
)
from pydantic import SecretStr
from sqlalchemy import insert

from dcml_bot.app import Service, build_service
from dcml_bot.platforms.common.pacing import Pacing
from dcml_bot.settings import load_settings
from dcml_bot.store import open_store
from dcml_bot.store.database import writer
from dcml_bot.store.schema import Member

TICK = dt.timedelta(minutes=15)
MAX_ROUNDS = 40
UNPACED = (1e6, 1e6)  # (start, ceiling) calls/s: pacing that never holds a call


@dataclass(frozen=True)
class Shape:
    """A fake platform's limits, what the bot knows, and the bound they set."""

    platform: str
    fake: Callable[[], RateLimitedSlack | RateLimitedFeishu]
    channels: bool = True  # Slack: members have a persisted DM channel
    calls_per_member: int = 1
    server_rate: float | None = None  # calls/s the fake allows in the fan-out; None: no limit
    paced: bool = True  # False: pacing switched off (the client's own ceiling)


def slack_realistic() -> RateLimitedSlack:
    return RateLimitedSlack(methods=SLACK_REALISTIC, per_channel=SLACK_PER_CHANNEL)


def slack_today() -> RateLimitedSlack:
    return RateLimitedSlack(rate=100.0, burst=10.0)


def feishu_limited() -> RateLimitedFeishu:
    return RateLimitedFeishu(per_app=50.0, per_user=5.0, burst=5.0)


SHAPES: dict[str, Shape] = {
    "slack-realistic": Shape("slack", slack_realistic, server_rate=10.0),
    "slack-today": Shape("slack", slack_today, server_rate=100.0),
    "slack-today-open": Shape(
        "slack", slack_today, channels=False, calls_per_member=2, server_rate=100.0
    ),
    "feishu": Shape("feishu", feishu_limited, server_rate=50.0),
    "slack-unlimited": Shape("slack", RateLimitedSlack),
    "slack-raw": Shape("slack", RateLimitedSlack, paced=False),
    "feishu-unlimited": Shape("feishu", RateLimitedFeishu),
    "feishu-raw": Shape("feishu", RateLimitedFeishu, paced=False),
}
METHODS = {
    "slack": ("conversations.open", "chat.postMessage"),
    "feishu": ("im.message.create",),
}


class Clock:
    """The bot's clock, moved by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Result:
    """One fan-out's figures."""

    shape: str
    members: int
    wall: float
    bound: float | None
    calls: int
    limited: int
    rounds: int
    duplicates: int
    missing: int
    rates: str

    @property
    def ratio(self) -> float | None:
        return self.wall / self.bound if self.bound else None


def _seed(url: str, platform: str, users: list[str], now: dt.datetime, channels: bool) -> None:
    """Create (migrate) the database and enrol the members in bulk."""
    store = open_store(url)
    try:
        with writer(store.engine).begin() as connection:
            for start in range(0, len(users), 1000):
                rows = [
                    {
                        "platform": platform,
                        "user_id": u,
                        "enrolled": True,
                        "joined_at": now,
                        "dm_channel": "D" + u if channels else None,
                    }
                    for u in users[start : start + 1000]
                ]
                connection.execute(insert(Member), rows)
    finally:
        store.dispose()


def _settings(url: str, fake: RateLimitedSlack | RateLimitedFeishu) -> Any:
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
    }
    if isinstance(fake, RateLimitedSlack):
        update.update(
            slack_api_url=fake.base + "/api/",
            slack_bot_token=SecretStr(BOT_TOKEN),
            slack_signing_secret=SecretStr(SIGNING_SECRET),
        )
    else:
        update.update(
            feishu_domain=fake.base,
            # lark-oapi caches tenant tokens per app id, process-wide: one per run.
            feishu_app_id=SecretStr(f"cli_bench{time.monotonic_ns()}"),
            feishu_app_secret=SecretStr("bench-app-secret"),
        )
    return settings.model_copy(update=update)


def _drive(service: Service, clock: Clock, done: Callable[[], bool]) -> tuple[float, int]:
    """Run deliver() once, and again (clock +15 min) only if someone is left; (wall, rounds)."""
    start = time.perf_counter()
    rounds = 0
    while rounds < MAX_ROUNDS:
        rounds += 1
        report = service.jobs.deliver()
        if done():
            break
        outcomes = dict(report.outcomes) if report else {}
        log.info("  round %d left members out: %s; moving the clock %s", rounds, outcomes, TICK)
        clock.now += TICK
    return time.perf_counter() - start, rounds


def _rates(pacing: Pacing, platform: str) -> str:
    """The learned rates at the end: method rate (threshold, decreases)."""
    parts = []
    for method in METHODS[platform]:
        rate = pacing.rate(method)
        threshold = f"{rate.threshold:.1f}" if rate.threshold is not None else "-"
        parts.append(f"{method} {rate.per_second:.1f}/s (thr {threshold}, -{rate.decreases})")
    return "; ".join(parts)


def run(directory: Path, name: str, members: int) -> Result:
    """One fan-out of ``members`` on shape ``name``."""
    shape = SHAPES[name]
    fake = shape.fake().start()
    prefix = "U0F" if shape.platform == "slack" else "ou_f"
    users = [f"{prefix}{i:05d}" for i in range(members)]
    url = f"sqlite:///{directory / f'{name}-{members}.sqlite3'}"
    clock = Clock(MONDAY_SLOT + dt.timedelta(hours=1))
    _seed(url, shape.platform, users, clock.now, shape.channels)
    service = build_service(_settings(url, fake), clock=clock, schedule=False)
    try:
        messenger: Any = service.bot.messengers[shape.platform]
        if not shape.paced:
            messenger.pacing = Pacing(shape.platform, {}, per_target=0.0, default=UNPACED)
        sent: Counter[str] = fake.received
        fake.attempts = fake.limited = 0
        wall, rounds = _drive(service, clock, lambda: len(sent) >= members)
        counts = [sent.get(u, 0) for u in users]
        bound = members * shape.calls_per_member / shape.server_rate if shape.server_rate else None
        return Result(
            shape=name,
            members=members,
            wall=wall,
            bound=bound,
            calls=fake.attempts if shape.server_rate else sum(counts),
            limited=fake.limited,
            rounds=rounds,
            duplicates=sum(1 for n in counts if n > 1),
            missing=sum(1 for n in counts if n == 0),
            rates=_rates(messenger.pacing, shape.platform),
        )
    finally:
        service.stop()
        fake.stop()


def _show(result: Result) -> None:
    ratio = f"{result.ratio:.3f}x" if result.ratio is not None else "-"
    bound = f"{result.bound:.2f} s" if result.bound is not None else "-"
    verdict = "" if result.ratio is None else ("  MET" if result.ratio <= 1.15 else "  MISSED")
    if result.rounds > 1 or result.duplicates or result.missing:
        verdict = "  FAILED"
    log.info(
        "%s, %d members: wall %.2f s, bound %s, ratio %s%s; %.1f members/s; %d calls, %d 429s,"
        " %d round(s), %d duplicates, %d missing; %s",
        result.shape,
        result.members,
        result.wall,
        bound,
        ratio,
        verdict,
        result.members / result.wall,
        result.calls,
        result.limited,
        result.rounds,
        result.duplicates,
        result.missing,
        result.rates,
    )


def _table(results: list[Result]) -> None:
    log.info("")
    log.info(
        "| shape | members | wall s | bound s | ratio | members/s | calls | 429s | rounds "
        "| dup | missing | learned rates |"
    )
    log.info("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        log.info(
            "| %s | %d | %.2f | %s | %s | %.1f | %d | %d | %d | %d | %d | %s |",
            r.shape,
            r.members,
            r.wall,
            f"{r.bound:.2f}" if r.bound is not None else "-",
            f"{r.ratio:.3f}x" if r.ratio is not None else "-",
            r.members / r.wall,
            r.calls,
            r.limited,
            r.rounds,
            r.duplicates,
            r.missing,
            r.rates,
        )


def main() -> None:
    """Measure and print."""
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--shape",
        action="append",
        choices=[*SHAPES, "all"],
        help="a fake's limits (repeatable; default: all)",
    )
    parser.add_argument(
        "--members", type=int, nargs="+", default=[300, 2000], help="member counts to run"
    )
    parser.add_argument("--verbose", action="store_true", help="log the pacing's decisions")
    args = parser.parse_args()
    names = list(SHAPES) if not args.shape or "all" in args.shape else args.shape
    # The weekly run logs one warning per failed send; keep the output to the figures.
    logging.getLogger("dcml_bot").setLevel(logging.ERROR)
    if args.verbose:
        logging.getLogger("dcml_bot.platforms.common.pacing").setLevel(logging.INFO)
    log.info("machine: %s", machine())
    results = []
    with tempfile.TemporaryDirectory(prefix="dcml-fanout-") as directory:
        for name in names:
            for members in args.members:
                result = run(Path(directory), name, members)
                _show(result)
                results.append(result)
    _table(results)


if __name__ == "__main__":
    main()
