"""An entry whose link is 2,500 characters: valid Block Kit and Feishu cards, buttons that work.

Buttons carry a short reference to the entry (``catalog.entry_ref``), never the link: Slack
refuses a button value over 2,000 characters (the whole message is ``invalid_blocks``) and the
bot's own Feishu callback check refuses a value over 2,048.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dcml_bot.catalog import Entry, entry_ref
from dcml_bot.core.bot import Bot
from dcml_bot.core.builders import weekly_reply
from dcml_bot.platforms.feishu.cards import action_of, check_card, render_card
from dcml_bot.platforms.slack.blocks import (
    action_name,
    check_message,
    check_view,
    render_home,
    render_message,
)
from support import MONDAY_SLOT, WEEK, Clock, Recorder, item_line, make_bot, write_catalog

LONG = "https://example.org/papers/" + "x" * (2500 - len("https://example.org/papers/"))
SLACK_VALUE = 2000


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Bot]:
    guide = write_catalog(
        tmp_path / "guide.md",
        [("Basics", [f"- `⚡` 📄 [A paper with a long link]({LONG})", item_line("⚡", "Next", 1)])],
    )
    built = make_bot(
        f"sqlite:///{tmp_path / 'store.sqlite3'}", Recorder(), Clock(MONDAY_SLOT), catalog=guide
    )
    try:
        yield built
    finally:
        built.close()


def long_entry(bot: Bot) -> Entry:
    (entry,) = [e for e in bot.library.catalog.entries if e.url == LONG]
    return entry


def test_the_long_link_entry_gets_a_short_reference_that_finds_it(bot: Bot) -> None:
    entry = long_entry(bot)
    ref = entry_ref(entry.id)
    assert len(entry.id) > 2000 and len(ref) <= 64
    assert bot.library.catalog.get(ref) is entry
    assert bot.library.catalog.get(entry.id) is entry


def test_slack_renders_valid_block_kit_and_its_done_button_records_progress(bot: Bot) -> None:
    entry = long_entry(bot)
    reply = weekly_reply("en", entry, WEEK, 0, 2)
    payloads = render_message(reply)
    for payload in payloads:
        assert check_message(payload) == []
    assert check_view(render_home(reply)) == []
    dumped = json.dumps(payloads)
    assert LONG in dumped  # the link is still there to click
    buttons = [
        element
        for payload in payloads
        for block in payload["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]
    assert [len(b["value"]) <= SLACK_VALUE for b in buttons] == [True, True, True]
    member = bot.member("local", "nina")
    done = buttons[0]
    bot.commands.press(member, action_name(done["action_id"]), done["value"])
    progress = bot.store.progress_for(member.id)
    assert progress[entry.id].state == "read"


def test_feishu_renders_a_valid_card_whose_button_press_records_progress(bot: Bot) -> None:
    entry = long_entry(bot)
    reply = weekly_reply("zh", entry, WEEK, 0, 2)
    card = render_card(reply)
    assert check_card(card) == []
    assert LONG in json.dumps(card)
    values = [
        behavior["value"]
        for element in json.loads(json.dumps(card))["body"]["elements"]
        if element["tag"] == "column_set"
        for column in element["columns"]
        for button in column["elements"]
        for behavior in button.get("behaviors", [])
    ]
    assert len(values) == 3
    pressed = action_of(values[0])
    assert pressed is not None and pressed[0] == "done"
    member = bot.member("feishu", "ou_nina")
    bot.commands.press(member, *pressed)
    assert bot.store.progress_for(member.id)[entry.id].state == "read"
