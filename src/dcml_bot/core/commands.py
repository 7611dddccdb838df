"""``/dcml …`` text and button presses in, neutral replies out; platform-neutral."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from dcml_bot.catalog import Entry, parse_query, run_query
from dcml_bot.catalog.query import fold, topic_names
from dcml_bot.core.delivery import Delivery
from dcml_bot.core.i18n import LANGUAGES, text
from dcml_bot.core.library import CatalogLibrary
from dcml_bot.core.messages import Block, ContextBlock, ItemsBlock, ItemView, Reply, TextBlock
from dcml_bot.core.plan import READ, SKIPPED, SNOOZED, next_paper, plan, summarise, week_of
from dcml_bot.core.profile import Profiles
from dcml_bot.core.replies import (
    ACTION_DONE,
    ACTION_LATER,
    ACTION_SKIP,
    ACTIONS,
    answered_reply,
    grouped,
    guide_name,
    paper_blocks,
    simple,
)
from dcml_bot.store import MemberRecord, Store

log = logging.getLogger(__name__)

MAX_CACHED_ANSWERS = 512
MAX_INPUT = 500
_PREFIX = re.compile(r"^\s*/?dcml\b\s*", re.IGNORECASE)
_ID = re.compile(r"^(arxiv|url|doi|title):\S+$")

ADMIN_COMMANDS = {"lab", "remind", "reload", "enroll"}
MEMBER_COMMANDS = {"help", "topics", "next", "done", "skip", "progress", "start", "stop", "lang"}
ALIASES = {
    "帮助": "help",
    "?": "help",
    "主题": "topics",
    "下一篇": "next",
    "已读": "done",
    "跳过": "skip",
    "进度": "progress",
    "开始": "start",
    "停止": "stop",
    "language": "lang",
    "语言": "lang",
    "enrol": "enroll",
}


@dataclass(frozen=True)
class Caller:
    """Who is talking to the bot."""

    member: MemberRecord
    language: str
    is_admin: bool


class Commands:
    """Dispatches command text and button presses for one member."""

    def __init__(
        self,
        *,
        store: Store,
        library: CatalogLibrary,
        profiles: Profiles,
        delivery: Delivery,
        admins: set[str],
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.store = store
        self.library = library
        self.profiles = profiles
        self.delivery = delivery
        self.admins = admins
        self.clock = clock

    def caller(self, member: MemberRecord) -> Caller:
        """The caller for a member, with their language and admin flag."""
        admin = f"{member.platform}:{member.user_id}" in self.admins
        return Caller(member=member, language=self.profiles.language(member), is_admin=admin)

    def handle(self, member: MemberRecord, raw: str) -> Reply:
        """Answer a command typed by a member."""
        who = self.caller(member)
        lang = who.language
        line = _PREFIX.sub("", raw.replace("\u3000", " ")).strip()
        if len(line) > MAX_INPUT:
            return simple(text(lang, "unknown", word=line[:40] + "…", hint=text(lang, "hint")))
        if not line:
            return self.help(who)
        head, _, rest = line.partition(" ")
        command = ALIASES.get(fold(head), fold(head))
        rest = rest.strip()
        if command in ADMIN_COMMANDS:
            if not who.is_admin:
                return simple(text(lang, "admin.only", command=command))
            return getattr(self, f"cmd_{command}")(who, rest)  # type: ignore[no-any-return]
        if command in MEMBER_COMMANDS:
            return getattr(self, f"cmd_{command}")(who, rest)  # type: ignore[no-any-return]
        return self.query(who, line)

    # --- lists -----------------------------------------------------------------------------

    def help(self, who: Caller) -> Reply:
        """The help reply."""
        lang = who.language
        blocks: list[Block] = [
            TextBlock(text=text(lang, "help.body", guide=guide_name(self.library.catalog)))
        ]
        if who.is_admin:
            blocks.append(ContextBlock(lines=(text(lang, "help.admin"),)))
        return Reply(header=text(lang, "help.header"), blocks=tuple(blocks))

    def cmd_help(self, who: Caller, rest: str) -> Reply:
        """``help``."""
        return self.help(who)

    def query(self, who: Caller, line: str) -> Reply:
        """A catalog query: levels, topics, kinds, ``search …`` or free text."""
        lang = who.language
        catalog = self.library.catalog
        # A query's answer depends only on the (immutable) catalog, the language and the words.
        answers: dict[tuple[str, str], Reply] = catalog.memo("command.answers", dict)
        cached = answers.get((lang, line))
        if cached is not None:
            return cached
        reply = self._query(lang, line)
        if len(answers) >= MAX_CACHED_ANSWERS:
            answers.clear()
        answers[(lang, line)] = reply
        return reply

    def _query(self, lang: str, line: str) -> Reply:
        catalog = self.library.catalog
        query = parse_query(line, catalog)
        if query.empty:
            return simple(text(lang, "unknown", word=line, hint=text(lang, "hint")))
        results = run_query(catalog, query)
        if not results:
            return simple(
                text(lang, "query.none", query=query.describe()) + " " + text(lang, "hint")
            )
        blocks = grouped(results, lang)
        shown = sum(len(b.items) for b in blocks if isinstance(b, ItemsBlock))
        footer: list[str] = []
        if shown < len(results):
            example = next(iter(topic_names(catalog)), "")
            footer.append(
                text(
                    lang, "query.more", shown=shown, count=len(results), example=example.split()[0]
                )
            )
        footer.append(text(lang, "hint"))
        header = text(
            lang,
            "query.header",
            count=len(results),
            total=len(catalog.entries),
            query=query.describe(),
        )
        return Reply(header=header, blocks=(*blocks, ContextBlock(lines=tuple(footer))))

    def cmd_topics(self, who: Caller, rest: str) -> Reply:
        """``topics``: sections and topics with item counts."""
        lang = who.language
        catalog = self.library.catalog
        lines: list[str] = []
        for section in catalog.sections:
            lines.append(f"▸ {section.name}")
            for topic in (t for t in catalog.topics if t.section == section.name):
                count = sum(1 for e in catalog.entries if topic.name in e.topics)
                lines.append("    " + text(lang, "topics.line", name=topic.name, count=count))
        orphans = [t for t in catalog.topics if t.section is None]
        for topic in orphans:
            count = sum(1 for e in catalog.entries if topic.name in e.topics)
            lines.append(text(lang, "topics.line", name=topic.name, count=count))
        return Reply(
            header=text(lang, "topics.header", guide=guide_name(catalog)),
            blocks=(TextBlock(text="\n".join(lines)), ContextBlock(lines=(text(lang, "hint"),))),
        )

    # --- the plan --------------------------------------------------------------------------

    def _week(self, who: Caller) -> str:
        return week_of(self.clock(), self.profiles.timezone(who.member))

    def cmd_next(self, who: Caller, rest: str) -> Reply:
        """``next``: the paper to read now, with buttons."""
        lang = who.language
        catalog = self.library.catalog
        progress = self.store.progress_for(who.member.id)
        week = self._week(who)
        entry = next_paper(catalog, progress, week)
        if entry is None:
            return simple(text(lang, "next.none"))
        return Reply(
            header=text(lang, "next.header"), blocks=tuple(paper_blocks(lang, entry, week))
        )

    def _pick(self, who: Caller, words: str) -> Entry | Reply:
        """The entry a member means: an id, title words, or (no words) their current paper."""
        lang = who.language
        catalog = self.library.catalog
        if not words:
            progress = self.store.progress_for(who.member.id)
            entry = next_paper(catalog, progress, self._week(who))
            return entry if entry is not None else simple(text(lang, "pick.nothing"))
        if _ID.match(words):
            by_id = catalog.get(words)
            if by_id is not None:
                return by_id
        found = run_query(catalog, parse_query("search " + words, catalog))
        exact = [e for e in found if fold(e.title) == fold(words)]
        if len(exact) == 1 or len(found) == 1:
            return (exact or found)[0]
        if not found:
            return simple(text(lang, "pick.none", words=words))
        shown = tuple(ItemView.of(e) for e in found[:10])
        return Reply(
            blocks=(
                TextBlock(text=text(lang, "pick.many", words=words, count=len(found))),
                ItemsBlock(items=shown),
                ContextBlock(lines=(f"/dcml done {shown[0].id}",)),
            )
        )

    def _mark(self, who: Caller, entry: Entry, action: str, week: str) -> Reply:
        """Record done / skip / later for an entry; the reply says what changed and what is next."""
        lang = who.language
        member = who.member
        now = self.clock()
        current = self.store.progress_for(member.id).get(entry.id)
        if action == ACTION_DONE and current is not None and current.state == READ:
            return simple(text(lang, "done.again", title=entry.title))
        state = {ACTION_DONE: READ, ACTION_SKIP: SKIPPED, ACTION_LATER: SNOOZED}[action]
        snoozed_week = week if action == ACTION_LATER else None
        self.store.set_progress(
            member.id, entry.id, state, title=entry.title, week=snoozed_week, now=now
        )
        progress = self.store.progress_for(member.id)
        after = next(iter(plan(self.library.catalog, progress, self._week(who))), None)
        key = {ACTION_DONE: "done.ok", ACTION_SKIP: "skip.ok", ACTION_LATER: "later.ok"}[action]
        return answered_reply(lang, key, entry, after)

    def cmd_done(self, who: Caller, rest: str) -> Reply:
        """``done [id or title words]``."""
        picked = self._pick(who, rest)
        if isinstance(picked, Reply):
            return picked
        return self._mark(who, picked, ACTION_DONE, self._week(who))

    def cmd_skip(self, who: Caller, rest: str) -> Reply:
        """``skip [id or title words]``."""
        picked = self._pick(who, rest)
        if isinstance(picked, Reply):
            return picked
        return self._mark(who, picked, ACTION_SKIP, self._week(who))

    def press(self, member: MemberRecord, action: str, value: str) -> Reply:
        """A done / skip / later button on a paper message; the reply replaces that message."""
        who = self.caller(member)
        lang = who.language
        item_id, _, week = value.partition("|")
        if action not in ACTIONS or not item_id:
            log.info("ignored unknown action %r (%r)", action, value)
            return simple(text(lang, "action.unknown"))
        entry = self.library.catalog.get(item_id)
        if entry is None:
            return simple(text(lang, "action.gone"))
        return self._mark(who, entry, action, week or self._week(who))

    def cmd_progress(self, who: Caller, rest: str) -> Reply:
        """``progress``: counts per level, enrolment, the next paper."""
        lang = who.language
        catalog = self.library.catalog
        progress = self.store.progress_for(who.member.id)
        summary = summarise(catalog, progress)
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
        context: list[str] = []
        if summary.removed_read:
            context.append(text(lang, "progress.removed", count=summary.removed_read))
        if who.member.enrolled:
            day, at = self.delivery.slot_label(lang)
            context.append(
                text(
                    lang,
                    "progress.enrolled",
                    day=day,
                    time=at,
                    tz=self.profiles.timezone(who.member),
                )
            )
        else:
            context.append(text(lang, "progress.optedout"))
        blocks: list[Block] = [TextBlock(text="\n".join(lines))]
        week = self._week(who)
        entry = next_paper(catalog, progress, week)
        if entry is not None:
            blocks.append(TextBlock(text=text(lang, "next.header")))
            blocks += paper_blocks(lang, entry, week)
        blocks.append(ContextBlock(lines=tuple(context)))
        return Reply(header=text(lang, "progress.header"), blocks=tuple(blocks))

    def cmd_start(self, who: Caller, rest: str) -> Reply:
        """``start``: enrol in the weekly paper."""
        lang = who.language
        if who.member.enrolled:
            return simple(text(lang, "start.already"))
        self.store.set_enrolled(who.member.id, True, self.clock())
        day, at = self.delivery.slot_label(lang)
        return simple(
            text(lang, "start.ok", day=day, time=at, tz=self.profiles.timezone(who.member))
        )

    def cmd_stop(self, who: Caller, rest: str) -> Reply:
        """``stop``: opt out of the weekly paper."""
        lang = who.language
        if not who.member.enrolled:
            return simple(text(lang, "stop.already"))
        self.store.set_enrolled(who.member.id, False, self.clock())
        return simple(text(lang, "stop.ok"))

    def cmd_lang(self, who: Caller, rest: str) -> Reply:
        """``lang en|zh``."""
        choice = {"中文": "zh", "english": "en", "cn": "zh"}.get(fold(rest), fold(rest))
        if choice not in LANGUAGES:
            return simple(text(who.language, "lang.bad"))
        self.store.set_language(who.member.id, choice)
        return simple(text(choice, "lang.ok"))

    # --- admin -----------------------------------------------------------------------------

    def cmd_lab(self, who: Caller, rest: str) -> Reply:
        """``lab``: everyone's progress (admins)."""
        lang = who.language
        catalog = self.library.catalog
        members = self.store.list_members()
        if not members:
            return simple(text(lang, "lab.none"))
        everyone = self.store.progress_for_members(member.id for member in members)
        lines = []
        for member in members:
            progress = everyone[member.id]
            summary = summarise(catalog, progress)
            upcoming = next_paper(
                catalog, progress, week_of(self.clock(), self.profiles.timezone(member))
            )
            lines.append(
                text(
                    lang,
                    "lab.line",
                    name=member.display_name or member.user_id,
                    read=summary.read,
                    total=summary.total,
                    state=text(lang, "lab.enrolled" if member.enrolled else "lab.optedout"),
                    next=upcoming.title if upcoming else "—",
                )
            )
        return Reply(
            header=text(lang, "lab.header", count=len(members)),
            blocks=(TextBlock(text="\n".join(lines)),),
        )

    def cmd_remind(self, who: Caller, rest: str) -> Reply:
        """``remind``: run this week's delivery now (admins)."""
        report = self.delivery.deliver(self.clock(), force=True)
        week = week_of(self.clock(), self.profiles.lab_timezone)
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

    def cmd_reload(self, who: Caller, rest: str) -> Reply:
        """``reload``: read the catalog again; a broken version is refused (admins)."""
        lang = who.language
        result = self.library.reload()
        count = len(result.catalog.entries) if result.catalog else 0
        if result.status == "rejected":
            return Reply(
                blocks=(
                    TextBlock(text=text(lang, "reload.bad", count=count)),
                    ContextBlock(lines=result.errors[:10]),
                )
            )
        key = "reload.ok" if result.status == "loaded" else "reload.same"
        lines = tuple(str(p) for p in result.warnings[:10])
        blocks: list[Block] = [
            TextBlock(text=text(lang, key, count=count, source=self.library.source))
        ]
        if lines:
            blocks.append(ContextBlock(lines=lines))
        return Reply(blocks=tuple(blocks))

    def cmd_enroll(self, who: Caller, rest: str) -> Reply:
        """``enroll <user>``: enrol a member by id or name (admins)."""
        lang = who.language
        target = rest.strip().lstrip("@")
        if not target:
            return simple(text(lang, "enroll.usage"))
        platform = who.member.platform
        exact = self.store.get_member(platform, target)
        matches = [exact] if exact is not None else self.store.find_members(platform, target)
        if not matches:
            return simple(text(lang, "enroll.none", who=target))
        if len(matches) > 1:
            names = ", ".join(m.display_name or m.user_id for m in matches[:10])
            return simple(text(lang, "enroll.many", who=target, names=names))
        member = self.store.set_enrolled(matches[0].id, True, self.clock())
        return simple(text(lang, "enroll.ok", name=member.display_name or member.user_id))
