"""Catalog speed: parse the guide and answer typical queries; prints figures, asserts nothing.

Run: .venv/bin/python bench/bench_catalog.py [--guide PATH] [--parses N] [--queries N]

Baseline, measured in the same run: markdown-it-py tokenising the same text (the floor for any
parser built on it) and reading + decoding the file.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from markdown_it import MarkdownIt

from dcml_bot.catalog import parse_catalog, read_catalog_file, search

log = logging.getLogger("bench.catalog")

QUERIES = [
    "essential", "rag", "video", "math", "essential video", "search clip", "paper math", "course",
    "必读", "数学", "search instruction tuning", "data generation", "optional", "topics-none",
    "⚡ rag", "code", "survey", "华盛顿",
]  # fmt: skip


def _timings(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Measure and print."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    default = Path(__file__).resolve().parent.parent / "config" / "catalog" / "dcml.md"
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--guide", type=Path, default=default)
    parser.add_argument("--parses", type=int, default=200)
    parser.add_argument("--queries", type=int, default=10_000)
    args = parser.parse_args()

    text = read_catalog_file(args.guide)
    md = MarkdownIt("commonmark", {"linkify": True}).enable("linkify")
    cold_start = time.perf_counter()
    catalog = parse_catalog(text, str(args.guide))
    cold = (time.perf_counter() - cold_start) * 1000

    tokenise = _timings(lambda: md.parse(text), args.parses)
    read = _timings(lambda: read_catalog_file(args.guide), args.parses)
    parse = _timings(lambda: parse_catalog(text, str(args.guide)), args.parses)

    rng = random.Random(7)
    picks = [rng.choice(QUERIES) for _ in range(args.queries)]
    query_samples = []
    for q in picks:
        start = time.perf_counter()
        search(catalog, q)
        query_samples.append((time.perf_counter() - start) * 1000)

    log.info("guide: %s (%d bytes, %d items)", args.guide, len(text.encode()), len(catalog.entries))
    log.info("first parse (cold):            %7.2f ms", cold)
    log.info(
        "parse_catalog  median %6.2f ms  p99 %6.2f ms  (target < 20 ms)",
        statistics.median(parse),
        _pct(parse, 0.99),
    )
    log.info(
        "baseline markdown-it tokenise median %6.2f ms -> parse/tokenise ratio %.2fx",
        statistics.median(tokenise),
        statistics.median(parse) / statistics.median(tokenise),
    )
    log.info("read + decode + mojibake check  median %6.2f ms", statistics.median(read))
    log.info(
        "queries: %d  p50 %.3f ms  p99 %.3f ms  max %.3f ms  (target p99 < 1 ms)",
        len(query_samples),
        _pct(query_samples, 0.50),
        _pct(query_samples, 0.99),
        max(query_samples),
    )


if __name__ == "__main__":
    main()
