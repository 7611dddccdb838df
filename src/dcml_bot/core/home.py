"""A member's home view: their progress and next paper, plus the lab table (with progress bars)
and who needs attention, for admins."""

from __future__ import annotations

from dcml_bot.core.commands.table import Commands
from dcml_bot.core.i18n import text
from dcml_bot.core.reply import Block, Reply, TextBlock
from dcml_bot.core.tracks import picker
from dcml_bot.store import MemberRecord


def home_reply(commands: Commands, member: MemberRecord) -> Reply:
    """What a member sees on the bot's home tab (Slack App Home, the local web page)."""
    who = commands.caller(member)
    progress = commands.handle(member, "progress")
    blocks: list[Block] = list(progress.blocks)
    catalog = commands.services.catalog
    if len(catalog.tracks) > 1:
        # A member switches directions from home too (Slack App Home, the local lab).
        lang = who.language
        mine = ", ".join(member.tracks or ()) or text(lang, "lab.unchosen")
        blocks += [TextBlock(text=text(lang, "home.tracks", names=mine)), picker(lang, catalog)]
    if who.is_admin:
        for name in ("lab", "attention"):  # everyone's bars, then who needs attention
            if name not in commands.table:
                continue
            view = commands.handle(member, name)
            if view.header:
                blocks.append(TextBlock(text=view.header))
            blocks += view.blocks
    return Reply(header=progress.header, blocks=tuple(blocks), lang=who.language)
