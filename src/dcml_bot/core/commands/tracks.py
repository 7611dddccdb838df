"""The tracks group: ``tracks``, ``track <name…>`` and a direction picked in a picker."""

from __future__ import annotations

from dcml_bot.core.commands.table import Command, Group, Press
from dcml_bot.core.tracks import ACTION_TRACK, Tracks


def group(tracks: Tracks) -> Group:
    """The commands and buttons of directions."""
    return Group(
        "tracks",
        commands=(
            Command("tracks", tracks.list, ("方向", "directions")),
            Command("track", tracks.choose, ("选择方向", "direction"), changes=True),
        ),
        presses=(Press((ACTION_TRACK,), tracks.press),),
    )
