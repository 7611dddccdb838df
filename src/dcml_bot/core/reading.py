"""A member's own reading: the next paper, done / skip / later, progress, the weekly switch."""

from __future__ import annotations

from dcml_bot.catalog import Catalog, Entry, parse_query, run_query
from dcml_bot.catalog.query import fold
from dcml_bot.core.builders import (
    ACTION_DONE,
    ACTION_LATER,
    ACTION_SKIP,
    answered_reply,
    note_input,
    paper_blocks,
    simple,
)
from dcml_bot.core.commands.table import Caller, Services
from dcml_bot.core.i18n import LANGUAGES, text
from dcml_bot.core.plan import READ, SKIPPED, SNOOZED, in_scope, next_paper, plan, summarise
from dcml_bot.core.readers import ask_line
from dcml_bot.core.reply import Block, ContextBlock, ItemsBlock, ItemView, Reply, TextBlock

_STATES = {ACTION_DONE: READ, ACTION_SKIP: SKIPPED, ACTION_LATER: SNOOZED}
_ANSWERS = {ACTION_DONE: "done.ok", ACTION_SKIP: "skip.ok", ACTION_LATER: "later.ok"}


def lookup(catalog: Catalog, words: str) -> list[Entry]:
    """The entries ``words`` may mean: the one with that id or button reference (``entry_ref``),
    else those whose title or notes match (an exact title alone when one matches exactly)."""
    if not any(c.isspace() for c in words):
        by_id = catalog.get(words)
        if by_id is not None:
            return [by_id]
    # Any item of the guide can be named, whatever tracks the member reads.
    found = run_query(catalog, parse_query("search " + words, catalog))
    exact = [e for e in found if fold(e.title) == fold(words)]
    return exact if len(exact) == 1 else found


def choose(catalog: Catalog, lang: str, words: str, *, then: str | None = None) -> Entry | Reply:
    """The one entry ``words`` names, or a reply: nothing matches, or the matches to choose
    from (``then``: the command to suggest with the first match's id)."""
    found = lookup(catalog, words)
    if len(found) == 1:
        return found[0]
    if not found:
        return simple(text(lang, "pick.none", words=words))
    shown = tuple(ItemView.of(e) for e in found[:10])
    blocks: list[Block] = [
        TextBlock(text=text(lang, "pick.many", words=words, count=len(found))),
        ItemsBlock(items=shown),
    ]
    if then is not None:
        blocks.append(ContextBlock(lines=(f"/dcml {then} {shown[0].id}",)))
    return Reply(blocks=tuple(blocks))


