"""Directions (tracks): listing them, a member choosing theirs, and the picker buttons."""

from __future__ import annotations

from dcml_bot.catalog import Catalog, Level
from dcml_bot.catalog.models import COMMON
from dcml_bot.catalog.query import fold, track_of
from dcml_bot.core.builders import guide_name, simple
from dcml_bot.core.commands.table import Caller, Services
from dcml_bot.core.i18n import text
from dcml_bot.core.plan import in_scope
from dcml_bot.core.reply import ActionsBlock, Block, Button, ContextBlock, Reply, TextBlock
from dcml_bot.store import MemberRecord

ACTION_TRACK = "track"
COMMON_WORDS = {COMMON, "none", "公共", "无"}


def track_sizes(catalog: Catalog, name: str) -> tuple[int, int]:
    """Items in a track, and how many of them are essential there (counted once per catalog:
    every welcome, home tab and ``tracks`` answer shows them)."""

    def count() -> tuple[int, int]:
        entries = [e for e in catalog.entries if in_scope(e, {name})]
        essential = sum(1 for e in entries if e.level_in({name}) is Level.ESSENTIAL)
        return len(entries), essential

    return catalog.memo(f"tracks.size:{name}", count)


def picker(lang: str, catalog: Catalog) -> ActionsBlock:
    """One button per direction (title and size); pressing one makes it the member's."""
    buttons = []
    for track in catalog.tracks:
        if track.name == COMMON:
            continue
        count, _ = track_sizes(catalog, track.name)
        label = text(lang, "track.button", title=track.title, count=count)
        buttons.append(Button(label=label, action=ACTION_TRACK, value=track.name))
    return ActionsBlock(buttons=tuple(buttons))


def resolve(catalog: Catalog, words: list[str]) -> tuple[list[str], str | None]:
    """Track names for what a member typed; the first word that names none, if any."""
    names: list[str] = []
    for word in words:
        if fold(word) in COMMON_WORDS:
            continue
        name = track_of(word, catalog)
        if name is None or name == COMMON:
            return [], word
        names.append(name)
    return list(dict.fromkeys(names)), None


class Tracks:
    """``tracks``, ``track <name…>`` and the picker's buttons."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def list(self, who: Caller, rest: str) -> Reply:
        """``tracks``: every direction with its size, the member's marked; buttons to pick."""
        lang, member = who.language, who.member
        catalog = self.services.catalog
        if len(catalog.tracks) <= 1:
            return simple(text(lang, "tracks.single", guide=guide_name(catalog)))
        mine = set(member.tracks or ())
        lines: list[str] = []
        for track in catalog.tracks:
            count, essential = track_sizes(catalog, track.name)
            if track.name == COMMON:
                lines.append(text(lang, "tracks.common", title=track.title, count=count))
                continue
            mark = "✅" if track.name in mine else "▫️"
            lines.append(
                text(
                    lang,
                    "tracks.line",
                    mark=mark,
                    title=track.title,
                    name=track.name,
                    count=count,
                    essential=essential,
                )
            )
        blocks: list[Block] = [TextBlock(text="\n".join(lines))]
        known = [t for t in member.tracks or () if t in catalog.track_names]
        if member.tracks is None:
            blocks.append(ContextBlock(lines=(text(lang, "tracks.unchosen"),)))
        else:
            names = ", ".join(known) or COMMON
            blocks.append(ContextBlock(lines=(text(lang, "tracks.mine", names=names),)))
        blocks.append(picker(lang, catalog))
        return Reply(
            header=text(lang, "tracks.header", guide=guide_name(catalog)), blocks=tuple(blocks)
        )

    def choose(self, who: Caller, rest: str) -> Reply:
        """``track [name…]``: set the member's directions (``common`` alone: none); alone, list."""
        words = rest.split()
        if not words:
            return self.list(who, rest)
        catalog = self.services.catalog
        if len(catalog.tracks) <= 1:
            return simple(text(who.language, "tracks.single", guide=guide_name(catalog)))
        names, unknown = resolve(catalog, words)
        if unknown is not None:
            return self._unknown(who.language, unknown)
        member = self.services.store.set_tracks(who.member.id, names)
        return self._chosen(who.language, member)

    def press(self, who: Caller, action: str, value: str) -> Reply:
        """A direction button (or select option): that direction becomes the member's. The
        answer goes beside the picker's message (a welcome keeps its first paper and buttons)."""
        catalog = self.services.catalog
        name = track_of(value, catalog) if value else None
        if name is None or name == COMMON:
            reply = self._unknown(who.language, value)
        else:
            member = self.services.store.set_tracks(who.member.id, [name])
            reply = self._chosen(who.language, member)
        return reply.model_copy(update={"replaces": False})

    def _unknown(self, lang: str, word: str) -> Reply:
        catalog = self.services.catalog
        names = ", ".join(t.name for t in catalog.tracks if t.name != COMMON)
        return simple(text(lang, "track.unknown", word=word[:60], names=names))

    def _chosen(self, lang: str, member: MemberRecord) -> Reply:
        if not member.tracks:
            return simple(text(lang, "track.common"))
        return simple(text(lang, "track.ok", names=", ".join(member.tracks)))
