"""Tracks: loading an index with eight guides, and ``/dcml essential`` against one guide vs eight.

Run: .venv/bin/python bench/bench_tracks.py [--requests N] [--quick]

The index is tests/data/starter-guide/Readme.md with all eight of its directions present: the four
guides the repository has, and the other four made by copying them (database <- systems, aiAgents
<- autoML, diffusion <- dcml, science <- graphs), so every heading resolves.

1. Load: ``Guides(index).load()`` in a fresh ``Guides`` each run (every guide read and parsed),
   in this process after one unmeasured run (imports), median and max of N runs. In the same run:
   the single dcml guide loaded the same way, and the floor: markdown-it (the same CommonMark +
   linkify configuration) tokenising the nine files and nothing else. Target: under 100 ms.
2. Latency: two ``dcml-bot serve`` children (Slack-only, fake Slack Web API, temporary SQLite), one
   on the single guide (config/catalog/dcml.md), one on the eight-guide index, answer signed
   ``/dcml essential`` at concurrency 1 over one keep-alive connection, interleaved in rounds.
   On the index the asking user reads two directions (``/dcml track systems dcml`` first), so the
   answer spans common + two tracks. Target: p50 within 10 % of the single guide's.
Prints figures; asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench_commands import _load
from benchkit import (
    ROOT,
    Child,
    RateLimitedSlack,
    bot_env,
    free_port,
    log,
    machine,
    pct,
    post_command,
    serve_command,
    setup_logging,
)

STARTER = ROOT / "tests" / "data" / "starter-guide"
SINGLE = ROOT / "config" / "catalog" / "dcml.md"
COPIES = {"database": "systems", "aiAgents": "autoML", "diffusion": "dcml", "science": "graphs"}


def eight_guides(directory: Path) -> Path:
    """The starter guide with all eight direction guides present; the index's path."""
    target = directory / "starter-guide"
    shutil.copytree(STARTER, target)
    for name, source in COPIES.items():
        (target / "docs" / name).mkdir()
        shutil.copy(target / "docs" / source / "Readme.md", target / "docs" / name / "Readme.md")
    return target / "Readme.md"


def load_times(location: str, runs: int) -> list[float]:
    """Milliseconds per fresh load of a guide or index."""
    from dcml_bot.catalog.guides import Guides

    Guides(location).load()  # imports, regex compilation
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        loaded = Guides(location).load()
        samples.append((time.perf_counter() - start) * 1000)
        if loaded.catalog is None or loaded.errors:
            raise RuntimeError(f"{location}: {loaded.errors}")
    return samples


def tokenise_times(index: Path, runs: int) -> list[float]:
    """Milliseconds to read and tokenise every file of the index (markdown-it alone): the floor."""
    from markdown_it import MarkdownIt

    files = [index, *sorted(index.parent.glob("docs/*/Readme.md"))]
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        md = MarkdownIt("commonmark", {"linkify": True}).enable("linkify")
        for path in files:
            md.parse(path.read_text(encoding="utf-8"))
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    """Measure and print."""
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="per server and round set")
    parser.add_argument("--runs", type=int, default=30, help="loads per catalog")
    parser.add_argument("--quick", action="store_true", help="300 requests, 10 loads")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.runs = 300, 10
    log.info("machine: %s", machine())
    with tempfile.TemporaryDirectory(prefix="dcml-tracks-") as name:
        directory = Path(name)
        index = eight_guides(directory)

        from dcml_bot.catalog.guides import Guides

        catalog = Guides(str(index)).load().catalog
        assert catalog is not None
        log.info(
            "index: %d tracks, %d items from %d listings",
            len(catalog.tracks),
            len(catalog.entries),
            catalog.listings,
        )
        single = load_times(str(SINGLE), args.runs)
        eight = load_times(str(index), args.runs)
        floor = tokenise_times(index, args.runs)
        log.info("")
        log.info("%-34s %9s %9s", "load (fresh, in-process)", "median ms", "max ms")
        log.info(
            "%-34s %9.1f %9.1f", "single guide (dcml.md)", statistics.median(single), max(single)
        )
        log.info("%-34s %9.1f %9.1f", "index + 8 guides", statistics.median(eight), max(eight))
        log.info(
            "%-34s %9.1f %9.1f",
            "  floor: markdown-it alone, 9 files",
            statistics.median(floor),
            max(floor),
        )
        log.info(
            "index load / markdown-it floor: %.2fx; target: index + 8 guides under 100 ms",
            statistics.median(eight) / statistics.median(floor),
        )

        fake = RateLimitedSlack().start()
        api, response_url = fake.base + "/api/", fake.base + "/respond/bench"
        servers: dict[str, tuple[Child, str]] = {}
        try:
            for label, guide in (("single guide", SINGLE), ("8-guide index", index)):
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                env = bot_env(
                    f"sqlite:///{directory / (label.replace(' ', '-') + '.sqlite3')}",
                    port,
                    slack_api=api,
                    extra={"DCML_BOT_CATALOG": str(guide)},
                )
                child = Child(serve_command(), env, directory / f"{label.replace(' ', '-')}.log")
                servers[label] = (child, base)
                child.wait_healthy(base)
                status, _ = post_command(base, "track systems dcml", "U0BENCH00", response_url)
                if status != 200:
                    raise RuntimeError(f"{label}: /dcml track answered {status}")
                _load(base, 1, 100, response_url)  # warm-up
            samples: dict[str, list[float]] = {label: [] for label in servers}
            rounds = 5
            for _ in range(rounds):
                for label, (_, base) in servers.items():
                    measured, _ = _load(base, 1, args.requests // rounds, response_url)
                    samples[label] += measured
        finally:
            for child, _ in servers.values():
                child.stop()
            fake.stop()
    log.info("")
    log.info("%-16s %9s %9s %9s", "/dcml essential", "p50 ms", "p99 ms", "mean ms")
    for label, measured in samples.items():
        log.info(
            "%-16s %9.3f %9.3f %9.3f",
            label,
            pct(measured, 0.5),
            pct(measured, 0.99),
            statistics.fmean(measured),
        )
    ratio = pct(samples["8-guide index"], 0.5) / pct(samples["single guide"], 0.5)
    log.info("index / single p50: %.3fx (target <= 1.10x)", ratio)


if __name__ == "__main__":
    main()
