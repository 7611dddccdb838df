"""Feishu card JSON 2.0 / post rendering of real replies: schema, size, escaping, callbacks."""

from __future__ import annotations

import copy
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dcml_bot.core.bot import Bot
from dcml_bot.core.builders import weekly_reply
from dcml_bot.core.reply import (
    ActionsBlock,
    Button,
    ContextBlock,
    ItemsBlock,
    ItemView,
    Reply,
    TextBlock,
)
from dcml_bot.platforms.feishu.cards import (
    CARD_LIMIT,
    MAX_LABEL,
    action_of,
    card_size,
    check_card,
    dumps,
    render_card,
    render_post,
    render_text,
)
from support import MONDAY_SLOT, WEEK, Clock, Recorder, make_bot

PAYLOADS = Path(__file__).resolve().parent / "data" / "payloads"
# A Markdown link as the card's markdown element parses it: [text](target).
LINK = re.compile(r"\[([^\[\]]*)\]\(([^()\s]*)\)")
MORE = re.compile(r"… (\d+) more items not shown — narrow the query")


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    db = tmp_path_factory.mktemp("feishu") / "store.sqlite3"
    built = make_bot(f"sqlite:///{db}", Recorder(), Clock(MONDAY_SLOT))
    try:
        yield built
    finally:
        built.close()


