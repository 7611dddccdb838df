"""The one list of command groups: every command, button press and text box the bot answers."""

from __future__ import annotations

from dcml_bot.core.admin import Admin
from dcml_bot.core.attention import Attention
from dcml_bot.core.browse import Browse
from dcml_bot.core.commands import admin, browse, reading, review, tracks
from dcml_bot.core.commands import notes as together
from dcml_bot.core.commands.table import Commands, Group, Services
from dcml_bot.core.digest import DigestService
from dcml_bot.core.notes import Notes
from dcml_bot.core.reading import Reading
from dcml_bot.core.review import Review
from dcml_bot.core.tracks import Tracks


def chat_commands(
    services: Services,
    admins: set[str],
    *,
    notes: Notes,
    digest: DigestService,
    attention: Attention,
) -> Commands:
    """The whole table, in help order: browsing, the member's reading, directions, reading
    together (who read what, notes), the admins' commands and the weekly review. The services
    built by the composition root come in as they are: the notes (their ``on_added`` hook set),
    the digest (its posting plan) and attention."""
    finder = Browse(services)
    groups: list[Group] = [
        browse.group(finder),
        reading.group(Reading(services)),
        tracks.group(Tracks(services)),
        together.group(notes),
        admin.group(Admin(services)),
        review.group(Review(services, digest, attention)),
    ]
    return Commands(services, admins=admins, groups=groups, fallback=finder.query)
