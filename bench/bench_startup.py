"""Start-up: process start to ``GET /healthz`` answering 200, for each configuration of ``serve``.

Run: .venv/bin/python bench/bench_startup.py [--runs N] [--quick]

Each configuration is started N times (default 5) as a child process (``dcml-bot serve``, the
console script), polling /healthz every 5 ms; best and median are reported. Each configuration
has its own SQLite database, created and migrated by an unmeasured first start (also reported as
"first start"), so the measured runs are restarts, as in production.

- local-only: no chat secrets (the local web lab at /);
- slack-only: SLACK_BOT_TOKEN + SLACK_SIGNING_SECRET, Web API at a fake answering auth.test;
- feishu-enabled: FEISHU_APP_ID/SECRET/VERIFICATION_TOKEN/ENCRYPT_KEY, DCML_BOT_FEISHU_DOMAIN at
  a fake on 127.0.0.1 (webhook mode calls nothing at start; lark-oapi's import is the cost);
- baseline: bench/bare_bolt_app.py (Bolt + Starlette + uvicorn, auth.test at start, /healthz),
  started the same way.

Also reported, as a floor: ``stack imports`` is a child that imports the libraries a Slack-only
``serve`` needs (Bolt, Starlette, uvicorn, SQLAlchemy's ORM, pydantic-settings, Typer,
markdown-it, APScheduler, prometheus_client) and exits, timed from spawn to exit.

Target: slack-only median <= 2x the baseline's. The runs of the configurations are interleaved
(round-robin) so that drift on the machine affects them alike.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import (
    Child,
    RateLimitedFeishu,
    RateLimitedSlack,
    bare_command,
    bot_env,
    free_port,
    log,
    machine,
    serve_command,
    setup_logging,
)

STACK = (
    "import slack_bolt, starlette, uvicorn, sqlalchemy.orm, pydantic_settings, typer, "
    "markdown_it, apscheduler.schedulers.background, prometheus_client"
)


def stack_imports() -> float:
    """Seconds to spawn an interpreter that imports the Slack-only stack and exits."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", STACK], check=True)
    return time.perf_counter() - start


def main() -> None:
    """Measure and print."""
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 runs each")
    args = parser.parse_args()
    if args.quick:
        args.runs = 3
    log.info("machine: %s", machine())
    slack = RateLimitedSlack().start()
    feishu = RateLimitedFeishu().start()
    api = slack.base + "/api/"
    times: dict[str, list[float]] = {}
    first: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dcml-startup-") as name:
        directory = Path(name)

        def command(config: str, port: int) -> tuple[list[str], dict[str, str]]:
            url = f"sqlite:///{directory / (config + '.sqlite3')}"
            if config == "bare bolt app":
                return bare_command(port, api, inline=True), bot_env(url, port, slack_api=api)
            if config == "slack-only":
                return serve_command(), bot_env(url, port, slack_api=api)
            if config == "feishu-enabled":
                return serve_command(), bot_env(url, port, feishu_domain=feishu.base)
            return serve_command(), bot_env(url, port)

        configs = ["bare bolt app", "local-only", "slack-only", "feishu-enabled"]
        for run in range(args.runs + 1):
            floor = stack_imports()
            if run:
                times.setdefault("stack imports", []).append(floor)
            for config in configs:
                port = free_port()
                cmd, env = command(config, port)
                child = Child(cmd, env, directory / f"{config.replace(' ', '-')}-{run}.log")
                try:
                    seconds = child.wait_healthy(f"http://127.0.0.1:{port}")
                finally:
                    child.stop()
                if run == 0:
                    first[config] = seconds
                else:
                    times.setdefault(config, []).append(seconds)
    slack.stop()
    feishu.stop()

    bare = statistics.median(times["bare bolt app"])
    log.info("")
    log.info(
        "%-16s %8s %8s %8s %14s %s",
        "configuration",
        "best s",
        "median s",
        "first s",
        "median/bare",
        "(first: empty database, migrations included)",
    )
    for config in configs:
        samples = times[config]
        log.info(
            "%-16s %8.3f %8.3f %8.3f %13.2fx",
            config,
            min(samples),
            statistics.median(samples),
            first[config],
            statistics.median(samples) / bare,
        )
    floor = times["stack imports"]
    log.info(
        "%-16s %8.3f %8.3f %8s %13.2fx  (imports only: %s)",
        "stack imports",
        min(floor),
        statistics.median(floor),
        "-",
        statistics.median(floor) / bare,
        STACK.removeprefix("import "),
    )
    log.info("target: slack-only median <= 2x the bare Bolt app's")


if __name__ == "__main__":
    main()
