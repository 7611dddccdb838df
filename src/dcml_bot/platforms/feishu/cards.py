"""Feishu/Lark rendering of neutral replies: card JSON 2.0, ``post`` rich text, plain text."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from dcml_bot.core import i18n
from dcml_bot.core.reply import (
    ActionsBlock,
    Button,
    ContextBlock,
    InputBlock,
    ItemsBlock,
    ItemView,
    Mention,
    Reply,
    TextBlock,
    render_plain,
)
from dcml_bot.core.tracks import ACTION_TRACK
from dcml_bot.platforms.feishu.forms import FORM_KEYS, form_problems, render_form

CARD_LIMIT = 30 * 1024
MAX_ACTION = 64
MAX_VALUE = 2048
# Feishu documents 100 characters for button text; the header cap only keeps cards small.
MAX_LABEL = 100
MAX_HEADER = 200

# Card JSON 2.0 rejects unknown properties: these are the documented ones this module may emit.
TOP_LEVEL_KEYS = frozenset({"schema", "config", "card_link", "header", "body"})
CONFIG_KEYS = frozenset(
    {
        "streaming_mode",
        "streaming_config",
        "summary",
        "locales",
        "enable_forward",
        "update_multi",
        "width_mode",
        "use_custom_translation",
        "enable_forward_interaction",
        "style",
    }
)
ELEMENT_KEYS: dict[str, frozenset[str]] = {
    "markdown": frozenset(
        {"tag", "element_id", "margin", "text_align", "text_size", "icon", "content"}
    ),
    "button": frozenset(
        {
            "tag",
            "element_id",
            "margin",
            "type",
            "size",
            "width",
            "text",
            "icon",
            "hover_tips",
            "disabled",
            "disabled_tips",
            "confirm",
            "behaviors",
            "name",
            "form_action_type",
        }
    ),
    "column_set": frozenset(
        {
            "tag",
            "element_id",
            "margin",
            "flex_mode",
            "horizontal_spacing",
            "horizontal_align",
            "background_style",
            "columns",
            "action",
        }
    ),
    "column": frozenset(
        {
            "tag",
            "element_id",
            "margin",
            "width",
            "weight",
            "elements",
            "padding",
            "direction",
            "horizontal_spacing",
            "vertical_spacing",
            "horizontal_align",
            "vertical_align",
            "background_style",
        }
    ),
    "hr": frozenset({"tag", "element_id", "margin"}),
    **FORM_KEYS,
}
BUTTON_TYPES = {"primary": "primary", "danger": "danger", None: "default"}

# Typed commands that do what a button does, for the ``post`` fallback (there is no ``later``):
# a paper's buttons carry ``<item id>|<week>``, a direction picker's the direction's name.
TYPED_ACTIONS = ("done", "skip", ACTION_TRACK)

_MD_SPECIAL = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "[": "&#91;",
    "]": "&#93;",
    "\\": "&#92;",
    "`": "&#96;",
    "*": "&#42;",
    "_": "&#95;",
    "~": "&#126;",
    "#": "&#35;",
}
_MD_PATTERN = re.compile("[" + re.escape("".join(_MD_SPECIAL)) + "]")
# Characters that would end or break a Markdown link destination.
_URL_UNSAFE = re.compile(r"[\s()<>\[\]\\`\"'\x00-\x1f\x7f]")
# An open_id as Feishu issues them: safe inside ``<at id=…>``.
_OPEN_ID = re.compile(r"ou_[0-9A-Za-z_-]{4,64}")


def escape_markdown(text: str) -> str:
    """Text shown literally in a card ``markdown`` element: no tags, mentions, links or emphasis."""
    return _MD_PATTERN.sub(lambda m: _MD_SPECIAL[m.group()], text)


def _inline(text: str) -> str:
    return " ".join(text.split())


def _paragraph(text: str) -> str:
    """Escaped multi-line text; leading spaces survive as ``&nbsp;`` (Markdown would drop them)."""
    lines = []
    for line in text.split("\n"):
        body = line.lstrip(" ")
        lines.append("&nbsp;" * (len(line) - len(body)) + escape_markdown(body))
    return "\n".join(lines)


def http_url(url: str | None) -> str | None:
    """The URL if it is an absolute http(s) URL, the only kind that may become a link; else None."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def safe_url(url: str | None) -> str | None:
    """An http(s) URL percent-encoded where it would break ``[text](url)``, else None."""
    checked = http_url(url)
    if checked is None:
        return None
    return _URL_UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), checked)


