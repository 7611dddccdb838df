"""Command latency: signed ``/dcml essential`` over loopback HTTP into a real ``dcml-bot serve``.

Run: .venv/bin/python bench/bench_commands.py [--requests N] [--quick]

Three servers, started one after the other as child processes on 127.0.0.1, each answering
N requests at concurrency 1 and 16 (after a warm-up), one keep-alive connection per client thread:

- the bot: ``dcml-bot serve``, Slack-only (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, a fake Slack Web
  API started here, a temporary SQLite database);
- baseline "bare default": bench/bare_bolt_app.py with Bolt's default process_before_response=False
  (the listener runs on Bolt's executor and the request thread polls for the ack every 10 ms);
- baseline "bare inline": the same with process_before_response=True (ack inline: the floor of
  uvicorn + Starlette + Bolt dispatch on loopback).

Both baselines ack with the bot's own answer to ``essential`` (captured first), so all three send
the same bytes. Then the ack path is timed piece by piece in-process (same code, no HTTP) to show
where the bot's time goes. Prints figures; asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bare_bolt_app import make_bolt
from benchkit import (
    ADMIN,
    BOT_TOKEN,
    CONFIG,
    SIGNING_SECRET,
    Child,
    RateLimitedSlack,
    bare_command,
    bot_env,
    command_form,
    free_port,
    log,
    machine,
    pct,
    post_command,
    serve_command,
    setup_logging,
    signed_headers,
)

LINE = "essential"


def _load(base: str, concurrency: int, total: int, response_url: str) -> tuple[list[float], float]:
    """``total`` requests from ``concurrency`` threads; latencies in ms and the wall time in s."""
    per_worker = max(1, total // concurrency)
    split = urlsplit(base)
    barrier = threading.Barrier(concurrency + 1)
    results: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []

    def worker(index: int) -> None:
        user = f"U0BENCH{index:02d}"
        # Each a distinct signed command, made before the clock starts (one sent twice would
        # be answered as a replay).
        requests = []
        for _ in range(per_worker):
            body = command_form(LINE, user, response_url)
            requests.append((body, signed_headers(body)))
        connection = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
        connection.connect()
        samples = results[index]
        barrier.wait()
        for body, headers in requests:
            start = time.perf_counter()
            connection.request("POST", "/slack/events", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            samples.append((time.perf_counter() - start) * 1000)
            if response.status != 200:
                errors.append(str(response.status))
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} non-200 answers, e.g. {errors[:3]}")
    return [s for samples in results for s in samples], wall


def _command_seconds(base: str) -> tuple[float, float]:
    """(sum, count) of the bot's dcml_command_seconds histogram for Slack."""
    split = urlsplit(base)
    connection = http.client.HTTPConnection(split.hostname, split.port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    found = {}
    for name in ("sum", "count"):
        match = re.search(rf'^dcml_command_seconds_{name}{{platform="slack"}} (\S+)$', text, re.M)
        found[name] = float(match.group(1)) if match else 0.0
    return found["sum"], found["count"]


def _measure(
    name: str, child: Child, base: str, args: argparse.Namespace, response_url: str
) -> dict[int, tuple[list[float], float]]:
    child.wait_healthy(base)
    _load(base, 4, args.warmup, response_url)  # warm-up: members created, caches and pools warm
    out = {}
    for concurrency in args.concurrency:
        before = _command_seconds(base) if name == "bot" else (0.0, 0.0)
        samples, wall = _load(base, concurrency, args.requests, response_url)
        out[concurrency] = (samples, wall)
        if name == "bot":
            after = _command_seconds(base)
            count = after[1] - before[1]
            listener = (after[0] - before[0]) / count * 1000 if count else float("nan")
            log.info(
                "  %s c=%-2d  in-listener (dcml_command_seconds) mean %.3f ms",
                name,
                concurrency,
                listener,
            )
    return out


def _timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and p99 of ``runs`` calls, in ms."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), pct(samples, 0.99)


def _ack_path(directory: Path, runs: int, reply_file: Path) -> None:
    """The bot's ack path, piece by piece, in this process (no HTTP)."""
    from pydantic import SecretStr
    from slack_bolt import BoltRequest

    from dcml_bot.app import build_service
    from dcml_bot.platforms.slack.blocks import render_message
    from dcml_bot.platforms.slack.platform import SlackPlatform
    from dcml_bot.settings import load_settings

    fake = RateLimitedSlack().start()
    settings = load_settings(CONFIG).model_copy(
        update={
            "database_url": f"sqlite:///{directory / 'inprocess.sqlite3'}",
            "slack_api_url": fake.base + "/api/",
            "slack_bot_token": SecretStr(BOT_TOKEN),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_app_token": None,
            "feishu_app_id": None,
            "feishu_app_secret": None,
        }
    )
    service = build_service(settings, schedule=False)
    try:
        platform = service.platforms[0]
        assert isinstance(platform, SlackPlatform)
        bot = service.bot
        body = command_form(LINE, "U0PATH", fake.base + "/respond/U0PATH")
        headers = signed_headers(body)
        fresh = []  # distinct signed commands for the bot (a repeated one is a replay)
        for _ in range(runs + 1):
            distinct = command_form(LINE, "U0PATH", fake.base + "/respond/U0PATH")
            fresh.append((distinct, signed_headers(distinct)))
        unsent = iter(fresh)

        def dispatch() -> Any:
            distinct, signed = next(unsent)
            request = BoltRequest(body=distinct, headers=signed)
            response = platform.app.dispatch(request)
            assert response.status == 200, response.body
            return response

        bare = make_bolt(
            fake.base + "/api/", BOT_TOKEN, SIGNING_SECRET, True, json.loads(reply_file.read_text())
        )

        def bare_dispatch() -> Any:
            response = bare.dispatch(BoltRequest(body=body, headers=headers))
            assert response.status == 200, response.body
            return response

        dispatch()
        member = bot.member("slack", "U0PATH")
        reply = bot.commands.handle(member, LINE)
        handle, hop = bot.commands.handle, platform.background.submit
        ids = (f"{n}:v0=bench" for n in itertools.count())

        def first(identity: str) -> bool:
            return platform.replays.first(identity, "bench")

        steps = [
            ("baseline: bare inline Bolt App.dispatch (same reply)", bare_dispatch),
            ("bot: Bolt App.dispatch, whole (verify, listener, ack)", dispatch),
            ("  bot.member (store read)", lambda: bot.member("slack", "U0PATH")),
            ("  commands.handle (parse + run query, build reply)", lambda: handle(member, LINE)),
            ("  render_message (Block Kit)", lambda: render_message(reply)),
            ("  Background pool hop (submit + result)", lambda: hop(int).result()),
            # Only commands that change something and button presses pay this one write.
            ("  replay guard: record a request (state-changing only)", lambda: first(next(ids))),
            ("  BoltRequest(...) parse", lambda: BoltRequest(body=body, headers=headers)),
        ]
        log.info("ack path in-process (%d runs each, median / p99 ms):", runs)
        for label, fn in steps:
            median, p99 = _timed(fn, runs)
            log.info("  %-58s %7.3f / %7.3f", label, median, p99)
    finally:
        service.stop()
        fake.stop()


def main() -> None:
    """Measure and print."""
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--quick", action="store_true", help="500 requests per run")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.warmup = 500, 100
    log.info("machine: %s", machine())
    fake = RateLimitedSlack().start()
    api = fake.base + "/api/"
    response_url = fake.base + "/respond/bench"
    results: dict[str, dict[int, tuple[list[float], float]]] = {}
    with tempfile.TemporaryDirectory(prefix="dcml-bench-") as name:
        directory = Path(name)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = bot_env(f"sqlite:///{directory / 'bot.sqlite3'}", port, slack_api=api)
        child = Child(serve_command(), env, directory / "bot.log")
        try:
            child.wait_healthy(base)
            status, reply = post_command(base, LINE, ADMIN, response_url)
            if status != 200 or not isinstance(reply, dict):
                raise RuntimeError(f"the bot answered {status}: {reply!r}")
            log.info(
                "bot reply to %r: %d bytes of JSON, %d Block Kit blocks",
                LINE,
                len(json.dumps(reply)),
                len(reply.get("blocks", [])),
            )
            reply_file = directory / "reply.json"
            reply_file.write_text(json.dumps(reply))
            results["bot"] = _measure("bot", child, base, args, response_url)
        finally:
            child.stop()
        for name, inline in (("bare default", False), ("bare inline", True)):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            env = bot_env(f"sqlite:///{directory / 'unused.sqlite3'}", port, slack_api=api)
            command = bare_command(port, api, inline=inline, reply=reply_file)
            child = Child(command, env, directory / f"{name.replace(' ', '-')}.log")
            try:
                results[name] = _measure(name, child, base, args, response_url)
            finally:
                child.stop()
        fake.stop()

        log.info("")
        log.info(
            "%-13s %3s %9s %9s %9s %9s %9s",
            "server",
            "c",
            "p50 ms",
            "p99 ms",
            "mean ms",
            "max ms",
            "req/s",
        )
        for name, by_c in results.items():
            for concurrency, (samples, wall) in by_c.items():
                log.info(
                    "%-13s %3d %9.3f %9.3f %9.3f %9.3f %9.0f",
                    name,
                    concurrency,
                    pct(samples, 0.5),
                    pct(samples, 0.99),
                    statistics.fmean(samples),
                    max(samples),
                    len(samples) / wall,
                )
        log.info("")
        for concurrency, (samples, _) in results["bot"].items():
            for base_name in ("bare default", "bare inline"):
                other = results[base_name][concurrency][0]
                log.info(
                    "c=%-2d bot / %-12s  p50 %.2fx  p99 %.2fx",
                    concurrency,
                    base_name,
                    pct(samples, 0.5) / pct(other, 0.5),
                    pct(samples, 0.99) / pct(other, 0.99),
                )
        summary = []
        if 1 in results["bot"]:
            one = results["bot"][1][0]
            summary.append(
                f"c=1: bot p50 {pct(one, 0.5):.2f} ms (target <= 2), "
                f"p99 {pct(one, 0.99):.2f} ms (target <= 5), "
                f"{pct(results['bare default'][1][0], 0.5) / pct(one, 0.5):.1f}x faster than "
                "bare default at p50 (target >= 5x)"
            )
        if 16 in results["bot"]:
            many, floor = results["bot"][16][0], results["bare inline"][16][0]
            summary.append(
                f"c=16: bot / bare inline p50 {pct(many, 0.5) / pct(floor, 0.5):.2f}x, "
                f"p99 {pct(many, 0.99) / pct(floor, 0.99):.2f}x (target <= 2x)"
            )
        for line in summary:
            log.info("%s", line)
        log.info("")
        _ack_path(directory, max(200, args.requests // 4), reply_file)


if __name__ == "__main__":
    main()
