"""The admin group: ``lab``, ``remind``, ``reload`` and ``enroll`` (admins only)."""

from __future__ import annotations

from dcml_bot.core.admin import Admin
from dcml_bot.core.commands.table import Command, Group


def group(admin: Admin) -> Group:
    """The lab admins' commands."""
    return Group(
        "admin",
        commands=(
            Command("lab", admin.lab, ("实验室",), admin=True),
            Command("remind", admin.remind, ("推送",), admin=True, changes=True),
            Command("reload", admin.reload, ("重新加载",), admin=True, changes=True),
            Command("enroll", admin.enroll, ("enrol", "加入"), admin=True, changes=True),
        ),
    )
