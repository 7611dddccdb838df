"""Slack Block Kit rendering of neutral replies, and limit checks built on slack_sdk's models."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block as SlackBlock
from slack_sdk.models.views import View

from dcml_bot.core import i18n
from dcml_bot.core.reply import (
    ActionsBlock,
    Button,
    ContextBlock,
    InputBlock,
    ItemsBlock,
    ItemView,
    Reply,
    TextBlock,
)

Payload = dict[str, Any]

ACTION_PREFIX = "dcml:"
# A button that opens a text box (a modal): ``dcml-input:<action>``, the value its subject.
INPUT_PREFIX = "dcml-input:"
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
# A response_url accepts five posts; a longer reply is cut, never sent half-way.
MAX_MESSAGES = 5
MAX_TEXT = 3000
MAX_HEADER = 150
MAX_BUTTON_TEXT = 75
MAX_ACTIONS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_MESSAGE_TEXT = 40_000
MAX_VIEW_BYTES = 250_000
# Room left in a Home view for the wrapper and the "more items" line.
_VIEW_BUDGET = MAX_VIEW_BYTES - 10_000
MAX_ICONS = 100
FALLBACK = "dcml-bot"
ELLIPSIS = "…"
# "|" separates url from label and Slack has no escape for it: labels get a look-alike.
_PIPE = "∣"
_LINK_SCHEMES = ("http://", "https://", "mailto:")
_SPACE = re.compile(r"\s")
# A numbered action_id's tail: ``track:2`` is the second ``track`` button of a block.
_REPEAT = re.compile(r"(.+):([2-9]|[1-9][0-9]+)")
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")


def escape(text: str) -> str:
    """Escape Slack's control characters ``&``, ``<`` and ``>`` (and nothing else)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _label(text: str) -> str:
    """Text that is safe inside ``<url|label>``."""
    return escape(_one_line(text)).replace("|", _PIPE)


def _link_url(url: str) -> str | None:
    """A url that is safe inside ``<url|label>``, or None if it should not become a link."""
    url = url.strip()
    if not url.lower().startswith(_LINK_SCHEMES):
        return None
    url = _SPACE.sub(lambda m: quote(m.group()), url)
    return escape(url).replace("|", "%7C")


def _safe_cut(text: str, limit: int) -> int:
    """The largest index ≤ limit that splits neither an ``&…;`` escape nor a ``<…>`` link."""
    cut = limit
    amp = text.rfind("&", 0, cut)
    if amp != -1 and text.find(";", amp, cut) == -1:
        cut = amp
    opening = text.rfind("<", 0, cut)
    if opening != -1 and text.find(">", opening, cut) == -1:
        cut = opening
    return cut


def _clip(text: str, limit: int) -> str:
    """Escaped text shortened to ``limit`` characters with an ellipsis, cut at a safe place."""
    if len(text) <= limit:
        return text
    if limit < 1:
        return ""
    return text[: _safe_cut(text, limit - 1)].rstrip() + ELLIPSIS


def _split_line(line: str, limit: int) -> list[str]:
    """An over-long escaped line as pieces of ≤ limit characters, preferably at spaces."""
    parts: list[str] = []
    while len(line) > limit:
        space = line.rfind(" ", limit // 2, limit + 1)
        cut = _safe_cut(line, space if space > 0 else limit) or limit
        parts.append(line[:cut].rstrip())
        line = line[cut:].lstrip()
    parts.append(line)
    return [p for p in parts if p]


def _pack(entries: Iterable[tuple[str, int]], limit: int) -> list[tuple[str, int]]:
    """Join (line, item count) entries into as few texts of ≤ limit characters as possible."""
    chunks: list[tuple[str, int]] = []
    text, count = "", 0
    for line, items in entries:
        if text and len(text) + 1 + len(line) > limit:
            chunks.append((text, count))
            text, count = "", 0
        text = f"{text}\n{line}" if text else line
        count += items
    if text:
        chunks.append((text, count))
    return chunks


def _plain(text: str) -> Payload:
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str) -> Payload:
    # verbatim: Slack must not turn user words like "@here" or "#general" into mentions.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> Payload:
    return {"type": "section", "text": _mrkdwn(text)}


def _context(lines: Sequence[str]) -> Payload:
    return {"type": "context", "elements": [_mrkdwn(line) for line in lines]}


