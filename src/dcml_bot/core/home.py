"""A member's home view: their progress and next paper, plus the lab table for admins."""

from __future__ import annotations

from dcml_bot.core.commands import Commands
from dcml_bot.core.messages import Block, Reply, TextBlock
from dcml_bot.store import MemberRecord


def home_reply(commands: Commands, member: MemberRecord) -> Reply:
    """What a member sees on the bot's home tab (Slack App Home, the local web page)."""
    progress = commands.handle(member, "progress")
    blocks: list[Block] = list(progress.blocks)
    if commands.caller(member).is_admin:
        lab = commands.handle(member, "lab")
        if lab.header:
            blocks.append(TextBlock(text=lab.header))
        blocks += lab.blocks
    return Reply(header=progress.header, blocks=tuple(blocks))
