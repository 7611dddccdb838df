"""A reply as a real platform would receive it: the local lab shows one per platform."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dcml_bot.core.reply import Reply


@dataclass(frozen=True)
class Rendering:
    """One platform's payload for a reply, pretty-printed, with that platform's limit checks."""

    platform: str  # names the payload's CSS class in the lab page: ``slack-json``
    summary: str  # "As Slack: 3 of 50 blocks, …"
    label: str  # what the payload is: "Block Kit (chat.postMessage):"
    payload: str
    problems: list[str]


Previewer = Callable[[Reply], Rendering]