def _icons(item: ItemView) -> str:
    return " ".join(p for p in (item.level_icon, "+".join(item.kind_icons)) if p)


def _clip(text: str, cap: int | None) -> str:
    """The text cut to at most ``cap`` characters, the ellipsis marking the cut included."""
    if cap is None or len(text) <= cap:
        return text
    return text[: max(cap - 1, 0)].rstrip() + "…"


def dumps(card: dict[str, Any]) -> str:
    """The card (or post) as the ``content`` string to send: compact JSON, UTF-8 characters kept."""
    return json.dumps(card, ensure_ascii=False, separators=(",", ":"))


def card_size(card: dict[str, Any]) -> int:
    """Bytes of the card as sent in ``content`` (see ``dumps``)."""
    return len(dumps(card).encode("utf-8"))


@dataclass(frozen=True)
class _Cut:
    """How much of a reply to show: the first ``keep`` items and texts clipped to ``cap`` chars."""

    keep: int
    cap: int | None


def _fit(
    reply: Reply, build: Callable[[Reply, _Cut], dict[str, Any]], fallback: dict[str, Any]
) -> dict[str, Any]:
    """The fullest rendering within CARD_LIMIT: drop items from the end, then clip texts."""
    total = len(reply.items)
    full = build(reply, _Cut(total, None))
    if card_size(full) <= CARD_LIMIT:
        return full
    if card_size(build(reply, _Cut(0, None))) > CARD_LIMIT:
        # Texts outrank items: clip them only once every item is gone.
        longest = max((len(t) for t in _texts(reply)), default=0)
        cap = _largest(0, longest, lambda c: card_size(build(reply, _Cut(0, c))) <= CARD_LIMIT)
        return fallback if cap is None else build(reply, _Cut(0, cap))
    keep = _largest(0, total, lambda k: card_size(build(reply, _Cut(k, None))) <= CARD_LIMIT)
    return build(reply, _Cut(keep or 0, None))


def _largest(low: int, high: int, fits: Callable[[int], bool]) -> int | None:
    """The largest n in [low, high] with fits(n), assuming fits is monotone; None if none fits."""
    if not fits(low):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _texts(reply: Reply) -> Iterator[str]:
    for block in reply.blocks:
        if isinstance(block, TextBlock):
            yield block.text
        elif isinstance(block, ContextBlock):
            yield from block.lines


def _shown(reply: Reply, keep: int) -> Iterator[tuple[tuple[ItemView, ...], int]]:
    """For each items block in order: the items kept, and how many were dropped after it (once)."""
    left = keep
    total = len(reply.items)
    noted = False
    for block in reply.blocks:
        if not isinstance(block, ItemsBlock):
            continue
        items = block.items[: max(left, 0)]
        left -= len(items)
        dropped = 0
        if not noted and len(items) < len(block.items):
            dropped, noted = total - keep, True
        yield items, dropped


# --- card JSON 2.0 ---------------------------------------------------------------------------


def _card_mention(block: TextBlock) -> str:
    """``<at id=ou_…></at> `` for a block that starts with a mention, else the escaped name."""
    if block.mention is None:
        return ""
    if _OPEN_ID.fullmatch(block.mention.user_id):
        return f"<at id={block.mention.user_id}></at> "
    return f"**{escape_markdown(_inline(block.mention.name))}** "


def _post_mention(mention: Mention) -> list[dict[str, Any]]:
    """A ``post`` line's leading mention (an ``at`` element), else the name in bold."""
    if _OPEN_ID.fullmatch(mention.user_id):
        return [{"tag": "at", "user_id": mention.user_id}, _text(" ")]
    return [_text(_inline(mention.name) + " ", bold=True)]


def _markdown(content: str, *, small: bool = False) -> dict[str, Any]:
    element: dict[str, Any] = {"tag": "markdown", "content": content}
    if small:
        element["text_size"] = "notation"
    return element


def _grey(line: str) -> str:
    return f"<font color='grey'>{line}</font>"


def _item_markdown(item: ItemView) -> str:
    icons = escape_markdown(_icons(item))
    title = escape_markdown(_inline(item.title))
    url = safe_url(item.url)
    shown = f"[{title}]({url})" if url else title
    line = f"{icons} {shown}" if icons else shown
    if item.note:
        line += "\n" + _grey(escape_markdown(_inline(item.note)))
    return line


def _button(button: Button) -> dict[str, Any]:
    return {
        "tag": "button",
        "text": {"tag": "plain_text", "content": _clip(_inline(button.label), MAX_LABEL)},
        "type": BUTTON_TYPES.get(button.style, "default"),
        "behaviors": [
            {"type": "callback", "value": {"action": button.action, "value": button.value}}
        ],
    }