def _item_line(prefix: str, title: str, url: str | None) -> str:
    """``icons <url|title>`` in ≤ 3000 chars: the title is shortened, else the link dropped."""

    def joined(body: str) -> str:
        return f"{prefix} {body}" if prefix else body

    link = f"<{url}|{title}>" if title else f"<{url}>"
    line = joined(title if url is None else link)
    if len(line) <= MAX_TEXT:
        return line
    room = MAX_TEXT - len(joined(""))
    # Keep the link only if a readable part of the title still fits beside it.
    if url is not None and title and len(url) + 3 + 40 <= room:
        return joined(f"<{url}|{_clip(title, room - len(url) - 3)}>")
    return joined(_clip(title or url or "", room))


def item_text(item: ItemView) -> str:
    """One item as mrkdwn: ``⚡ 📄+🔧 <url|Title>``, then its note in italics (≤ 3000 chars)."""
    icons = " ".join(p for p in (item.level_icon, "+".join(item.kind_icons)) if p)
    prefix = _clip(escape(_one_line(icons)), MAX_ICONS)
    title = _label(item.title)
    url = _link_url(item.url) if item.url else None
    if item.url and url is None:
        title = f"{title} — {escape(_one_line(item.url))}"
    line = _item_line(prefix, title, url) or "—"
    note = escape(_one_line(item.note or ""))
    room = MAX_TEXT - len(line) - 3
    if note and room >= 10:
        line += f"\n_{_clip(note, room)}_"
    return line


def action_id(action: str, repeat: int = 1) -> str:
    """``dcml:<action>``; the n-th button (n ≥ 2) of one action in a block: ``dcml:<action>:<n>``.

    Slack rejects a block whose action_ids repeat, so a picker (one action, a value per button)
    numbers its buttons; ``action_name`` reads the core's action back.
    """
    base = f"{ACTION_PREFIX}{action}"
    return base if repeat <= 1 else f"{base}:{repeat}"


def action_name(slack_action_id: str) -> str:
    """The core's action of an action_id made by ``action_id`` (prefix and number removed)."""
    name = slack_action_id.removeprefix(ACTION_PREFIX)
    numbered = _REPEAT.fullmatch(name)
    return numbered.group(1) if numbered else name


def button_element(button: Button, repeat: int = 1) -> Payload:
    """A Block Kit button: action_id from ``action_id`` (numbered if repeated), exact value."""
    label = escape(_one_line(button.label)) or escape(button.action)
    element: Payload = {
        "type": "button",
        "action_id": action_id(button.action, repeat),
        "text": _plain(_clip(label, MAX_BUTTON_TEXT)),
    }
    if button.value:
        element["value"] = button.value
    if button.style:
        element["style"] = button.style
    return element


@dataclass(frozen=True)
class _Piece:
    """One Slack block, with how many reply items it shows."""

    block: Payload
    items: int = 0
    lead: bool = False


def _mention(block: TextBlock) -> str:
    """``<@U…> `` for a block that starts with a mention (a user id Slack could have issued),
    else the escaped name; nothing without a mention."""
    if block.mention is None:
        return ""
    if _USER_ID.fullmatch(block.mention.user_id):
        return f"<@{block.mention.user_id}> "
    return f"*{escape(_one_line(block.mention.name))}* "


def _text_group(block: TextBlock) -> list[_Piece]:
    entries: list[tuple[str, int]] = []
    for line in (_mention(block) + escape(block.text)).split("\n"):
        entries += [(part, 0) for part in _split_line(line, MAX_TEXT)] if line else [("", 0)]
    return [_Piece(_section(text)) for text, _ in _pack(entries, MAX_TEXT) if text.strip()]


def _items_group(block: ItemsBlock) -> list[_Piece]:
    entries: list[tuple[str, int]] = []
    title = escape(_one_line(block.title or ""))
    if title:
        entries.append((f"*{_clip(title, MAX_TEXT - 2)}*", 0))
    entries += [(item_text(item), 1) for item in block.items]
    return [_Piece(_section(text), count) for text, count in _pack(entries, MAX_TEXT)]


def _actions_group(block: ActionsBlock) -> list[_Piece]:
    """Buttons in rows of ≤ 25; a repeated action is numbered, so no row repeats an action_id."""
    rows: list[list[Payload]] = []
    seen: Counter[str] = Counter()
    for index, button in enumerate(block.buttons):
        if index % MAX_ACTIONS == 0:
            rows.append([])
            seen.clear()
        seen[button.action] += 1
        rows[-1].append(button_element(button, seen[button.action]))
    return [_Piece({"type": "actions", "elements": row}) for row in rows]


