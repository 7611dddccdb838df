"""The review group: the admins' weekly review, ``digest`` (``digest pick <item>``) and
``attention``."""

from __future__ import annotations

from dcml_bot.core.commands.table import Command, Group
from dcml_bot.core.review import Review


def group(review: Review) -> Group:
    """The weekly review's commands (admins only)."""
    return Group(
        "review",
        commands=(
            Command("digest", review.digest, ("周报",), admin=True, changes=True),
            Command("attention", review.attention, ("关注",), admin=True),
        ),
    )
