"""Hostile input (issue 16 items 7, 8, 10): guides built to parse slowly, a long lab chat history,
``/dcml topics`` on a huge guide; prints figures, asserts nothing.

Run: .venv/bin/python bench/bench_hostile_input.py [--part guide|lab|topics|all] [--quick]
     [--sizes MB ...] [--timeout S]

- guide: each hostile shape at 0.2, 1 and 5 MB: ``parse_catalog`` seconds next to markdown-it
  tokenising the same text (the floor for any parser built on it, same run). Each measurement
  runs in a child process stopped after ``--timeout`` seconds (the quadratic ones before the fix).
- lab: a temporary SQLite database with one local member and N chat entries (real answers to
  typical commands, stored as the page stores them), ``dcml-bot serve`` local-only as a child;
  ``GET /?as=alice``: seconds and bytes, while ``GET /healthz`` is polled every 10 ms: its
  slowest answer during the page load (baseline: its slowest answer with no page load).
- topics: a guide of N entries (20 sections x 25 topics), loaded by a real bot on a temporary
  SQLite database; the first ``/dcml topics`` and the median of 5 repeats.

Before/after: run it with PYTHONPATH naming the old tree's ``src`` (the children inherit it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchkit import CONFIG, Child, bot_env, free_port, log, machine, serve_command, setup_logging
from sqlalchemy import insert

MB = 1024 * 1024
ENTRY = "- `⚡` 📄 [Paper {n}](https://example.org/{n})\n\n"
LAB_LINES = ["essential", "help", "rag", "topics", "progress", "search clip", "next", "math"]


def _fill(unit: str, size: int) -> str:
    return unit * max(1, size // len(unit))


# Each shape: a guide of about ``size`` bytes, an entry before the hostile part and one after.
SHAPES: dict[str, Callable[[int], str]] = {
    "unclosed <!-- at line starts": lambda s: _fill("<!--\n", s),
    "unclosed <!-- run on one line": lambda s: _fill("<!--", s),
    "<!-- in one paragraph": lambda s: "Prose " + _fill("<!-- ", s),
    "<!-- closing every list item": lambda s: _fill(ENTRY.strip() + " <!-- x\n", s),
    "<details> block of <!-- lines": lambda s: "<details>\n" + _fill("<!-- x\n", s),
    "<details> block of <a <a": lambda s: "<details>\n" + _fill("<a ", s),
    "<details> block of </a <? <!X": lambda s: "<details>\n" + _fill("</a <? <!X ", s),
    "quotes nested (>>>>)": lambda s: _fill(">", s) + " deep",
    "lists nested (- - - -)": lambda s: _fill("- ", s) + "deep",
    "one very long line": lambda s: "- " + _fill("word ", s),
    "runs of [ (markdown-it's own cost)": lambda s: _fill("[", s),
    "plain entries (a normal guide)": lambda s: _fill(ENTRY, s),
}


def _guide(shape: str, size: int) -> str:
    return "# Hostile\n\n### Basics\n\n" + ENTRY + SHAPES[shape](size) + "\n\n" + ENTRY


def _one(shape: str, size: int) -> None:
    """Child: tokenise and parse one guide, print the seconds as JSON."""
    from dcml_bot.catalog import CatalogError, parse_catalog
    from dcml_bot.catalog.markup import tokenize

    text = _guide(shape, size)
    start = time.perf_counter()
    tokenize(text)
    tokenise = time.perf_counter() - start
    start = time.perf_counter()
    try:
        entries = len(parse_catalog(text).entries)
    except CatalogError:
        entries = 0
    parse = time.perf_counter() - start
    sys.stdout.write(json.dumps({"tokenise": tokenise, "parse": parse, "entries": entries}))


def bench_guide(sizes: list[float], timeout: float) -> None:
    """Every shape at every size, each in a child process."""
    log.info("guide parsing: parse_catalog vs markdown-it tokenise (each stopped at %d s)", timeout)
    for shape in SHAPES:
        cells = []
        for size in sizes:
            command = [sys.executable, __file__, "--one", shape, str(int(size * MB))]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
                row = json.loads(done.stdout)
                cells.append(
                    f"{size:g} MB: {row['parse']:7.2f} s (tokenise {row['tokenise']:6.2f}, "
                    f"{row['parse'] / size:5.2f} s/MB)"
                )
            except subprocess.TimeoutExpired:
                cells.append(f"{size:g} MB: > {timeout:.0f} s (stopped)")
            except (json.JSONDecodeError, KeyError):
                cells.append(f"{size:g} MB: failed: {done.stderr.strip().splitlines()[-1:]}")
        log.info("  %-36s %s", shape, " | ".join(cells))


# --- the lab --------------------------------------------------------------------------------


def _seed_lab(url: str, entries: int) -> None:
    """One local member, ``entries`` chat entries (answers of the real bot), in bulk."""
    import datetime as dt

    from dcml_bot.app import build_bot
    from dcml_bot.settings import load_settings
    from dcml_bot.store.database import writer
    from dcml_bot.store.schema import LocalMessage

    settings = load_settings(CONFIG).model_copy(update={"database_url": url})
    bot = build_bot(settings)
    try:
        member = bot.member("local", "alice", display_name="Alice")
        bodies = [
            json.dumps(
                {
                    "said": f"/dcml {line}",
                    "reply": bot.commands.handle(member, line).model_dump(mode="json"),
                }
            )
            for line in LAB_LINES
        ]
        now = dt.datetime.now(dt.UTC)
        with writer(bot.store.engine).begin() as connection:
            for start in range(0, entries, 1000):
                rows = [
                    {
                        "user_id": "alice",
                        "channel": "chat",
                        "reply": bodies[i % len(bodies)],
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(entries, start + 1000))
                ]
                connection.execute(insert(LocalMessage), rows)
    finally:
        bot.close()


def _get(port: int, path: str) -> tuple[float, int, int]:
    """Seconds, status and body bytes of one GET."""
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return time.perf_counter() - start, response.status, len(body)


def _poll_healthz(port: int, stop: threading.Event, samples: list[float]) -> None:
    while not stop.is_set():
        samples.append(_get(port, "/healthz")[0])
        time.sleep(0.01)


def bench_lab(counts: list[int]) -> None:
    """The lab page with long chat histories, /healthz polled meanwhile."""
    log.info("lab page: GET /?as=alice with N chat entries; /healthz polled every 10 ms")
    for count in counts:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/lab.db"
            _seed_lab(url, count)
            port = free_port()
            env = bot_env(url, port, extra={"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
            child = Child(serve_command(), env, Path(folder) / "serve.log")
            try:
                child.wait_healthy(f"http://127.0.0.1:{port}")
                _get(port, "/?as=alice")  # warm: templates compiled, catalog answers cached
                idle: list[float] = []
                stop = threading.Event()
                poller = threading.Thread(target=_poll_healthz, args=(port, stop, idle))
                poller.start()
                time.sleep(1.0)
                stop.set()
                poller.join()
                busy: list[float] = []
                stop = threading.Event()
                poller = threading.Thread(target=_poll_healthz, args=(port, stop, busy))
                poller.start()
                seconds, status, size = _get(port, "/?as=alice")
                stop.set()
                poller.join()
                log.info(
                    "  %6d entries: page %6.2f s, %5.2f MB (status %d); /healthz slowest %.3f s "
                    "during it (%d polls; idle slowest %.3f s)",
                    count,
                    seconds,
                    size / MB,
                    status,
                    max(busy),
                    len(busy),
                    max(idle),
                )
            finally:
                child.stop()


# --- topics ---------------------------------------------------------------------------------


def _topics_guide(entries: int) -> str:
    lines = ["# Big guide", ""]
    per_topic = max(1, entries // 500)
    number = 0
    for section in range(20):
        lines += [f"## Section {section}", ""]
        for topic in range(25):
            lines += ["<details>", f"<summary>Topic {section}.{topic}</summary>", ""]
            for _ in range(per_topic):
                number += 1
                lines.append(f"- `⚡` [P{number}](https://e.org/{number})")
            lines += ["", "</details>", ""]
    return "\n".join(lines)


def bench_topics(counts: list[int]) -> None:
    """``/dcml topics`` through the real bot on guides of ``counts`` entries."""
    from dcml_bot.app import build_bot
    from dcml_bot.settings import load_settings

    log.info("topics: /dcml topics on a guide of N entries under 500 topics")
    for count in counts:
        with tempfile.TemporaryDirectory() as folder:
            guide = Path(folder) / "guide.md"
            guide.write_text(_topics_guide(count), encoding="utf-8")
            update = {"database_url": f"sqlite:///{folder}/bot.db", "catalog": str(guide)}
            bot = build_bot(load_settings(CONFIG).model_copy(update=update))
            try:
                member = bot.member("local", "alice")
                start = time.perf_counter()
                bot.commands.handle(member, "topics")
                first = time.perf_counter() - start
                repeats = []
                for _ in range(5):
                    start = time.perf_counter()
                    bot.commands.handle(member, "topics")
                    repeats.append(time.perf_counter() - start)
                log.info(
                    "  %6d entries: first %8.2f ms, repeated median %8.3f ms",
                    len(bot.library.catalog.entries),
                    first * 1000,
                    statistics.median(repeats) * 1000,
                )
            finally:
                bot.close()


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=["guide", "lab", "topics", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--timeout", type=float, default=120.0, help="per guide parse, seconds")
    parser.add_argument("--sizes", type=float, nargs="+", help="guide sizes in MB (0.2 1 5)")
    parser.add_argument("--one", nargs=2, metavar=("SHAPE", "BYTES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(args.one[0], int(args.one[1]))
        return
    setup_logging()
    log.info("%s", machine())
    if args.part in {"guide", "all"}:
        sizes = args.sizes or ([0.05, 0.2] if args.quick else [0.2, 1, 5])
        bench_guide(sizes, args.timeout)
    if args.part in {"lab", "all"}:
        bench_lab([200, 2000] if args.quick else [200, 2000, 10_000])
    if args.part in {"topics", "all"}:
        bench_topics([10_000] if args.quick else [10_000, 50_000])


if __name__ == "__main__":
    main()
