"""Notes through Feishu's endpoint: encrypted, signed card callbacks into real lark-oapi
dispatch; the note form under a paper marked done, its submission (form_value), escaping."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dcml_bot.core.i18n import text
from dcml_bot.platforms.feishu.cards import check_card, escape_markdown
from fakes.feishu import (
    Feishu,
    buttons,
    card_of,
    card_press,
    card_text,
    fresh_token_cache,
    message_event,
    payload,
    serve_feishu,
)

__all__ = ["fresh_token_cache"]  # autouse: each test its own lark-oapi token cache

HOSTILE = "<at id=all></at> **bold** [link](https://evil.example) <font color='red'>x</font> `c`"


@pytest.fixture
def feishu(db_url: str) -> Iterator[Feishu]:
    with serve_feishu(db_url) as running_bot:
        yield running_bot


def form_submit(
    open_id: str, name: str, typed: Any, message_id: str, *, event_id: str | None = None
) -> dict[str, Any]:
    """A form's card.action.trigger (larksuite's shape): the button's name, the form's values."""
    event = payload("card.action.trigger.form")
    event["header"]["event_id"] = event_id or uuid.uuid4().hex
    event["event"]["operator"]["open_id"] = open_id
    event["event"]["action"]["name"] = name
    event["event"]["action"]["form_value"] = {"text": typed}
    event["event"]["context"]["open_message_id"] = message_id
    return event


def forms(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in card["body"]["elements"] if e.get("tag") == "form"]


def done_card(bot: Feishu, open_id: str) -> tuple[dict[str, Any], str]:
    """Deliver the week's paper to ``open_id`` and press its done button: the answer's card."""
    bot.enrol(open_id)
    bot.service.jobs.deliver()
    [weekly] = bot.fake.to(open_id)
    done = buttons(card_of(weekly))[0]["behaviors"][0]["value"]
    answer = bot.post(card_press(open_id, done, weekly["message_id"])).json()
    card: dict[str, Any] = answer["card"]["data"]
    return card, weekly["message_id"]


def test_a_note_after_done_through_the_card_form_shows_escaped_in_notes(feishu: Feishu) -> None:
    heard: list[int] = []
    feishu.service.bot.notes.on_added = lambda note, author: heard.append(note.id)
    card, message_id = done_card(feishu, "ou_ann")
    assert check_card(card) == []
    [form] = forms(card)
    text_input, submit = form["elements"]
    assert (text_input["tag"], text_input["input_type"], text_input["max_length"]) == (
        "input",
        "multiline_text",
        1000,  # Feishu's limit for a card input; longer notes by command
    )
    assert submit["form_action_type"] == "submit" and "behaviors" not in submit

    event = form_submit("ou_ann", submit["name"], HOSTILE, message_id)
    response = feishu.post(event)
    assert response.status_code == 200
    answer = response.json()
    assert answer["toast"]["type"] == "success" and "已保存" in answer["toast"]["content"]
    updated = answer["card"]["data"]
    assert check_card(updated) == [] and forms(updated) == []
    assert heard == [1]
    assert feishu.post(event).json() == {}  # redelivered: answered, not saved twice
    assert heard == [1]

    ref = submit["name"]  # (the name stands for the paper; the paper's id comes from the store)
    [note] = feishu.service.bot.store.notes_for("feishu", _item(feishu), share_default=True)
    assert note.text == HOSTILE.strip() and ref.startswith("dcml_note_")
    assert (
        feishu.post(
            message_event(f"/dcml notes {note.item_id}", open_id="ou_new", message_id="om_n")
        )
    ).status_code == 200
    feishu.platform.drain()
    [reply] = feishu.fake.replies("om_n")
    content = card_text(card_of(reply))
    assert json.dumps(escape_markdown(HOSTILE), ensure_ascii=False)[1:-1] in content
    for raw in ("<at id=all>", "**bold**", "[link](", "<font color='red'>"):
        assert raw not in content


def _item(bot: Feishu) -> str:
    [row] = [
        p
        for p in bot.service.bot.store.progress_for(bot.member("ou_ann").id).values()
        if p.state == "read"
    ]
    return row.item_id


def test_refused_notes_are_a_toast_and_leave_the_card(feishu: Feishu) -> None:
    heard: list[int] = []
    feishu.service.bot.notes.on_added = lambda note, author: heard.append(note.id)
    card, message_id = done_card(feishu, "ou_ann")
    name = forms(card)[0]["elements"][1]["name"]
    cases = [
        ("ou_ann", name, "x" * 2001, text("zh", "note.long", count=2001, max=2000)),
        ("ou_ann", name, "  ", text("zh", "note.empty", max=2000)),
        ("ou_new", name, "Fine.", "请先把"),  # mark it done first
        ("ou_ann", "dcml_note_" + "0" * 20, "Fine.", text("zh", "action.gone")),
    ]
    for open_id, button, typed, expected in cases:
        answer = feishu.post(form_submit(open_id, button, typed, message_id)).json()
        assert answer["toast"]["type"] == "error" and expected in answer["toast"]["content"]
        assert "card" not in answer  # the card, and what was typed in it, stay
    assert feishu.service.bot.store.count_notes(_item(feishu)) == 0
    assert heard == []
    # larksuite's own form payload (a form that is not the bot's): acknowledged, nothing done.
    assert feishu.post(payload("card.action.trigger.form")).json() == {}
    assert len(feishu.fake.sends()) == 1  # only the weekly card: refusals are toasts