def _buttons(block: ActionsBlock) -> list[dict[str, Any]]:
    if len(block.buttons) == 1:
        return [_button(block.buttons[0])]
    columns = [{"tag": "column", "width": "auto", "elements": [_button(b)]} for b in block.buttons]
    # "flow" lets the buttons wrap on a narrow (mobile) screen instead of squeezing them.
    return [
        {"tag": "column_set", "flex_mode": "flow", "horizontal_spacing": "8px", "columns": columns}
    ]


def _card_header(reply: Reply) -> dict[str, Any] | None:
    if not reply.header:
        return None
    title = _clip(_inline(reply.header), MAX_HEADER)
    return {"title": {"tag": "plain_text", "content": title}, "template": "blue"}


def _card(header: dict[str, Any] | None, elements: list[dict[str, Any]]) -> dict[str, Any]:
    card: dict[str, Any] = {"schema": "2.0", "config": {"update_multi": True}}
    if header is not None:
        card["header"] = header
    card["body"] = {"elements": elements}
    return card


def _left_out(reply: Reply, dropped: int) -> str:
    """The line under a list cut short, in the reader's language."""
    return i18n.text(reply.lang, "cut.items", count=dropped)


def _too_long(reply: Reply) -> str:
    """What stands for a reply too long to show at all, in the reader's language."""
    return i18n.text(reply.lang, "cut.long")


def _build_card(reply: Reply, cut: _Cut) -> dict[str, Any]:
    elements: list[dict[str, Any]] = []
    shown = _shown(reply, cut.keep)
    for block in reply.blocks:
        if isinstance(block, TextBlock):
            if block.text.strip():
                content = _paragraph(_clip(block.text, cut.cap))
                elements.append(_markdown(_card_mention(block) + content))
        elif isinstance(block, ItemsBlock):
            items, dropped = next(shown)
            lines = [_item_markdown(item) for item in items]
            if items and block.title:
                lines.insert(0, f"**{escape_markdown(_inline(block.title))}**")
            if lines:
                elements.append(_markdown("\n".join(lines)))
            if dropped:
                elements.append(_markdown(_grey(_left_out(reply, dropped)), small=True))
        elif isinstance(block, ActionsBlock):
            elements += _buttons(block)
        elif isinstance(block, InputBlock):
            elements.append(render_form(block))
        else:
            lines = [
                _grey(_paragraph(part))
                for line in block.lines
                for part in _clip(line, cut.cap).split("\n")
            ]
            if lines:
                elements.append(_markdown("\n".join(lines), small=True))
    header = _card_header(reply)
    if not elements and header is None:
        elements.append(_markdown("…"))
    return _card(header, elements)


def render_card(reply: Reply) -> dict[str, Any]:
    """The reply as a Feishu card JSON 2.0, never over CARD_LIMIT bytes."""
    fallback = _card(_card_header(reply), [_markdown(escape_markdown(_too_long(reply)))])
    return _fit(reply, _build_card, fallback)


# --- post (rich text) ------------------------------------------------------------------------


def _text(text: str, *, bold: bool = False) -> dict[str, Any]:
    element: dict[str, Any] = {"tag": "text", "text": text}
    if bold:
        element["style"] = ["bold"]
    return element


def _typed_hint(block: ActionsBlock, lang: str) -> str | None:
    commands = []
    for button in block.buttons:
        if button.action in TYPED_ACTIONS:
            if button.action == ACTION_TRACK:
                argument = button.value
            else:
                argument = button.value.partition("|")[0]
            ok = argument and not any(c.isspace() for c in argument)
            commands.append(f"{button.action} {argument}" if ok else button.action)
    if not commands:
        return None
    joined = " / ".join(dict.fromkeys(commands))
    if lang.startswith("zh"):
        return f"此处不支持按钮，请回复：{joined}"
    return f"Buttons are not available here; reply: {joined}"