def elements(card: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every element of a card, columns and their contents included."""
    stack = list(reversed(card["body"]["elements"]))
    while stack:
        element = stack.pop()
        yield element
        for key in ("columns", "elements"):
            stack += reversed(element.get(key, []))


def markdown_of(card: dict[str, Any]) -> str:
    return "\n".join(e["content"] for e in elements(card) if e["tag"] == "markdown")


def buttons_of(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in elements(card) if e["tag"] == "button"]


def links_of(card: dict[str, Any]) -> list[tuple[str, str]]:
    """(decoded text, url) of every Markdown link in the card."""
    return [(html.unescape(t), url) for t, url in LINK.findall(markdown_of(card))]


def post_lines(post: dict[str, Any]) -> list[list[dict[str, Any]]]:
    (body,) = post.values()
    lines: list[list[dict[str, Any]]] = body["content"]
    return lines


def post_links(post: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["text"], e["href"]) for line in post_lines(post) for e in line if e["tag"] == "a"]


def replies(bot: Bot) -> dict[str, Reply]:
    member = bot.member("local", "alice")
    catalog = bot.library.catalog
    entry = next(e for e in catalog.entries if e.notes and e.url)
    made = {
        q: bot.commands.handle(member, q) for q in ("essential", "topics", "help", "search clip")
    }
    made["weekly"] = weekly_reply("en", entry, WEEK, 3, len(catalog.entries))
    made["weekly-zh"] = weekly_reply("zh", entry, WEEK, 0, len(catalog.entries))
    return made


def test_real_replies_render_as_valid_cards(bot: Bot) -> None:
    made = replies(bot)
    assert len(made["essential"].items) > 10
    assert made["search clip"].items
    for name, reply in made.items():
        card = render_card(reply)
        assert card["schema"] == "2.0", name
        assert card["config"] == {"update_multi": True}
        assert card["header"]["title"] == {"tag": "plain_text", "content": reply.header}
        assert card_size(card) <= CARD_LIMIT
        assert check_card(card) == [], name
        links = links_of(card)
        for item in reply.items:
            assert (item.title, item.url) in links, (name, item.title)
        assert len(links) == len(reply.items), name
        # The card survives being sent: content is a JSON string of it.
        assert json.loads(dumps(card)) == card


def test_real_replies_render_as_posts(bot: Bot) -> None:
    for name, reply in replies(bot).items():
        post = render_post(reply, "en_us")
        assert set(post) == {"en_us"}
        assert post["en_us"]["title"] == reply.header
        assert card_size(post) <= CARD_LIMIT
        assert post_links(post) == [(i.title, i.url) for i in reply.items], name
        text = render_text(reply)
        for item in reply.items:
            assert item.title in text


def test_plain_texts_stay_readable(bot: Bot) -> None:
    help_card = render_card(replies(bot)["help"])
    content = markdown_of(help_card)
    # "<words>" and "[id or title words]" in the help are shown literally, not as tags or links.
    assert "&lt;words&gt;" in content
    assert "&#91;id or title words&#93;" in content
    assert "<words>" not in content
    topics = render_card(replies(bot)["topics"])
    # Indented topic lines keep their indentation instead of being eaten by Markdown.
    assert "\n&nbsp;&nbsp;&nbsp;&nbsp;" in markdown_of(topics)


def test_weekly_buttons_round_trip_through_a_card_callback(bot: Bot) -> None:
    reply = replies(bot)["weekly"]
    card = render_card(reply)
    rendered = buttons_of(card)
    assert [b["text"]["content"] for b in rendered] == [b.label for b in reply.buttons]
    assert [b.action for b in reply.buttons] == ["done", "skip", "later"]
    assert [b["type"] for b in rendered] == ["primary", "default", "default"]
    (row,) = [e for e in card["body"]["elements"] if e["tag"] == "column_set"]
    assert len(row["columns"]) == 3
    trigger = json.loads((PAYLOADS / "feishu_card.action.trigger.plain.json").read_text())
    for button, shown in zip(reply.buttons, rendered, strict=True):
        behavior = shown["behaviors"][0]
        assert behavior["type"] == "callback"
        assert action_of(behavior["value"]) == (button.action, button.value)
        # The path of a click: Feishu posts the value back inside card.action.trigger.
        event = copy.deepcopy(trigger)
        event["event"]["action"]["value"] = behavior["value"]
        received = json.loads(json.dumps(event))
        assert received["header"]["event_type"] == "card.action.trigger"
        pressed = action_of(received["event"]["action"]["value"])
        assert pressed == (button.action, button.value)
        item_id, _, week = pressed[1].partition("|")
        assert week == WEEK
        assert bot.library.catalog.get(item_id) is not None
    # The stock example's value is not one of ours.
    assert action_of(trigger["event"]["action"]["value"]) is None


def test_a_pressed_weekly_button_reaches_the_commands(bot: Bot) -> None:
    reply = replies(bot)["weekly"]
    done = buttons_of(render_card(reply))[0]["behaviors"][0]["value"]
    parsed = action_of(json.loads(json.dumps(done)))
    assert parsed is not None
    answer = bot.commands.press(bot.member("local", "bob"), *parsed)
    assert answer.items[0].id == reply.items[0].id
    assert check_card(render_card(answer)) == []


def test_post_turns_buttons_into_typed_commands(bot: Bot) -> None:
    reply = replies(bot)["weekly"]
    item_id = reply.items[0].id
    texts = [e["text"] for line in post_lines(render_post(reply, "en_us")) for e in line]
    (hint,) = [t for t in texts if "reply:" in t]
    assert f"done {item_id}" in hint and f"skip {item_id}" in hint
    zh = [e["text"] for line in post_lines(render_post(reply)) for e in line]
    assert any("请回复" in t and f"done {item_id}" in t for t in zh)


def test_user_text_cannot_mention_or_link() -> None:
    hostile = '<at id=all></at> [click](javascript:alert(1)) **x** <at user_id="ou_1"></at>'
    reply = Reply(
        header="<at id=all></at>",
        blocks=(
            TextBlock(text=hostile),
            ContextBlock(lines=(hostile,)),
            ItemsBlock(
                title="[t](javascript:x)",
                items=(
                    ItemView(id="a", title="<at id=all></at>", url="javascript:alert(1)"),
                    ItemView(id="b", title="ok", url="  JAVASCRIPT:alert(1)", note=hostile),
                    ItemView(id="c", title="data", url="data:text/html,<b>x</b>"),
                ),
            ),
        ),
    )
    card = render_card(reply)
    raw = dumps(card)
    content = markdown_of(card)
    assert "<at" not in content
    assert "](javascript:" not in raw.lower()
    assert "**x**" not in content
    assert LINK.findall(content) == []
    assert check_card(card) == []
    # Escaped, the user's words are still all there.
    assert "&lt;at id=all&gt;&lt;/at&gt; &#91;click&#93;(javascript:alert(1))" in content
    post = render_post(reply)
    assert post_links(post) == []
    assert all(e["tag"] == "text" for line in post_lines(post) for e in line)


def test_a_title_with_brackets_stays_one_link() -> None:
    title = "Odd ] title) with [brackets] (and *stars* _under_ `ticks`)"
    url = "https://example.org/wiki/A_(b)?q=1&r=[2]"
    reply = Reply(blocks=(ItemsBlock(items=(ItemView(id="x", title=title, url=url),)),))
    card = render_card(reply)
    ((text, target),) = LINK.findall(markdown_of(card))
    assert html.unescape(text) == title
    assert target == "https://example.org/wiki/A_%28b%29?q=1&r=%5B2%5D"
    assert target.startswith("https://")
    assert post_links(render_post(reply)) == [(title, url)]


def big_reply(count: int) -> Reply:
    items = tuple(
        ItemView(
            id=f"url:example.org/{n}",
            title=f"第{n}篇 视觉语言模型的数据选择与增强研究 paper number {n:04d}",
            url=f"https://example.org/papers/{n}",
            level_icon="⚡",
            kind_icons=("📄", "🔧"),
            note="一个很长的备注，说明为什么要读这篇论文。" * 2 if n % 3 == 0 else None,
        )
        for n in range(count)
    )
    blocks = (
        TextBlock(text="Many results"),
        ItemsBlock(title="主题 A", items=items[: count // 2]),
        ItemsBlock(title="主题 B", items=items[count // 2 :]),
        ContextBlock(lines=("footer",)),
        ActionsBlock(
            buttons=(Button(label="Done", action="done", value="url:example.org/0|2026-W49"),)
        ),
    )
    return Reply(header="500 results", blocks=blocks)


def test_a_huge_reply_is_cut_to_fit_with_an_exact_count() -> None:
    reply = big_reply(500)
    card = render_card(reply)
    assert card_size(card) <= CARD_LIMIT
    assert card_size(card) > CARD_LIMIT - 600  # dropped no more than needed
    assert check_card(card) == []
    shown = [url for _, url in links_of(card)]
    assert len(shown) == len(set(shown))
    assert shown == [i.url for i in reply.items[: len(shown)]]
    (count,) = MORE.findall(markdown_of(card))
    assert int(count) == 500 - len(shown) > 0
    content = markdown_of(card)
    assert "Many results" in content and "footer" in content
    assert len(buttons_of(card)) == 1
    assert card["header"]["title"]["content"] == "500 results"


def test_a_huge_post_is_cut_to_fit_with_an_exact_count() -> None:
    reply = big_reply(500)
    post = render_post(reply)
    assert card_size(post) <= CARD_LIMIT
    shown = [url for _, url in post_links(post)]
    assert len(shown) == len(set(shown))
    assert shown == [i.url for i in reply.items[: len(shown)]]
    texts = [e["text"] for line in post_lines(post) for e in line]
    (count,) = [int(m) for t in texts for m in MORE.findall(t)]
    assert count == 500 - len(shown) > 0


def test_a_reply_that_fits_is_not_cut() -> None:
    reply = big_reply(20)
    card = render_card(reply)
    assert len(links_of(card)) == 20
    assert MORE.findall(markdown_of(card)) == []


TITLE = " ".join(["A long title"] * 30)


@pytest.mark.parametrize(
    ("text", "cut", "dropped", "post_cut"),
    [
        ("x" * 10_000, False, False, False),
        ("数" * 10_000, False, True, False),  # 30 000 bytes: the text fits, not the item too
        ("数" * 10_300, True, True, True),
        (
            "<" * 10_000,
            True,
            True,
            False,
        ),  # 40 000 bytes once escaped for Markdown; posts need none
        ("a\n" * 20_000, True, True, True),  # 20 000 paragraphs in a post
    ],
)
def test_an_enormous_text_is_truncated(text: str, cut: bool, dropped: bool, post_cut: bool) -> None:
    reply = Reply(
        header="h",
        blocks=(
            TextBlock(text=text),
            ItemsBlock(items=(ItemView(id="i", title=TITLE, url="https://e.org"),)),
            ActionsBlock(buttons=(Button(label="Skip", action="skip", value="i|w"),)),
        ),
    )
    card = render_card(reply)
    assert card_size(card) <= CARD_LIMIT
    assert check_card(card) == []
    assert len(buttons_of(card)) == 1
    first = card["body"]["elements"][0]["content"]
    assert first.endswith("…") is cut
    if not cut:
        assert html.unescape(first.replace("&nbsp;", " ")) == text
    # Texts are clipped only once every item is gone, and the count says so.
    assert links_of(card) == ([] if dropped else [(TITLE, "https://e.org")])
    assert MORE.findall(markdown_of(card)) == (["1"] if dropped else [])
    post = render_post(reply)
    assert card_size(post) <= CARD_LIMIT
    texts = [e["text"] for line in post_lines(post) for e in line]
    assert texts[-1].startswith("此处不支持按钮")
    assert any(t.endswith("…") for t in texts) is post_cut
    assert post_links(post) == ([] if post_cut else [(TITLE, "https://e.org")])


def test_check_card_reports_problems() -> None:
    good = render_card(big_reply(3))
    assert check_card(good) == []
    bad = copy.deepcopy(good)
    bad["schema"] = "1.0"
    bad["elements"] = []
    bad["config"]["wide_screen_mode"] = True
    button = buttons_of(bad)[0]
    del button["behaviors"]
    button["value"] = {"action": "done"}
    bad["body"]["elements"].append({"tag": "markdown", "content": "x" * CARD_LIMIT})
    problems = "\n".join(check_card(bad))
    assert "schema" in problems
    assert "unknown top-level keys: elements" in problems
    assert "wide_screen_mode" in problems
    assert "no valid callback value" in problems
    assert "unknown properties: value" in problems
    assert "over the 30720-byte limit" in problems
    assert check_card({"schema": "2.0"}) == ["body.elements is missing or not a list"]


def test_the_stock_v2_example_passes_the_check_except_its_value() -> None:
    example = json.loads((PAYLOADS / "feishu_card_v2.json").read_text())
    assert check_card(example) == ["body.elements[1] (button) has no valid callback value"]
    sent = json.loads((PAYLOADS / "feishu_message_create_card.request.json").read_text())
    assert json.loads(sent["content"]) == example


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        ["done", "x|w"],
        "done",
        {},
        {"action": "done"},
        {"value": "x|w"},
        {"action": "done", "value": 3},
        {"action": 1, "value": "x|w"},
        {"action": "", "value": "x|w"},
        {"action": "done", "value": None},
        {"action": "done", "value": "x" * 10_000},
        {"action": "d" * 10_000, "value": "x|w"},
    ],
)
def test_action_of_rejects_malformed_values(value: object) -> None:
    assert action_of(value) is None


def test_action_of_accepts_our_values() -> None:
    assert action_of({"action": "later", "value": "arxiv:2301.00001|2026-W49"}) == (
        "later",
        "arxiv:2301.00001|2026-W49",
    )
    assert action_of({"action": "done", "value": ""}) == ("done", "")


def test_the_same_block_twice_is_counted_twice() -> None:
    block = big_reply(400).blocks[1]
    reply = Reply(blocks=(block, block))
    assert isinstance(block, ItemsBlock)
    card = render_card(reply)
    assert card_size(card) <= CARD_LIMIT
    shown = len(links_of(card))
    (count,) = MORE.findall(markdown_of(card))
    assert 0 < shown < len(block.items)
    assert int(count) == 2 * len(block.items) - shown


STARTER = Path(__file__).resolve().parent / "data" / "starter-guide" / "Readme.md"
DIRECTIONS = ["systems", "autoML", "dcml", "graphs"]


@pytest.fixture(scope="module")
def directions_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    """A bot on the starter guide: an index whose headings link to four direction guides."""
    db = tmp_path_factory.mktemp("feishu-tracks") / "store.sqlite3"
    built = make_bot(f"sqlite:///{db}", Recorder(), Clock(MONDAY_SLOT), catalog=STARTER)
    try:
        yield built
    finally:
        built.close()


def test_the_direction_picker_renders_as_a_valid_card(directions_bot: Bot) -> None:
    bot = directions_bot
    member = bot.member("local", "carol")
    made = {
        "tracks": bot.commands.handle(member, "tracks"),
        "welcome": bot.onboarding.reply(member, WEEK),
    }
    for name, reply in made.items():
        pickers = [b for b in reply.buttons if b.action == "track"]
        assert [b.value for b in pickers] == DIRECTIONS, name
        card = render_card(reply)
        assert check_card(card) == [], name
        assert card_size(card) <= CARD_LIMIT
        shown = [
            (b["text"]["content"], action_of(b["behaviors"][0]["value"])) for b in buttons_of(card)
        ]
        assert [s for s in shown if s[1] and s[1][0] == "track"] == [
            (b.label, ("track", b.value)) for b in pickers
        ], name
        # Without buttons (a ``post``), the picker says what to type instead.
        texts = [e["text"] for line in post_lines(render_post(reply, "en_us")) for e in line]
        (hint,) = [t for t in texts if "track systems" in t]
        assert hint.endswith(" / ".join(f"track {d}" for d in DIRECTIONS)), hint
    # A press carries back exactly what the card holds, and the commands take it.
    value = buttons_of(render_card(made["tracks"]))[1]["behaviors"][0]["value"]
    parsed = action_of(json.loads(json.dumps(value)))
    assert parsed == ("track", "autoML")
    answer = bot.commands.press(member, *parsed)
    assert bot.store.get_member("local", "carol").tracks == ("autoML",)
    assert check_card(render_card(answer)) == []
    assert "autoML" in markdown_of(render_card(answer))


def test_a_long_button_label_is_cut_to_feishus_limit() -> None:
    long = Button(label="Data-Centric ML方向 " * 10 + "(43)", action="track", value="dcml")
    short = Button(label="AutoML方向 (40)", action="track", value="autoML")
    card = render_card(Reply(blocks=(ActionsBlock(buttons=(long, short)),)))
    assert check_card(card) == []
    cut, kept = (b["text"]["content"] for b in buttons_of(card))
    assert len(long.label) > MAX_LABEL
    assert len(cut) == MAX_LABEL and cut.endswith("…")
    assert long.label.startswith(cut[:-1])
    assert kept == short.label


ZH_MORE = re.compile(r"……还有 (\d+) 项未显示——请缩小查询范围")


def test_a_chinese_reply_cut_short_says_so_in_chinese() -> None:
    reply = big_reply(500).in_language("zh")
    card = render_card(reply)
    assert check_card(card) == []
    (count,) = ZH_MORE.findall(markdown_of(card))
    assert int(count) == 500 - len(links_of(card)) > 0
    assert MORE.findall(markdown_of(card)) == []
    post = render_post(reply)
    texts = [e["text"] for line in post_lines(post) for e in line]
    (count,) = [int(m) for t in texts for m in ZH_MORE.findall(t)]
    assert count == 500 - len(post_links(post)) > 0
    assert not any(MORE.search(t) for t in texts)
