"""Slack Block Kit rendering: escaping, Slack's limits, paging, buttons and the Home view."""

from __future__ import annotations

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
from dcml_bot.platforms.slack.blocks import (
    ACTION_PREFIX,
    MAX_MESSAGES,
    action_name,
    check_message,
    check_view,
    escape,
    json_size,
    render_home,
    render_message,
)
from support import MONDAY_SLOT, WEEK, Clock, Recorder, make_bot, synthetic_guide

# A link the renderer emits: neither part may hold a raw <, > or | of its own.
LINK = re.compile(r"<([^<>|]+)\|([^<>|]+)>")
ENTITY = re.compile(r"&(?:amp|lt|gt);")
LEFT_OUT = re.compile(r"… (\d+) more items? not shown")

Payload = dict[str, Any]


def texts(payload: Payload) -> list[str]:
    """Every text object's text in a message or view, in order."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn"):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload["blocks"])
    return found


def links(payloads: list[Payload]) -> list[tuple[str, str]]:
    """Every (url, label) link in the payloads, in order."""
    return [link for p in payloads for text in texts(p) for link in LINK.findall(text)]


def assert_no_control(payloads: list[Payload]) -> None:
    """Outside the renderer's own links there is no <, > or partial escape anywhere."""
    for payload in payloads:
        for text in [payload.get("text", ""), *texts(payload)]:
            bare = LINK.sub("", text)
            assert "<" not in bare and ">" not in bare, text[:200]
            assert "&" not in ENTITY.sub("", text), text[:200]
        dumped = json.dumps(payload, ensure_ascii=False)
        for mention in ("<!", "<@", "<#"):
            assert mention not in dumped


def assert_valid(payloads: list[Payload]) -> None:
    assert 1 <= len(payloads) <= MAX_MESSAGES
    for payload in payloads:
        assert check_message(payload) == []
        assert payload["text"].strip()
    assert_no_control(payloads)


def label(title: str) -> str:
    """How a title appears inside a link label."""
    return escape(" ".join(title.split())).replace("|", "∣")


def link_of(item: ItemView) -> str:
    assert item.url is not None
    return f"<{escape(item.url)}|{label(item.title)}>"


def left_out(payloads: list[Payload]) -> int:
    last = texts(payloads[-1])[-1]
    match = LEFT_OUT.search(last)
    return int(match.group(1)) if match else 0


