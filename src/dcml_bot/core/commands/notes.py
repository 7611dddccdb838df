"""The notes group (reading together): ``share``, ``who``, ``note``, ``notes`` and the note box
under a paper the member has read."""

from __future__ import annotations

from dcml_bot.core.builders import ACTION_NOTE
from dcml_bot.core.commands.table import Command, Form, Group
from dcml_bot.core.notes import Notes
from dcml_bot.store.reading_together import NOTE_MAX


def group(notes: Notes) -> Group:
    """The commands and the text box of reading together."""
    return Group(
        "notes",
        commands=(
            Command("share", notes.share, ("分享",), changes=True),
            Command("who", notes.who, ("谁读过",)),
            # A note is a paragraph: the line may be longer than other commands'.
            Command("note", notes.note, ("笔记",), max_input=4 * NOTE_MAX, changes=True),
            Command("notes", notes.notes, ("查看笔记",)),
        ),
        forms=(Form((ACTION_NOTE,), notes.ask, notes.submit),),
    )