def _input_group(block: InputBlock) -> list[_Piece]:
    """A text box is a modal in Slack: here, the button that opens it."""
    label = escape(_one_line(block.label)) or escape(block.action)
    button: Payload = {
        "type": "button",
        "action_id": INPUT_PREFIX + block.action,
        "text": _plain(_clip(label, MAX_BUTTON_TEXT)),
        "value": block.value,
    }
    return [_Piece({"type": "actions", "elements": [button]})]


def _context_group(block: ContextBlock) -> list[_Piece]:
    lines = [_clip(escape(line), MAX_TEXT) for line in block.lines if line.strip()]
    return [
        _Piece(_context(lines[start : start + MAX_CONTEXT_ELEMENTS]))
        for start in range(0, len(lines), MAX_CONTEXT_ELEMENTS)
    ]


def _groups(reply: Reply) -> list[list[_Piece]]:
    """The reply as groups of blocks that belong together (one group per neutral block)."""
    groups: list[list[_Piece]] = []
    header = _clip(escape(_one_line(reply.header or "")), MAX_HEADER)
    if header:
        groups.append([_Piece({"type": "header", "text": _plain(header)}, lead=True)])
    for block in reply.blocks:
        if isinstance(block, TextBlock):
            group = _text_group(block)
        elif isinstance(block, ItemsBlock):
            group = _items_group(block)
        elif isinstance(block, ActionsBlock):
            group = _actions_group(block)
        elif isinstance(block, InputBlock):
            group = _input_group(block)
        else:
            group = _context_group(block)
        if group:
            groups.append(group)
    return groups


def _paginate(groups: Sequence[Sequence[_Piece]], limit: int) -> list[list[_Piece]]:
    """Pages of ≤ limit blocks; a group that fits on a fresh page is moved there, not split."""
    pages: list[list[_Piece]] = [[]]
    for group in groups:
        page = pages[-1]
        started = any(not piece.lead for piece in page)
        if started and len(page) + len(group) > limit and len(group) <= limit:
            pages.append([])
        for piece in group:
            if len(pages[-1]) >= limit:
                pages.append([])
            pages[-1].append(piece)
    return pages


def _notice(left: int, lang: str) -> _Piece:
    """What a cut-short reply left out, in the reader's language."""
    if left > 0:
        said = i18n.text(lang, "cut.item" if left == 1 else "cut.items", count=left)
        line = escape(said + i18n.text(lang, "cut.example"))
    else:
        line = escape(i18n.text(lang, "cut.rest"))
    return _Piece(_context([line]))


def fallback_text(reply: Reply) -> str:
    """The notification text of a reply: its escaped summary, never empty."""
    return _clip(escape(reply.summary().strip()), MAX_TEXT) or FALLBACK


def render_message(reply: Reply) -> list[Payload]:
    """The reply as 1–5 Slack message payloads ``{"text", "blocks"}`` within Block Kit limits."""
    pages = _paginate(_groups(reply), MAX_MESSAGE_BLOCKS)
    if len(pages) > MAX_MESSAGES:
        rest = [piece for page in pages[MAX_MESSAGES - 1 :] for piece in page]
        pages = [*pages[: MAX_MESSAGES - 1], rest[: MAX_MESSAGE_BLOCKS - 1]]
        shown = sum(piece.items for page in pages for piece in page)
        pages[-1].append(_notice(len(reply.items) - shown, reply.lang))
    text = fallback_text(reply)
    return [
        {"text": text, "blocks": [piece.block for piece in page] or [_section(text)]}
        for page in pages
    ]


def render_home(reply: Reply) -> Payload:
    """The reply as an App Home view ``{"type": "home", "blocks"}`` (≤ 100 blocks, ≤ 250 KB)."""
    pieces = [piece for group in _groups(reply) for piece in group]
    if len(pieces) > MAX_VIEW_BLOCKS or sum(json_size(p.block) for p in pieces) > _VIEW_BUDGET:
        kept: list[_Piece] = []
        size = 0
        for piece in pieces[: MAX_VIEW_BLOCKS - 1]:
            size += json_size(piece.block)
            if size > _VIEW_BUDGET:
                break
            kept.append(piece)
        left = len(reply.items) - sum(piece.items for piece in kept)
        pieces = [*kept, _notice(left, reply.lang)]
    blocks = [piece.block for piece in pieces] or [_section(fallback_text(reply))]
    return {"type": "home", "blocks": blocks}


