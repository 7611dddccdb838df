"""The browse group: ``topics``; any other words are a catalog query (the table's fallback)."""

from __future__ import annotations

from dcml_bot.core.browse import Browse
from dcml_bot.core.commands.table import Command, Group


def group(browse: Browse) -> Group:
    """The commands of browsing the guide."""
    return Group("browse", commands=(Command("topics", browse.topics, ("主题",)),))