def many_items(count: int, *, title_length: int, note_length: int = 0) -> tuple[ItemView, ...]:
    filler = "Learning & <scaling> | data > models " * (title_length // 36 + 1)
    return tuple(
        ItemView(
            id=f"arxiv:2310.{n:05d}",
            title=f"Paper {n}: {filler}"[:title_length],
            url=f"https://arxiv.org/abs/2310.{n:05d}",
            level_icon="⚡",
            kind_icons=("📄", "🔧"),
            note=("<!here> read §3 & the appendix " * (note_length // 30 + 1))[:note_length]
            or None,
        )
        for n in range(count)
    )


# --- escaping ---------------------------------------------------------------------------------


def test_escape_replaces_only_the_three_control_characters() -> None:
    assert escape("a & b < c > d | *e* _f_ 'g' \"h\"") == (
        "a &amp; b &lt; c &gt; d | *e* _f_ 'g' \"h\""
    )
    assert escape("&amp;") == "&amp;amp;"


def test_user_text_everywhere_is_escaped() -> None:
    reply = Reply(
        header="<!here> & co",
        blocks=(
            TextBlock(text="<!channel> & <@U123|bob>"),
            ItemsBlock(title="<!subteam^S1> topic", items=many_items(2, title_length=80)),
            ContextBlock(lines=("<#C1|general> & <!everyone>",)),
            ActionsBlock(buttons=(Button(label="<!here>", action="done", value="x|y"),)),
        ),
    )
    [message] = render_message(reply)
    blocks = message["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "&lt;!here&gt; &amp; co", "emoji": True},
    }
    assert blocks[1]["text"]["text"] == "&lt;!channel&gt; &amp; &lt;@U123|bob&gt;"
    assert blocks[2]["text"]["text"].startswith("*&lt;!subteam^S1&gt; topic*\n")
    assert blocks[3]["elements"][0]["text"] == "&lt;#C1|general&gt; &amp; &lt;!everyone&gt;"
    assert blocks[4]["elements"][0]["text"]["text"] == "&lt;!here&gt;"
    assert message["text"] == "&lt;!here&gt; &amp; co"
    assert_valid([message])


def test_a_title_or_url_cannot_make_a_second_link_or_a_mention() -> None:
    item = ItemView(
        id="x",
        title="Evil | <!channel> > <https://evil.example|click here>",
        url="https://ok.example/a>b|<!here>&c=1",
        note="see <@U1> | ok",
    )
    [message] = render_message(Reply(blocks=(ItemsBlock(items=(item,)),)))
    text = message["blocks"][0]["text"]["text"]
    assert text.count("<") == 1 and text.count(">") == 1
    [(url, title)] = LINK.findall(text)
    assert url == "https://ok.example/a&gt;b%7C&lt;!here&gt;&amp;c=1"
    assert title == "Evil ∣ &lt;!channel&gt; &gt; &lt;https://evil.example∣click here&gt;"
    assert text.endswith("\n_see &lt;@U1&gt; | ok_")
    assert_valid([message])


def test_only_web_links_become_links() -> None:
    item = ItemView(id="x", title="Click", url="javascript:alert(1)>")
    [message] = render_message(Reply(blocks=(ItemsBlock(items=(item,)),)))
    text = message["blocks"][0]["text"]["text"]
    assert "<" not in text
    assert text == "Click — javascript:alert(1)&gt;"


def test_an_over_long_line_is_cut_without_breaking_an_escape_or_the_link() -> None:
    url = "https://arxiv.org/abs/2310.00001"
    long_title = ItemView(id="a", title="&<" * 2000, url=url)
    [message] = render_message(Reply(blocks=(ItemsBlock(items=(long_title,)),)))
    text = message["blocks"][0]["text"]["text"]
    assert len(text) <= 3000
    [(link_url, title)] = LINK.findall(text)
    assert link_url == url
    assert title.endswith("…")
    assert title.startswith("&amp;&lt;&amp;&lt;")
    assert_valid([message])

    long_url = ItemView(id="b", title="Kept & shown", url="https://x.example/" + "a" * 3000)
    [message] = render_message(Reply(blocks=(ItemsBlock(items=(long_url,)),)))
    text = message["blocks"][0]["text"]["text"]
    assert "<" not in text
    assert text.startswith("Kept &amp; shown")
    assert_valid([message])


def test_a_long_note_is_shortened_to_fit_beside_its_item() -> None:
    item = ItemView(
        id="a", title="T" * 2900, url="https://arxiv.org/abs/2310.00001", note="n" * 5000
    )
    [message] = render_message(Reply(blocks=(ItemsBlock(items=(item,)),)))
    text = message["blocks"][0]["text"]["text"]
    assert len(text) <= 3000
    assert link_of(item) in text
    assert text.endswith("…_")
    assert_valid([message])


# --- the project's catalog ----------------------------------------------------------------------


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Bot]:
    built = make_bot(f"sqlite:///{tmp_path / 'store.sqlite3'}", Recorder(), Clock(MONDAY_SLOT))
    try:
        yield built
    finally:
        built.close()


@pytest.mark.parametrize("line", ["essential", "topics", "help", "search clip", "next"])
def test_real_replies_render_valid_with_every_item(bot: Bot, line: str) -> None:
    for user in ("alice", "boss"):
        reply = bot.commands.handle(bot.member("local", user), line)
        payloads = render_message(reply)
        assert_valid(payloads)
        joined = "\n".join(text for p in payloads for text in texts(p))
        for item in reply.items:
            assert link_of(item) in joined
        assert len(links(payloads)) == len(reply.items)
        if reply.header:
            assert payloads[0]["blocks"][0]["type"] == "header"
        if line in ("essential", "search clip", "next"):
            assert reply.items  # the query matched something, so links were checked


def test_every_entry_of_the_catalog_renders(bot: Bot) -> None:
    entries = bot.library.catalog.entries
    reply = Reply(header="All", blocks=(ItemsBlock(items=tuple(ItemView.of(e) for e in entries)),))
    payloads = render_message(reply)
    assert_valid(payloads)
    assert len(links(payloads)) == len(entries)
    home = render_home(reply)
    assert check_view(home) == []


# --- a synthetic 500-entry catalog ---------------------------------------------------------------


@pytest.fixture
def big_bot(tmp_path: Path) -> Iterator[Bot]:
    guide = synthetic_guide(tmp_path / "big.md")
    built = make_bot(
        f"sqlite:///{tmp_path / 'store.sqlite3'}", Recorder(), Clock(MONDAY_SLOT), catalog=guide
    )
    try:
        yield built
    finally:
        built.close()


def test_synthetic_catalog_replies_render_valid(big_bot: Bot) -> None:
    catalog = big_bot.library.catalog
    assert len(catalog.entries) == 500
    assert all(len(e.title) > 200 and "<!channel>" in e.title for e in catalog.entries)
    member = big_bot.member("local", "alice")
    lines = ["essential", "search zebra3", *(f"topic{t:02d}" for t in range(20))]
    for line in lines:
        reply = big_bot.commands.handle(member, line)
        assert reply.items, line
        payloads = render_message(reply)
        assert_valid(payloads)
        shown = links(payloads)
        assert len(shown) == len(set(shown)) == len(reply.items)
        joined = "\n".join(text for p in payloads for text in texts(p))
        for item in reply.items:
            assert link_of(item) in joined
        assert check_view(render_home(reply)) == []


def test_500_items_fit_in_five_messages_each_once() -> None:
    items = many_items(500, title_length=220, note_length=60)
    reply = Reply(header="Everything", blocks=(ItemsBlock(title="All", items=items),))
    payloads = render_message(reply)
    assert_valid(payloads)
    shown = [url for url, _ in links(payloads)]
    assert shown == [escape(item.url or "") for item in items]
    assert left_out(payloads) == 0
    assert payloads[0]["blocks"][0]["type"] == "header"
    assert all(block["type"] != "header" for p in payloads[1:] for block in p["blocks"])


@pytest.mark.parametrize("groups", [1, 500])
def test_too_many_items_are_cut_at_five_messages_with_a_count(groups: int) -> None:
    items = many_items(500, title_length=1500, note_length=400)
    size = len(items) // groups
    blocks = [
        ItemsBlock(title=f"Topic {g}", items=items[g * size : (g + 1) * size])
        for g in range(groups)
    ]
    reply = Reply(header="Everything", blocks=(*blocks, ContextBlock(lines=("footer",))))
    payloads = render_message(reply)
    assert len(payloads) == MAX_MESSAGES
    assert_valid(payloads)
    assert all(len(p["blocks"]) == 50 for p in payloads)
    shown = [url for url, _ in links(payloads)]
    assert len(shown) == len(set(shown))
    assert shown == [escape(item.url or "") for item in items[: len(shown)]]
    assert 0 < len(shown) < 500
    assert left_out(payloads) == 500 - len(shown)
    assert payloads[-1]["blocks"][-1]["type"] == "context"


def test_groups_move_to_the_next_page_rather_than_split() -> None:
    # 30 sections per group: the second group does not fit beside the first, but fits a page.
    per_group = many_items(60, title_length=1400)
    reply = Reply(
        blocks=(
            ItemsBlock(title="First", items=per_group[:30]),
            ItemsBlock(title="Second", items=per_group[30:]),
        )
    )
    payloads = render_message(reply)
    assert_valid(payloads)
    assert len(payloads) == 2
    assert payloads[1]["blocks"][0]["text"]["text"].startswith("*Second*")
    assert len(links(payloads)) == 60


def test_a_10000_character_text_is_split_into_valid_sections() -> None:
    words = ("lorem & ipsum <dolor> sit amet " * 400)[:10_000]
    solid = "a&b<" * 2500
    for text in (words, solid):
        [message] = render_message(Reply(header="Long", blocks=(TextBlock(text=text),)))
        assert_valid([message])
        sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
        assert len(sections) >= 4
        assert all(len(s) <= 3000 for s in sections)
        assert "".join("".join(s.split()) for s in sections) == "".join(escape(text).split())


def test_fallback_text_is_escaped_short_and_never_empty() -> None:
    [message] = render_message(Reply(blocks=(ItemsBlock(items=many_items(1, title_length=50)),)))
    assert message["text"] == "dcml-bot"
    [message] = render_message(Reply(blocks=(TextBlock(text="<!here> " + "x" * 5000),)))
    assert message["text"].startswith("&lt;!here&gt; xxx")
    assert len(message["text"]) <= 3000
    [message] = render_message(Reply())
    assert message["blocks"] and check_message(message) == []


# --- buttons ------------------------------------------------------------------------------------


def test_weekly_buttons_carry_the_action_and_the_exact_value(bot: Bot) -> None:
    entry = bot.library.catalog.entries[0]
    reply = weekly_reply("en", entry, WEEK, 0, len(bot.library.catalog.entries))
    payloads = render_message(reply)
    assert_valid(payloads)
    [actions] = [b for p in payloads for b in p["blocks"] if b["type"] == "actions"]
    elements = actions["elements"]
    assert [e["action_id"] for e in elements] == ["dcml:done", "dcml:skip", "dcml:later"]
    assert all(e["value"] == f"{entry.id}|{WEEK}" for e in elements)
    assert [e.get("style") for e in elements] == ["primary", None, None]
    assert [e["text"]["text"] for e in elements] == [b.label for b in reply.buttons]
    assert ACTION_PREFIX == "dcml:"


def test_thirty_buttons_are_split_into_valid_actions_blocks() -> None:
    distinct = tuple(Button(label=f"B{n}", action=f"a{n}", value=str(n)) for n in range(30))
    [message] = render_message(Reply(blocks=(ActionsBlock(buttons=distinct),)))
    assert_valid([message])
    sizes = [len(b["elements"]) for b in message["blocks"]]
    assert sizes == [25, 5]
    ids = [e["action_id"] for b in message["blocks"] for e in b["elements"]]
    assert ids == [f"dcml:a{n}" for n in range(30)]

    repeated = tuple(
        Button(label=f"B{n}", action=("done", "skip", "later")[n % 3], value=f"id{n // 3}|{WEEK}")
        for n in range(30)
    )
    [message] = render_message(Reply(blocks=(ActionsBlock(buttons=repeated),)))
    assert_valid([message])
    values = [e["value"] for b in message["blocks"] for e in b["elements"]]
    assert values == [b.value for b in repeated]
    for block in message["blocks"]:
        ids = [e["action_id"] for e in block["elements"]]
        assert len(ids) == len(set(ids))


def test_a_picker_is_one_actions_block_with_numbered_action_ids() -> None:
    picker = tuple(
        Button(label=f"Direction {name} (12)", action="track", value=name)
        for name in ("systems", "autoML", "dcml", "graphs")
    )
    mixed = (
        Button(label="Done", action="done", value="a|w"),
        *picker[:2],
        Button(label="Done again", action="done", value="b|w"),
    )
    [message] = render_message(Reply(blocks=(ActionsBlock(buttons=picker),)))
    assert_valid([message])
    [block] = message["blocks"]
    ids = [e["action_id"] for e in block["elements"]]
    assert ids == ["dcml:track", "dcml:track:2", "dcml:track:3", "dcml:track:4"]
    assert [e["value"] for e in block["elements"]] == ["systems", "autoML", "dcml", "graphs"]
    assert {action_name(i) for i in ids} == {"track"}
    [message] = render_message(Reply(blocks=(ActionsBlock(buttons=mixed),)))
    assert_valid([message])
    [block] = message["blocks"]
    ids = [e["action_id"] for e in block["elements"]]
    assert ids == ["dcml:done", "dcml:track", "dcml:track:2", "dcml:done:2"]
    assert [action_name(i) for i in ids] == ["done", "track", "track", "done"]
    home = render_home(Reply(blocks=(ActionsBlock(buttons=picker),)))
    assert check_view(home) == [] and len(home["blocks"]) == 1


def test_thirty_buttons_of_one_action_fill_blocks_of_25_numbered_afresh() -> None:
    buttons = tuple(Button(label=f"T{n}", action="track", value=f"t{n}") for n in range(30))
    [message] = render_message(Reply(blocks=(ActionsBlock(buttons=buttons),)))
    assert_valid([message])
    rows = [[e["action_id"] for e in b["elements"]] for b in message["blocks"]]
    assert [len(row) for row in rows] == [25, 5]
    assert rows[1] == ["dcml:track", *(f"dcml:track:{n}" for n in range(2, 6))]
    assert all(len(row) == len(set(row)) for row in rows)
    assert all(len(i) <= 255 for row in rows for i in row)
    assert [action_name(i) for row in rows for i in row] == ["track"] * 30
    values = [e["value"] for b in message["blocks"] for e in b["elements"]]
    assert values == [b.value for b in buttons]


def test_action_name_undoes_only_the_prefix_and_a_repeat_number() -> None:
    assert action_name("dcml:done") == "done"
    assert action_name("dcml:track:2") == "track"
    assert action_name("dcml:track:25") == "track"
    assert action_name("dcml:track:1") == "track:1"  # never made: the first has no number
    assert action_name("dcml:track:02") == "track:02"
    assert action_name("dcml:a:b") == "a:b"
    assert action_name("dcml:") == ""


def test_the_real_direction_picker_renders_as_one_valid_block() -> None:
    from dcml_bot.core.library import CatalogLibrary
    from dcml_bot.core.tracks import picker

    guide = Path(__file__).parent / "data" / "starter-guide" / "Readme.md"
    catalog = CatalogLibrary(str(guide)).load()
    for lang in ("en", "zh"):
        [message] = render_message(Reply(blocks=(picker(lang, catalog),)))
        assert_valid([message])
        [block] = message["blocks"]
        assert [e["value"] for e in block["elements"]] == ["systems", "autoML", "dcml", "graphs"]
        assert len({e["action_id"] for e in block["elements"]}) == 4


def test_a_long_button_label_is_truncated_to_75() -> None:
    button = Button(label="Mark as read " * 10, action="done", value="v")
    [message] = render_message(Reply(blocks=(ActionsBlock(buttons=(button,)),)))
    text = message["blocks"][0]["elements"][0]["text"]["text"]
    assert len(text) <= 75 and text.endswith("…")
    assert_valid([message])


# --- the checks themselves -----------------------------------------------------------------------


def test_check_message_reports_each_violation() -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}
    long_element = {"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 3001}]}
    button = {
        "type": "button",
        "action_id": "dcml:done",
        "text": {"type": "plain_text", "text": "b"},
    }
    actions = {"type": "actions", "elements": [button] * 26}
    bad_value = {"type": "actions", "elements": [{**button, "value": "v" * 2001}]}
    payload = {
        "text": "",
        "blocks": [section, header, context, long_element, actions, bad_value, {"type": "nope"}]
        + [{"type": "divider"}] * 44,
    }
    problems = "\n".join(check_message(payload))
    for expected in (
        "text: the fallback text",
        "51 blocks",
        "block 0 (section)",
        "3000",
        "block 1 (header)",
        "150",
        "block 2 (context)",
        "block 3 (context).elements[0]",
        "block 4 (actions)",
        "25",
        "action_id repeated",
        "block 5 (actions).elements[0]",
        "2000",
        "block 6 (nope): unknown block type",
    ):
        assert expected in problems


def test_check_view_reports_blocks_and_size() -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2900}}
    problems = check_view({"type": "home", "blocks": [section] * 101})
    assert any("101 blocks" in p for p in problems)
    assert any("bytes of JSON" in p for p in problems)
    assert check_view({"type": "home", "blocks": []}) != []
    assert check_view({"type": "nope", "blocks": [section]}) != []
    assert check_view({"type": "home", "blocks": [section]}) == []