def json_size(obj: object) -> int:
    """Bytes of the compact UTF-8 JSON of a payload, block or view."""
    return len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _model_problems(obj: JsonObject, where: str) -> list[str]:
    """slack_sdk's validators for an object and everything inside it."""
    found: list[str] = []
    try:
        obj.validate_json()
    except SlackObjectFormationError as exc:
        found.append(f"{where}: {exc}")
    for name in sorted(obj.attributes):
        value = getattr(obj, name, None)
        if isinstance(value, list | tuple):
            for index, child in enumerate(value):
                if isinstance(child, JsonObject):
                    found += _model_problems(child, f"{where}.{name}[{index}]")
        elif isinstance(value, JsonObject):
            found += _model_problems(value, f"{where}.{name}")
    return found


def _text_objects(obj: object) -> Iterable[Payload]:
    if isinstance(obj, dict):
        if obj.get("type") in ("plain_text", "mrkdwn"):
            yield obj
        for value in obj.values():
            yield from _text_objects(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _text_objects(value)


def _raw_problems(block: Payload, where: str) -> list[str]:
    """Limits slack_sdk does not check."""
    found: list[str] = []
    for text in _text_objects(block):
        value = text.get("text")
        if not isinstance(value, str) or not value.strip():
            found.append(f"{where}: empty {text.get('type')} text")
    kind = block.get("type")
    elements = block.get("elements")
    if kind == "context" and isinstance(elements, list):
        for index, element in enumerate(elements):
            value = element.get("text") if isinstance(element, dict) else None
            if isinstance(value, str) and len(value) > MAX_TEXT:
                found.append(
                    f"{where}.elements[{index}]: text cannot exceed {MAX_TEXT} characters"
                    f" (has {len(value)})"
                )
    if kind == "actions" and isinstance(elements, list):
        ids = [e.get("action_id") for e in elements if isinstance(e, dict) and "action_id" in e]
        repeated = sorted({str(i) for i in ids if ids.count(i) > 1})
        if repeated:
            found.append(f"{where}: action_id repeated in one block: {', '.join(repeated)}")
    if kind == "header":
        header = block.get("text")
        if isinstance(header, dict) and header.get("type") != "plain_text":
            found.append(f"{where}: header text must be plain_text")
    return found


def _block_problems(blocks: object) -> list[str]:
    if not isinstance(blocks, list):
        return ["blocks must be a list"]
    found: list[str] = []
    for index, raw in enumerate(blocks):
        where = f"block {index}"
        if not isinstance(raw, dict):
            found.append(f"{where}: not an object")
            continue
        where = f"block {index} ({raw.get('type')})"
        try:
            parsed = SlackBlock.parse_all([copy.deepcopy(raw)])[0]
        except Exception as exc:  # slack_sdk raises TypeError, ValueError, … on malformed blocks
            found.append(f"{where}: cannot be parsed: {exc}")
            continue
        if parsed is None:
            found.append(f"{where}: unknown block type")
            continue
        found += _model_problems(parsed, where)
        found += _raw_problems(raw, where)
    return found


def check_message(payload: Payload) -> list[str]:
    """Block Kit limit violations of a message payload (empty when Slack should accept it)."""
    found: list[str] = []
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        found.append("text: the fallback text is missing or empty")
    elif len(text) > MAX_MESSAGE_TEXT:
        found.append(f"text: Slack truncates text above {MAX_MESSAGE_TEXT} characters")
    blocks = payload.get("blocks", [])
    if isinstance(blocks, list) and len(blocks) > MAX_MESSAGE_BLOCKS:
        found.append(f"blocks: {len(blocks)} blocks, a message allows {MAX_MESSAGE_BLOCKS}")
    return found + _block_problems(blocks)


def check_view(view: Payload) -> list[str]:
    """Limit violations of a Home / modal view (empty when Slack should accept it)."""
    found: list[str] = []
    blocks = view.get("blocks")
    count = len(blocks) if isinstance(blocks, list) else 0
    if not 0 < count <= MAX_VIEW_BLOCKS:
        found.append(f"blocks: {count} blocks, a view needs 1 to {MAX_VIEW_BLOCKS}")
    size = json_size(view)
    if size > MAX_VIEW_BYTES:
        found.append(f"size: {size} bytes of JSON, a view allows {MAX_VIEW_BYTES}")
    # The blocks are checked one by one below; a stand-in lets View check only its own fields.
    rest = {**view, "blocks": [{"type": "divider"}]}
    try:
        found += _model_problems(View(**copy.deepcopy(rest)), "view")
    except Exception as exc:  # malformed view fields make the constructor raise
        found.append(f"view: cannot be parsed: {exc}")
    return found + _block_problems(blocks if blocks is not None else [])
