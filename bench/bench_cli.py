"""The quick commands: wall time of ``dcml-bot catalog show`` / ``catalog check``; asserts nothing.

Run: .venv/bin/python bench/bench_cli.py [--runs N] [--quick]

Each command is started N times (default 20) as a child process through the console script
(``.venv/bin/dcml-bot``), output to /dev/null, from the repository root with a clean environment
(so the repository's config/dcml-bot.toml and guide are used); best and median wall time, from
spawn to exit, are reported. The runs are interleaved round-robin after one unmeasured round, so
that drift on the machine affects every command alike.

Baseline, measured the same way in the same run: ``python -c "import typer, rich, markdown_it,
pydantic"`` (the interpreter and the libraries any such command needs, doing nothing).

Target: each catalog command's median <= 2.5x the baseline's.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "dcml-bot"
BASELINE = "python -c 'import typer, rich, markdown_it, pydantic'"
TARGET = 2.5

log = logging.getLogger("bench.cli")


def commands() -> dict[str, list[str]]:
    """What is measured, by the name printed."""
    dcml_bot = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "dcml_bot"]
    return {
        BASELINE: [sys.executable, "-c", "import typer, rich, markdown_it, pydantic"],
        "dcml-bot catalog show": [*dcml_bot, "catalog", "show"],
        "dcml-bot catalog show --level essential": [
            *dcml_bot,
            "catalog",
            "show",
            "--level",
            "essential",
        ],
        "dcml-bot catalog check": [*dcml_bot, "catalog", "check"],
    }


def wall_time(command: list[str], env: dict[str, str]) -> float:
    """Seconds from spawn to exit; the command must succeed."""
    start = time.perf_counter()
    result = subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr!r}")
    return seconds


def main() -> None:
    """Measure and print."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 runs each")
    args = parser.parse_args()
    if args.quick:
        args.runs = 5
    log.info(
        "machine: %d cores, Python %s, %s %s",
        os.cpu_count() or 0,
        platform.python_version(),
        platform.system(),
        platform.release(),
    )
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}
    env.update({"NO_COLOR": "1", "COLUMNS": "120"})
    measured = commands()
    times: dict[str, list[float]] = {name: [] for name in measured}
    for run in range(args.runs + 1):
        for name, command in measured.items():
            seconds = wall_time(command, env)
            if run:  # the first round warms the file cache and the .pyc files
                times[name].append(seconds)

    base = statistics.median(times[BASELINE])
    log.info("")
    header = f"command ({args.runs} runs each)"
    log.info("%-62s %8s %9s %12s", header, "best s", "median s", "median/base")
    for name, samples in times.items():
        median = statistics.median(samples)
        log.info("%-62s %8.3f %9.3f %11.2fx", name, min(samples), median, median / base)
    log.info("target: each catalog command's median <= %.1fx the baseline's", TARGET)


if __name__ == "__main__":
    main()