# --- App Home -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("title_length", "note_length"), [(220, 0), (1500, 400)])
def test_home_view_of_500_items_is_valid(title_length: int, note_length: int) -> None:
    items = many_items(500, title_length=title_length, note_length=note_length)
    blocks = tuple(ItemsBlock(title=f"T{g}", items=items[g * 25 : (g + 1) * 25]) for g in range(20))
    reply = Reply(header="Reading list", blocks=blocks)
    view = render_home(reply)
    assert view["type"] == "home"
    assert len(view["blocks"]) <= 100
    assert check_view(view) == []
    assert json_size(view) <= 250_000
    shown = links([view])
    assert len(shown) == len(set(shown))
    assert left_out([view]) == 500 - len(shown)
    assert_no_control([{"text": "x", **view}])
    if title_length == 220:
        assert len(shown) == 500
    else:
        assert 0 < len(shown) < 500


ZH_LEFT_OUT = re.compile(r"……还有 (\d+) 项未显示——请缩小查询范围，例如 `/dcml 必读 rag`")


def test_a_chinese_reply_cut_short_says_so_in_chinese() -> None:
    items = many_items(500, title_length=1500, note_length=400)
    reply = Reply(header="全部", blocks=(ItemsBlock(title="全部", items=items),), lang="zh")
    payloads = render_message(reply)
    assert_valid(payloads)
    notice = texts(payloads[-1])[-1]
    match = ZH_LEFT_OUT.search(notice)
    assert match is not None and "`/dcml search &lt;关键词&gt;`" in notice
    assert int(match.group(1)) == 500 - len(links(payloads)) > 0
    assert left_out(payloads) == 0  # no English notice
    view = render_home(reply)
    assert check_view(view) == []
    (home_notice,) = [t for t in texts(view) if ZH_LEFT_OUT.search(t)]
    assert "more items" not in home_notice