class Reading:
    """The member's plan: what to read next, what they did with it, how far they are."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def next(self, who: Caller, rest: str) -> Reply:
        """``next``: the paper to read now, with buttons."""
        lang, member = who.language, who.member
        services = self.services
        week = services.week(member)
        progress = services.store.progress_for(member.id)
        entry = next_paper(services.catalog, progress, week, services.scope(member))
        if entry is None:
            return simple(text(lang, "next.none"))
        ask = ask_line(services.store, member, entry.id, lang, share_default=services.share_default)
        return Reply(
            header=text(lang, "next.header"),
            blocks=tuple(paper_blocks(lang, entry, week, ask=ask)),
        )

    def _pick(self, who: Caller, words: str) -> Entry | Reply:
        """The entry a member means: an id, title words, or (no words) their current paper."""
        lang, member = who.language, who.member
        services = self.services
        catalog = services.catalog
        if not words:
            progress = services.store.progress_for(member.id)
            week = services.week(member)
            entry = next_paper(catalog, progress, week, services.scope(member))
            return entry if entry is not None else simple(text(lang, "pick.nothing"))
        return choose(catalog, lang, words, then="done")

    def _mark(self, who: Caller, entry: Entry, action: str, week: str) -> Reply:
        """Record done / skip / later for an entry; the reply says what changed and what is next."""
        lang, member = who.language, who.member
        store = self.services.store
        current = store.progress_for(member.id).get(entry.id)
        if action == ACTION_DONE and current is not None and current.state == READ:
            again = TextBlock(text=text(lang, "done.again", title=entry.title))
            return Reply(blocks=(again, note_input(lang, entry)))
        snoozed_week = week if action == ACTION_LATER else None
        now = self.services.clock()
        store.set_progress(
            member.id, entry.id, _STATES[action], title=entry.title, week=snoozed_week, now=now
        )
        progress = store.progress_for(member.id)
        scope = self.services.scope(member)
        upcoming = plan(self.services.catalog, progress, self.services.week(member), scope)
        after = next(iter(upcoming), None)
        return answered_reply(lang, _ANSWERS[action], entry, after, note=action == ACTION_DONE)

    def done(self, who: Caller, rest: str) -> Reply:
        """``done [id or title words]``."""
        picked = self._pick(who, rest)
        if isinstance(picked, Reply):
            return picked
        return self._mark(who, picked, ACTION_DONE, self.services.week(who.member))

    def skip(self, who: Caller, rest: str) -> Reply:
        """``skip [id or title words]``."""
        picked = self._pick(who, rest)
        if isinstance(picked, Reply):
            return picked
        return self._mark(who, picked, ACTION_SKIP, self.services.week(who.member))

    def press(self, who: Caller, action: str, value: str) -> Reply:
        """A done / skip / later button; the value names the item and the week it was offered."""
        item_id, _, week = value.partition("|")
        if not item_id:
            return simple(text(who.language, "action.unknown"))
        entry = self.services.catalog.get(item_id)
        if entry is None:
            return simple(text(who.language, "action.gone"))
        return self._mark(who, entry, action, week or self.services.week(who.member))

    def progress(self, who: Caller, rest: str) -> Reply:
        """``progress``: counts per level (and per track), enrolment, the next paper."""
        lang, member = who.language, who.member
        services = self.services
        catalog = services.catalog
        scope = services.scope(member)
        progress = services.store.progress_for(member.id)
        summary = summarise(catalog, progress, scope)
        lines = [
            text(lang, "progress.line", level=text(lang, f"level.{level}"), read=read, total=total)
            for level, (read, total) in summary.per_level.items()
        ]
        lines.append(
            text(
                lang,
                "progress.total",
                read=summary.read,
                total=summary.total,
                skipped=summary.skipped,
            )
        )
        if scope is not None:
            for track in (t for t in catalog.tracks if t.name in scope):
                entries = [e for e in catalog.entries if in_scope(e, {track.name})]
                read = sum(1 for e in entries if (r := progress.get(e.id)) and r.state == READ)
                lines.append(
                    text(lang, "progress.track", title=track.title, read=read, total=len(entries))
                )
        context: list[str] = []
        if summary.removed_read:
            context.append(text(lang, "progress.removed", count=summary.removed_read))
        if member.enrolled:
            day, at = services.delivery.slot_label(lang)
            timezone = services.profiles.timezone(member)
            context.append(text(lang, "progress.enrolled", day=day, time=at, tz=timezone))
        else:
            context.append(text(lang, "progress.optedout"))
        blocks: list[Block] = [TextBlock(text="\n".join(lines))]
        week = services.week(member)
        entry = next_paper(catalog, progress, week, scope)
        if entry is not None:
            blocks.append(TextBlock(text=text(lang, "next.header")))
            blocks += paper_blocks(lang, entry, week)
        blocks.append(ContextBlock(lines=tuple(context)))
        return Reply(header=text(lang, "progress.header"), blocks=tuple(blocks))

    def start(self, who: Caller, rest: str) -> Reply:
        """``start``: enrol in the weekly paper."""
        lang, member = who.language, who.member
        if member.enrolled:
            return simple(text(lang, "start.already"))
        self.services.store.set_enrolled(member.id, True, self.services.clock())
        day, at = self.services.delivery.slot_label(lang)
        timezone = self.services.profiles.timezone(member)
        return simple(text(lang, "start.ok", day=day, time=at, tz=timezone))

    def stop(self, who: Caller, rest: str) -> Reply:
        """``stop``: opt out of the weekly paper."""
        lang = who.language
        if not who.member.enrolled:
            return simple(text(lang, "stop.already"))
        self.services.store.set_enrolled(who.member.id, False, self.services.clock())
        return simple(text(lang, "stop.ok"))

    def lang(self, who: Caller, rest: str) -> Reply:
        """``lang en|zh``."""
        choice = {"中文": "zh", "english": "en", "cn": "zh"}.get(fold(rest), fold(rest))
        if choice not in LANGUAGES:
            return simple(text(who.language, "lang.bad"))
        self.services.store.set_language(who.member.id, choice)
        return simple(text(choice, "lang.ok"))