def _build_post(reply: Reply, cut: _Cut, lang: str) -> dict[str, Any]:
    content: list[list[dict[str, Any]]] = []
    shown = _shown(reply, cut.keep)
    for block in reply.blocks:
        if isinstance(block, TextBlock):
            lines = [[_text(line)] for line in _clip(block.text, cut.cap).split("\n")]
            if block.mention is not None and lines:
                lines[0] = [*_post_mention(block.mention), *lines[0]]
            content += lines
        elif isinstance(block, ItemsBlock):
            items, dropped = next(shown)
            if items and block.title:
                content.append([_text(_inline(block.title), bold=True)])
            for item in items:
                prefix = _icons(item)
                url = http_url(item.url)
                title = _inline(item.title)
                line = [_text(prefix + " ")] if prefix else []
                line.append({"tag": "a", "text": title, "href": url} if url else _text(title))
                content.append(line)
                if item.note:
                    content.append([_text("    " + _inline(item.note))])
            if dropped:
                content.append([_text(_left_out(reply, dropped))])
        elif isinstance(block, ActionsBlock):
            hint = _typed_hint(block, lang)
            if hint:
                content.append([_text(hint)])
        elif isinstance(block, InputBlock):
            content.append([_text(f"{_inline(block.label)}: {block.typed}")])
        else:
            content += [[_text(_clip(line, cut.cap))] for line in block.lines]
    title = _clip(_inline(reply.header or ""), MAX_HEADER)
    return {lang: {"title": title, "content": content}}


def render_post(reply: Reply, lang: str = "zh_cn") -> dict[str, Any]:
    """The reply as ``post`` rich-text content (no buttons), never over CARD_LIMIT bytes."""
    title = _clip(_inline(reply.header or ""), MAX_HEADER)
    fallback = {lang: {"title": title, "content": [[_text(_too_long(reply))]]}}
    return _fit(reply, lambda r, cut: _build_post(r, cut, lang), fallback)


def render_text(reply: Reply) -> str:
    """The reply as plain text, for ``text`` messages and logs."""
    return render_plain(reply).rstrip("\n")


# --- checks and callbacks --------------------------------------------------------------------


def _walk(elements: object, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(elements, list):
        return
    for index, element in enumerate(elements):
        where = f"{path}[{index}]"
        if not isinstance(element, dict):
            yield where, {}
            continue
        yield where, element
        yield from _walk(element.get("elements"), f"{where}.elements")
        yield from _walk(element.get("columns"), f"{where}.columns")


def check_card(card: dict[str, Any]) -> list[str]:
    """Human-readable problems that would make Feishu reject or mis-handle the card ([] if none)."""
    if not isinstance(card, dict):
        return ["the card is not a JSON object"]
    problems: list[str] = []
    size = card_size(card)
    if size > CARD_LIMIT:
        problems.append(f"the card is {size} bytes, over the {CARD_LIMIT}-byte limit")
    if card.get("schema") != "2.0":
        problems.append(f'schema is {card.get("schema")!r}, not "2.0"')
    unknown = sorted(set(card) - TOP_LEVEL_KEYS)
    if unknown:
        problems.append(f"unknown top-level keys: {', '.join(map(str, unknown))}")
    config = card.get("config", {})
    if not isinstance(config, dict):
        problems.append("config is not an object")
    else:
        unknown = sorted(set(config) - CONFIG_KEYS)
        if unknown:
            problems.append(f"unknown config keys: {', '.join(map(str, unknown))}")
        if config.get("update_multi", True) is not True:
            problems.append("config.update_multi must be true in card JSON 2.0")
    header = card.get("header")
    if header is not None:
        title = header.get("title") if isinstance(header, dict) else None
        if not isinstance(title, dict) or not isinstance(title.get("content"), str):
            problems.append("header has no plain_text title")
    body = card.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("elements"), list):
        problems.append("body.elements is missing or not a list")
        return problems
    for where, element in _walk(body["elements"], "body.elements"):
        tag = element.get("tag")
        if not isinstance(tag, str):
            problems.append(f"{where} has no tag")
            continue
        allowed = ELEMENT_KEYS.get(tag)
        if allowed is not None:
            extra = sorted(set(element) - allowed)
            if extra:
                problems.append(f"{where} ({tag}) has unknown properties: {', '.join(extra)}")
        if tag == "button" and "form_action_type" not in element:
            behaviors = element.get("behaviors")
            values = [
                b.get("value")
                for b in behaviors or []
                if isinstance(b, dict) and b.get("type") == "callback"
            ]
            if not values or any(action_of(v) is None for v in values):
                problems.append(f"{where} (button) has no valid callback value")
    return problems + form_problems(body["elements"])


def action_of(value: object) -> tuple[str, str] | None:
    """``(action, value)`` from a ``card.action.trigger`` ``action.value``; None if malformed."""
    if not isinstance(value, dict):
        return None
    action, data = value.get("action"), value.get("value")
    if not isinstance(action, str) or not isinstance(data, str):
        return None
    if not action or len(action) > MAX_ACTION or len(data) > MAX_VALUE:
        return None
    return action, data
