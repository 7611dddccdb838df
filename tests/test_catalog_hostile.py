"""Hostile guides parse in bounded time and say what they hide: unclosed ``<!--`` runs, tags that
never close, deep nesting, very long lines (issue 16 item 7; figures in bench_hostile_input.py)."""

from __future__ import annotations

import time

from dcml_bot.catalog import parse_catalog
from dcml_bot.catalog.markup import html_events

MB = 1024 * 1024
# Before the fix 200 kB of unclosed comments took 11.8 s (quadratic: hours for 5 MB); after,
# about a second per MB on the bench machine. The bound only says "does not hang".
DEADLINE = 60.0


def _entry(n: int) -> str:
    return f"- `⚡` 📄 [Paper {n}](https://example.org/{n})\n\n"


def _fill(unit: str, size: int) -> str:
    return unit * (size // len(unit))


def test_a_five_megabyte_hostile_guide_parses_in_bounded_time_and_keeps_what_it_can() -> None:
    size = MB
    guide = "".join(
        [
            "# Hostile\n\n### Basics\n\n",
            _entry(1),
            "<details>\n" + _fill("<a ", size) + "\n\n",  # start tags that never close
            _entry(2),
            "<details>\n" + _fill("</a <? <!X <![CDATA[ ", size) + "\n\n",
            _entry(3),
            "Prose " + _fill("<!-- ", size // 2) + "\n\n",  # unclosed comments in a paragraph
            _entry(4),
            _fill(">", size // 4) + " deep\n\n",  # a quote nested 260,000 deep
            _entry(5),
            "- " + _fill("word ", size) + "\n\n",  # a 1 MB line
            _entry(6),
            # Unclosed comments at line starts: the rest of the guide is a comment.
            _fill("<!--\n", size + size // 4),
            _entry(7),
        ]
    )
    assert len(guide.encode()) >= 5 * MB

    start = time.perf_counter()
    catalog = parse_catalog(guide, "hostile.md")
    elapsed = time.perf_counter() - start

    assert elapsed < DEADLINE, f"{elapsed:.1f} s for {len(guide) / MB:.1f} MB"
    assert [entry.title for entry in catalog.entries] == [f"Paper {n}" for n in range(1, 7)]
    hidden = [p for p in catalog.problems if "unclosed <!--" in p.message]
    assert [p.message.split("(")[0] for p in hidden] == [
        "unclosed <!-- comment hides the rest of the guide "
    ]


def test_unclosed_html_in_a_block_is_text_and_the_layout_after_it_still_counts() -> None:
    block = "<details><!-- todo <a <? <summary>Graphs <LLMs></summary>\n"
    assert html_events(block) == (
        ("open", "details"),
        ("open", "summary"),
        ("text", "summary:Graphs <LLMs>"),
        ("close", "summary"),
    )
    assert html_events("<!-- draft <details><summary>Graphs</summary>\n") == ()  # all comment
    assert html_events("<details>\n<summary>Graphs</summary> <!-- a --> </details>\n") == (
        ("open", "details"),
        ("open", "summary"),
        ("text", "summary:Graphs"),
        ("close", "summary"),
        ("close", "details"),
    )


def test_an_unclosed_comment_is_reported_with_the_lines_it_hides() -> None:
    guide = "### Basics\n\n" + _entry(1) + "<!-- draft\n\n" + _entry(2) + _entry(3)
    catalog = parse_catalog(guide, "g.md")
    assert [entry.title for entry in catalog.entries] == ["Paper 1"]
    assert [str(p) for p in catalog.problems] == [
        "g.md:5: warning: unclosed <!-- comment hides the rest of the guide (lines 5–10), "
        "as on GitHub; close it with -->"
    ]
    closed = "### Basics\n\n" + _entry(1) + "<!-- draft\n-->\n\n" + _entry(2)
    assert parse_catalog(closed).problems == ()


def test_lists_nested_deeper_than_markdown_it_reads_are_reported_not_silently_dropped() -> None:
    guide = "### Basics\n\n" + _entry(1) + "- " * 12 + "deep\n\n" + _entry(2) + "## Next\n"
    catalog = parse_catalog(guide, "g.md")
    assert [entry.title for entry in catalog.entries] == ["Paper 1"]
    deep = [str(p) for p in catalog.problems if "nested too deep" in p.message]
    assert deep == [
        "g.md:5: warning: lists or quotes nested too deep: lines 5–9 are not read; "
        "nest fewer levels"
    ]
    shallow = "### Basics\n\n" + _entry(1) + "- " * 3 + "ok\n\n" + _entry(2)
    assert [entry.title for entry in parse_catalog(shallow).entries] == ["Paper 1", "Paper 2"]
