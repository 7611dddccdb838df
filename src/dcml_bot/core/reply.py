"""The neutral reply model every platform renders, plus its plain-text rendering."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from dcml_bot.catalog import Entry


class ItemView(BaseModel):
    """One catalog entry as shown in a reply."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    url: str | None = None
    level: str | None = None
    level_icon: str | None = None
    kind_icons: tuple[str, ...] = ()
    topic: str | None = None
    note: str | None = None

    @classmethod
    def of(cls, entry: Entry, *, with_note: bool = False) -> ItemView:
        """The view of a catalog entry."""
        return cls(
            id=entry.id,
            title=f"({entry.acronym}) {entry.title}" if entry.acronym else entry.title,
            url=entry.url,
            level=entry.level.value if entry.level else None,
            level_icon=entry.level_icon,
            kind_icons=entry.icons,
            topic=entry.topic,
            note=entry.notes[0] if with_note and entry.notes else None,
        )


class Button(BaseModel):
    """A button: the platform sends ``action`` and ``value`` back when pressed."""

    model_config = ConfigDict(frozen=True)

    label: str
    action: str
    value: str
    style: Literal["primary", "danger"] | None = None


class Mention(BaseModel):
    """A member named with a mention: a ping where the platform has one, else their name."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    name: str


class TextBlock(BaseModel):
    """A paragraph of text (may contain user input: renderers must escape it)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["text"] = "text"
    text: str
    # The text follows a mention of this member (only when the lab asks for pings).
    mention: Mention | None = None


class ItemsBlock(BaseModel):
    """A titled list of catalog items, usually one topic."""

    model_config = ConfigDict(frozen=True)

    type: Literal["items"] = "items"
    title: str | None = None
    items: tuple[ItemView, ...]


class ActionsBlock(BaseModel):
    """A row of buttons."""

    model_config = ConfigDict(frozen=True)

    type: Literal["actions"] = "actions"
    buttons: tuple[Button, ...]


class ContextBlock(BaseModel):
    """Small print: hints, counts, footers."""

    model_config = ConfigDict(frozen=True)

    type: Literal["context"] = "context"
    lines: tuple[str, ...]


class InputBlock(BaseModel):
    """A request for the member's own words (a note on a paper): a text box, or a button that
    opens one; what is typed comes back with ``action`` and ``value`` (``Commands.submit``)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["input"] = "input"
    action: str
    value: str
    label: str  # the button that opens the box
    prompt: str  # the box's own label
    title: str  # a dialog's title (Slack modals: 24 characters)
    subject: str  # what the text is about (a paper's title)
    placeholder: str
    submit: str
    cancel: str
    max_length: int
    typed: str  # the command that does the same, for places without text boxes


Block = Annotated[
    TextBlock | ItemsBlock | ActionsBlock | ContextBlock | InputBlock,
    Field(discriminator="type"),
]


class Reply(BaseModel):
    """What the bot says: a header and blocks, rendered by each platform its own way."""

    model_config = ConfigDict(frozen=True)

    header: str | None = None
    blocks: tuple[Block, ...] = ()
    private: bool = True
    # The answer to a button replaces the message the button was on (a paper's done / skip /
    # later); False: it is said beside it (choosing a direction keeps the welcome as it was).
    replaces: bool = True
    # The reader's language: the renderers' own lines (what a cut-short reply left out) follow it.
    lang: str = "en"

    def in_language(self, lang: str) -> Reply:
        """The same reply, marked as written in ``lang``."""
        return self if self.lang == lang else self.model_copy(update={"lang": lang})

    @property
    def items(self) -> tuple[ItemView, ...]:
        """Every item in the reply, in order."""
        return tuple(item for b in self.blocks if isinstance(b, ItemsBlock) for item in b.items)

    @property
    def inputs(self) -> tuple[InputBlock, ...]:
        """Every text box the reply asks to be filled in, in order."""
        return tuple(b for b in self.blocks if isinstance(b, InputBlock))

    @property
    def buttons(self) -> tuple[Button, ...]:
        """Every button in the reply, in order."""
        return tuple(btn for b in self.blocks if isinstance(b, ActionsBlock) for btn in b.buttons)

    def summary(self) -> str:
        """A one-line fallback text (notifications, previews)."""
        if self.header:
            return self.header
        for block in self.blocks:
            if isinstance(block, TextBlock):
                return block.text.split("\n", 1)[0]
        return ""


def item_line(item: ItemView) -> str:
    """``⚡ 📄+🔧 Title — url`` for plain text."""
    icons = " ".join(p for p in (item.level_icon, "+".join(item.kind_icons)) if p)
    text = f"{icons} {item.title}".strip()
    return f"{text} — {item.url}" if item.url else text


def render_plain(reply: Reply) -> str:
    """Plain-text rendering for the console and logs; buttons are numbered for ``:click N``."""
    lines: list[str] = []
    if reply.header:
        lines += [reply.header, "=" * min(len(reply.header) * 2, 60)]
    number = 0
    for block in reply.blocks:
        if isinstance(block, TextBlock):
            lines.append(f"@{block.mention.name} {block.text}" if block.mention else block.text)
        elif isinstance(block, ItemsBlock):
            if block.title:
                lines.append(f"[{block.title}]")
            for item in block.items:
                lines.append(f"  {item_line(item)}")
                if item.note:
                    lines.append(f"      {item.note}")
        elif isinstance(block, InputBlock):
            lines.append(f"  {block.label}: {block.typed}")
        elif isinstance(block, ActionsBlock):
            buttons = []
            for button in block.buttons:
                number += 1
                buttons.append(f"[{number}] {button.label}")
            lines.append("  ".join(buttons))
        else:
            lines += [f"  {line}" for line in block.lines]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
