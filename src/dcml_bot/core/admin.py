"""Lab admins' commands: everyone's progress, this week's delivery now, reload, enrolment."""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

from dcml_bot.core.builders import simple
from dcml_bot.core.commands.table import Caller, Services
from dcml_bot.core.i18n import text
from dcml_bot.core.lab_table import bar, lab_rows
from dcml_bot.core.library import LOADED, REJECTED, RUNNING, STOPPED
from dcml_bot.core.plan import week_of
from dcml_bot.core.reply import Block, ContextBlock, Reply, TextBlock
from dcml_bot.core.tracks import resolve, track_sizes


class Admin:
    """``lab``, ``remind``, ``reload`` and ``enroll`` (admins only)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def lab(self, who: Caller, rest: str) -> Reply:
        """``lab``: everyone's progress in their own tracks, a text bar each; members per track."""
        lang = who.language
        services = self.services
        catalog = services.catalog
        rows = lab_rows(services)
        if not rows:
            return simple(text(lang, "lab.none"))
        members = [row.member for row in rows]
        multi = len(catalog.tracks) > 1
        lines = []
        for row in rows:
            member, name = row.member, row.name
            if multi:
                name += " [" + (" ".join(member.tracks or ()) or text(lang, "lab.unchosen")) + "]"
            line = text(
                lang,
                "lab.line",
                name=name,
                read=row.read,
                total=row.total,
                state=text(lang, "lab.enrolled" if member.enrolled else "lab.optedout"),
                next=row.next_title or "—",
            )
            lines.append(f"{bar(row.read, row.total)} · {line}")
        blocks: list[Block] = [TextBlock(text="\n".join(lines))]
        if multi:
            chosen = Counter(name for m in members for name in m.tracks or ())
            counts = " · ".join(
                f"{track.name} {chosen[track.name]}/{track_sizes(catalog, track.name)[0]}"
                for track in catalog.tracks
                if track.name in chosen
            )
            unchosen = sum(1 for m in members if m.tracks is None)
            counts += f" · {text(lang, 'lab.unchosen')} {unchosen}"
            blocks.append(ContextBlock(lines=(text(lang, "lab.tracks", counts=counts),)))
        return Reply(header=text(lang, "lab.header", count=len(members)), blocks=tuple(blocks))

    def remind(self, who: Caller, rest: str) -> Reply:
        """``remind``: run this week's delivery now."""
        services = self.services
        report = services.delivery.deliver(services.clock(), force=True)
        week = week_of(services.clock(), services.profiles.lab_timezone)
        return simple(
            text(
                who.language,
                "remind.done",
                week=week,
                sent=report.count("sent") + report.count("recovered"),
                already=report.count("already") + report.count("busy"),
                skipped=report.count("nothing"),
                failed=report.count("failed"),
            )
        )

    def reload(self, who: Caller, rest: str) -> Reply:
        """``reload``: read the guides again; a broken guide is refused, the rest served. While
        one runs, another ``reload`` says so at once (it never queues behind the download)."""
        lang = who.language
        library = self.services.library
        result = library.reload()
        count = len(result.catalog.entries) if result.catalog else 0
        if result.status == RUNNING and result.started is not None:
            zone = ZoneInfo(self.services.profiles.timezone(who.member))
            started = f"{result.started.astimezone(zone):%H:%M}"
            return simple(text(lang, "reload.running", started=started, count=count))
        if result.status == STOPPED:
            return simple(text(lang, "reload.stopped"))
        if result.status == REJECTED:
            return Reply(
                blocks=(
                    TextBlock(text=text(lang, "reload.bad", count=count)),
                    ContextBlock(lines=result.errors[:10]),
                )
            )
        key = "reload.ok" if result.status == LOADED else "reload.same"
        lines = tuple(str(p) for p in result.warnings[:10])
        blocks: list[Block] = [TextBlock(text=text(lang, key, count=count, source=library.source))]
        if lines:
            blocks.append(ContextBlock(lines=lines))
        return Reply(blocks=tuple(blocks))

    def enroll(self, who: Caller, rest: str) -> Reply:
        """``enroll <user> [track…]``: enrol a member by id or name, optionally in directions."""
        lang = who.language
        store = self.services.store
        words = rest.split()
        # Trailing words that name directions are the directions; the rest names the member.
        split = len(words)
        while split > 1 and resolve(self.services.catalog, words[split - 1 :])[1] is None:
            split -= 1
        target, words = " ".join(words[:split]).lstrip("@"), words[split:]
        if not target:
            return simple(text(lang, "enroll.usage"))
        names, _ = resolve(self.services.catalog, words)
        platform = who.member.platform
        exact = store.get_member(platform, target)
        matches = [exact] if exact is not None else store.find_members(platform, target)
        if not matches:
            return simple(text(lang, "enroll.none", who=target))
        if len(matches) > 1:
            found = ", ".join(m.display_name or m.user_id for m in matches[:10])
            return simple(text(lang, "enroll.many", who=target, names=found))
        member = store.set_enrolled(matches[0].id, True, self.services.clock())
        name = member.display_name or member.user_id
        if words:
            store.set_tracks(member.id, names)
            return simple(text(lang, "enroll.tracks", name=name, names=", ".join(names) or "—"))
        return simple(text(lang, "enroll.ok", name=name))
