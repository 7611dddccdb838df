"""The reading group: a member's plan (``next``, ``done``, ``skip``, ``progress``), the weekly
switch (``start``, ``stop``), ``lang``, and done / skip / later on a paper message."""

from __future__ import annotations

from dcml_bot.core.builders import ACTIONS
from dcml_bot.core.commands.table import Command, Group, Press
from dcml_bot.core.reading import Reading


def group(reading: Reading) -> Group:
    """The commands and buttons of a member's own reading."""
    return Group(
        "reading",
        commands=(
            Command("next", reading.next, ("下一篇",)),
            Command("done", reading.done, ("已读",), changes=True),
            Command("skip", reading.skip, ("跳过",), changes=True),
            Command("progress", reading.progress, ("进度",)),
            Command("start", reading.start, ("开始",), changes=True),
            Command("stop", reading.stop, ("停止",), changes=True),
            Command("lang", reading.lang, ("language", "语言"), changes=True),
        ),
        presses=(Press(ACTIONS, reading.press),),
    )
