"""``/dcml topics`` on a big guide: answered from a per-catalog index built once (issue 16 item 10;
figures in bench_hostile_input.py --part topics)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dcml_bot.catalog import topics as topics_module
from dcml_bot.catalog.models import Catalog
from dcml_bot.catalog.topics import TopicIndex
from dcml_bot.core.bot import Bot
from dcml_bot.core.plan import in_scope
from support import MONDAY_SLOT, Clock, Recorder, make_bot, text_of

STARTER = Path(__file__).resolve().parent / "data" / "starter-guide" / "Readme.md"
SECTIONS, TOPICS, PER_TOPIC = 20, 25, 100  # 50,000 entries under 500 topics


def big_guide(path: Path, *, sections: int = SECTIONS, extra: int = 0) -> Path:
    """A guide of ``sections`` x TOPICS topics with PER_TOPIC entries each (+ ``extra`` in the
    last)."""
    lines = ["# Big guide", ""]
    number = 0
    for section in range(sections):
        lines += [f"## Section {section}", ""]
        for topic in range(TOPICS):
            lines += ["<details>", f"<summary>Topic {section}.{topic}</summary>", ""]
            last = section == sections - 1 and topic == TOPICS - 1
            for _ in range(PER_TOPIC + (extra if last else 0)):
                number += 1
                lines.append(f"- `⚡` [P{number}](https://e.org/{number})")
            lines += ["", "</details>", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Catalog]:
    """Every topic index built, by catalog."""
    built: list[Catalog] = []
    real = topics_module.build_topic_index

    def counting(catalog: Catalog) -> TopicIndex:
        built.append(catalog)
        return real(catalog)

    monkeypatch.setattr(topics_module, "build_topic_index", counting)
    return built


@pytest.fixture
def big(tmp_path: Path) -> Iterator[Bot]:
    guide = big_guide(tmp_path / "guide.md")
    made = make_bot(
        f"sqlite:///{tmp_path / 'bot.db'}", Recorder(), Clock(MONDAY_SLOT), catalog=guide
    )
    yield made
    made.close()


def say(bot: Bot, user: str, line: str) -> str:
    return text_of(bot.commands.handle(bot.member("local", user), line))


def test_topics_of_fifty_thousand_entries_come_from_one_index_build(
    big: Bot, builds: list[Catalog], tmp_path: Path
) -> None:
    assert len(big.library.catalog.entries) == SECTIONS * TOPICS * PER_TOPIC
    listing = say(big, "alice", "topics")
    assert listing.count("▸ Section ") == SECTIONS
    assert listing.count(f"({PER_TOPIC})") == SECTIONS * TOPICS
    assert "▸ Section 19\n    Topic 19.0 (100)\n    Topic 19.1 (100)" in listing
    assert say(big, "bob", "/dcml topics") == listing
    say(big, "carol", "lang zh")
    assert "Topic 3.7（100）" in say(big, "carol", "主题")
    assert len(builds) == 1  # three answers, two languages, one index

    # A new version of the guide is a new catalog: counted again, once.
    big_guide(Path(big.library.source), sections=2, extra=5)
    assert big.library.reload().status == "loaded"
    assert "Topic 1.24 (105)" in say(big, "alice", "topics")
    assert "Topic 1.24（105）" in say(big, "carol", "topics")
    assert "Section 19" not in say(big, "bob", "topics")
    assert [c.entries[-1].title for c in builds] == ["P50000", "P5005"]


def test_topics_in_a_members_tracks_count_only_their_entries(
    db_url: str, builds: list[Catalog]
) -> None:
    bot = make_bot(db_url, Recorder(), Clock(MONDAY_SLOT), catalog=STARTER)
    try:
        bot.commands.press(bot.member("local", "bob"), "track", "systems")
        catalog = bot.library.catalog
        scope = frozenset({"common", "systems"})
        listing = say(bot, "bob", "topics")
        for topic in dict.fromkeys(t.name for t in catalog.topics):
            count = sum(1 for e in catalog.entries if in_scope(e, scope) and topic in e.topics)
            assert (f" {topic} ({count})\n" in listing + "\n") == (count > 0), topic
        outside = {e.section for e in catalog.entries if not in_scope(e, scope)} - {
            e.section for e in catalog.entries if in_scope(e, scope)
        }
        assert outside and not any(f"▸ {section}\n" in listing for section in outside)
        everything = say(bot, "alice", "topics")  # no track chosen yet: common only
        assert everything != listing
        assert len(builds) == 1
    finally:
        bot.close()
