"""Builders for the replies the core sends: lists, papers with buttons, welcome, progress."""

from __future__ import annotations

from collections.abc import Sequence

from dcml_bot.catalog import Catalog, Entry, entry_ref
from dcml_bot.core.i18n import text
from dcml_bot.core.reply import (
    ActionsBlock,
    Block,
    Button,
    ContextBlock,
    InputBlock,
    ItemsBlock,
    ItemView,
    Reply,
    TextBlock,
)
from dcml_bot.store.reading_together import NOTE_MAX

# Keeps any reply renderable on every platform (Slack: 50 blocks; Feishu: 30 KB cards).
MAX_ITEMS = 40
MAX_GROUPS = 12

ACTION_DONE, ACTION_SKIP, ACTION_LATER = "done", "skip", "later"
ACTIONS = (ACTION_DONE, ACTION_SKIP, ACTION_LATER)
ACTION_NOTE = "note"


def level_name(lang: str, entry: Entry) -> str:
    """The localised level of an entry."""
    return text(lang, f"level.{entry.level.value if entry.level else 'unclassified'}")


def grouped(entries: Sequence[Entry], lang: str) -> list[Block]:
    """Items grouped by topic in guide order, capped so that every platform can render them."""
    blocks: list[Block] = []
    groups: dict[str, list[Entry]] = {}
    for entry in entries[:MAX_ITEMS]:
        groups.setdefault(entry.topic or "", []).append(entry)
    for index, (topic, members) in enumerate(groups.items()):
        if index >= MAX_GROUPS:
            rest = sum(len(m) for m in list(groups.values())[MAX_GROUPS:])
            blocks.append(ContextBlock(lines=(text(lang, "more", count=rest),)))
            break
        views = tuple(ItemView.of(e) for e in members)
        blocks.append(ItemsBlock(title=topic or None, items=views))
    return blocks


def paper_buttons(lang: str, entry: Entry, week: str) -> ActionsBlock:
    """Done / skip / later buttons; the value names the item (short) and the week offered."""
    value = f"{entry_ref(entry.id)}|{week}"
    return ActionsBlock(
        buttons=(
            Button(
                label=text(lang, "button.done"), action=ACTION_DONE, value=value, style="primary"
            ),
            Button(label=text(lang, "button.skip"), action=ACTION_SKIP, value=value),
            Button(label=text(lang, "button.later"), action=ACTION_LATER, value=value),
        )
    )


def paper_blocks(
    lang: str, entry: Entry, week: str, *, buttons: bool = True, ask: str | None = None
) -> list[Block]:
    """One paper, where it comes from, who to ask about it, and (optionally) its buttons."""
    lines = [text(lang, "next.topic", topic=entry.topic or "—", level=level_name(lang, entry))]
    if ask:
        lines.append(ask)
    blocks: list[Block] = [
        ItemsBlock(items=(ItemView.of(entry, with_note=True),)),
        ContextBlock(lines=tuple(lines)),
    ]
    if buttons:
        blocks.append(paper_buttons(lang, entry, week))
    return blocks


def weekly_reply(
    lang: str, entry: Entry, week: str, read: int, total: int, *, ask: str | None = None
) -> Reply:
    """The weekly DM (``ask``: the line naming lab members who read the paper)."""
    return Reply(
        header=text(lang, "weekly.header", week=week),
        blocks=(
            TextBlock(text=text(lang, "weekly.body", done=read, total=total)),
            *paper_blocks(lang, entry, week, ask=ask),
        ),
        lang=lang,
    )


def note_input(lang: str, entry: Entry) -> InputBlock:
    """The box (or the button opening one) for a note on a paper the member has read."""
    ref = entry_ref(entry.id)
    return InputBlock(
        action=ACTION_NOTE,
        value=ref,
        label=text(lang, "button.note"),
        prompt=text(lang, "note.label"),
        title=text(lang, "note.title"),
        subject=entry.title,
        placeholder=text(lang, "note.placeholder"),
        submit=text(lang, "note.submit"),
        cancel=text(lang, "note.cancel"),
        max_length=NOTE_MAX,
        typed=text(lang, "note.typed", ref=ref),
    )


def guide_name(catalog: Catalog) -> str:
    """The guide's title for sentences ("the reading list" when it has none)."""
    return catalog.title or "the reading list"


def answered_reply(
    lang: str, key: str, entry: Entry, after: Entry | None, *, note: bool = False
) -> Reply:
    """What a pressed button turns the paper message into: the choice, what comes next, and
    (``note``: the paper is read) a box for a note on it."""
    blocks: list[Block] = [
        ItemsBlock(items=(ItemView.of(entry),)),
        TextBlock(text=text(lang, key, title=entry.title)),
    ]
    if after is not None:
        blocks.append(ContextBlock(lines=(text(lang, "then.next", title=after.title),)))
    if note:
        blocks.append(note_input(lang, entry))
    return Reply(blocks=tuple(blocks))


def simple(message: str, *, header: str | None = None) -> Reply:
    """A reply of one text block."""
    return Reply(header=header, blocks=(TextBlock(text=message),))
