"""The command table's types and its dispatcher: ``/dcml …`` text, button presses and text
boxes in, neutral replies out.

A command is a name, its zh/en aliases, an admin flag and a callback; a group gathers the
commands, presses and forms of one part of the bot (the groups are the modules beside this one,
listed once in ``groups``).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from dcml_bot.catalog import Catalog
from dcml_bot.catalog.query import fold, track_of
from dcml_bot.core.builders import guide_name, simple
from dcml_bot.core.delivery import Delivery
from dcml_bot.core.i18n import text
from dcml_bot.core.library import CatalogLibrary
from dcml_bot.core.plan import Scope, member_scope, week_of
from dcml_bot.core.profile import Profiles
from dcml_bot.core.reply import Block, ContextBlock, InputBlock, Reply, TextBlock
from dcml_bot.store import MemberRecord, Store

log = logging.getLogger(__name__)

MAX_INPUT = 500
_PREFIX = re.compile(r"^\s*(?P<slash>/)?dcml\b\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Caller:
    """Who is talking to the bot."""

    member: MemberRecord
    language: str
    is_admin: bool


Handler = Callable[[Caller, str], Reply]


@dataclass(frozen=True)
class Command:
    """One chat command: what it is called (in English and Chinese) and what answers it."""

    name: str
    callback: Handler
    aliases: tuple[str, ...] = ()
    admin: bool = False
    # Longer lines are refused before the command sees them (a note carries a paragraph).
    max_input: int = MAX_INPUT
    # It changes what is stored: a platform runs a replayed request for it only once.
    changes: bool = False


@dataclass(frozen=True)
class Press:
    """What answers a button press: the action names it answers and the callback."""

    actions: tuple[str, ...]
    callback: Callable[[Caller, str, str], Reply]  # (caller, action, value)


@dataclass(frozen=True)
class Submitted:
    """What became of text typed into a box: the reply, or (refused) the one-line reason."""

    reply: Reply
    error: str | None = None


@dataclass(frozen=True)
class Form:
    """A text box's handlers: the box again for a (action, value), and its submission."""

    actions: tuple[str, ...]
    ask: Callable[[Caller, str, str], InputBlock | Reply]  # (caller, action, value)
    submit: Callable[[Caller, str, str, str], Submitted]  # (caller, action, value, text)


@dataclass(frozen=True)
class Group:
    """One group of the table: its commands, the button presses and the text boxes it answers."""

    name: str
    commands: tuple[Command, ...] = ()
    presses: tuple[Press, ...] = ()
    forms: tuple[Form, ...] = ()


@dataclass
class Services:
    """What every group of handlers reads: the store, the catalog, profiles, delivery, clock."""

    store: Store
    library: CatalogLibrary
    profiles: Profiles
    delivery: Delivery
    clock: Callable[[], dt.datetime]

    @property
    def catalog(self) -> Catalog:
        """The catalog being served."""
        return self.library.catalog

    @property
    def share_default(self) -> bool:
        """Whether a member who never said ``share on|off`` is named as a reader."""
        return self.delivery.share_default

    def week(self, member: MemberRecord) -> str:
        """The member's current ISO week, in their time zone."""
        return week_of(self.clock(), self.profiles.timezone(member))

    def scope(self, member: MemberRecord) -> Scope:
        """The tracks the member reads (None: the lab has one guide)."""
        return member_scope(member, self.library.catalog)


class Commands:
    """Dispatches command text and button presses through the handler tables."""

    def __init__(
        self,
        services: Services,
        *,
        admins: set[str],
        groups: Sequence[Group],
        fallback: Handler,
    ) -> None:
        self.services = services
        self.admins = admins
        self.fallback = fallback
        self.groups = tuple(groups)
        self.table: dict[str, Command] = {}
        for command in (
            Command("help", lambda who, rest: self.help(who), ("帮助", "?")),
            *(command for group in self.groups for command in group.commands),
        ):
            for word in (command.name, *command.aliases):
                if fold(word) in self.table:
                    raise ValueError(f"command word {word!r} is used twice")
                self.table[fold(word)] = command
        self.presses = {
            action: press
            for group in self.groups
            for press in group.presses
            for action in press.actions
        }
        self.forms = {
            action: form for group in self.groups for form in group.forms for action in form.actions
        }

    def caller(self, member: MemberRecord) -> Caller:
        """The caller for a member, with their language and admin flag."""
        admin = f"{member.platform}:{member.user_id}" in self.admins
        language = self.services.profiles.language(member)
        return Caller(member=member, language=language, is_admin=admin)

    def handle(self, member: MemberRecord, raw: str) -> Reply:
        """Answer a command typed by a member."""
        who = self.caller(member)
        return self._answer(who, raw).in_language(who.language)

    def _answer(self, who: Caller, raw: str) -> Reply:
        lang = who.language
        line = self._line(raw)
        if not line:
            return self.help(who)
        head, _, rest = line.partition(" ")
        command = self.table.get(fold(head[:MAX_INPUT]))
        if len(line) > (command.max_input if command else MAX_INPUT):
            return simple(text(lang, "unknown", word=line[:40] + "…", hint=text(lang, "hint")))
        if command is None:
            return self.fallback(who, line)
        if command.admin and not who.is_admin:
            return simple(text(lang, "admin.only", command=command.name))
        return command.callback(who, rest.strip())

    def changes(self, raw: str) -> bool:
        """Whether the typed line runs a command that changes what is stored."""
        line = self._line(raw)
        command = self.table.get(fold(line.partition(" ")[0][:MAX_INPUT]))
        return command is not None and command.changes and len(line) <= command.max_input

    def _line(self, raw: str) -> str:
        return self._strip_prefix(raw.replace("\u3000", " ")).strip()

    def _strip_prefix(self, raw: str) -> str:
        """Drop a leading ``/dcml`` (or ``dcml`` in a DM), unless ``dcml`` names a track."""
        match = _PREFIX.match(raw)
        if match is None:
            return raw
        catalog = self.services.catalog
        if match["slash"] is None and catalog.memo(
            "commands.dcml-track", lambda: track_of("dcml", catalog)
        ):
            return raw  # the lab's Starter-Guide has a dcml direction: "dcml essential" asks it
        return raw[match.end() :]

    def run(self, who: Caller, name: str, rest: str = "") -> Reply:
        """Run one command for a caller built by the platform (the local lab's operator)."""
        return self.table[fold(name)].callback(who, rest).in_language(who.language)

    def press(self, member: MemberRecord, action: str, value: str) -> Reply:
        """A button press (done / skip / later on a paper, a direction in a picker …)."""
        who = self.caller(member)
        handler = self.presses.get(action)
        if handler is None:
            log.info("ignored unknown action %r (%r)", action, value)
            return simple(text(who.language, "action.unknown")).in_language(who.language)
        return handler.callback(who, action, value).in_language(who.language)

    def ask(self, member: MemberRecord, action: str, value: str) -> InputBlock | Reply:
        """The text box for (action, value) in the member's language, or why there is none."""
        who = self.caller(member)
        form = self.forms.get(action)
        if form is None:
            log.info("ignored unknown form %r (%r)", action, value)
            return simple(text(who.language, "action.unknown")).in_language(who.language)
        asked = form.ask(who, action, value)
        return asked.in_language(who.language) if isinstance(asked, Reply) else asked

    def submit(self, member: MemberRecord, action: str, value: str, typed: str) -> Submitted:
        """Text typed into a box (a note in a Slack modal, a Feishu card form, the local lab)."""
        who = self.caller(member)
        form = self.forms.get(action)
        if form is None:
            log.info("ignored unknown form %r (%r)", action, value)
            message = text(who.language, "action.unknown")
            return Submitted(simple(message).in_language(who.language), message)
        submitted = form.submit(who, action, value, typed)
        return replace(submitted, reply=submitted.reply.in_language(who.language))

    def help(self, who: Caller) -> Reply:
        """The help reply."""
        lang = who.language
        catalog = self.services.catalog
        blocks: list[Block] = [TextBlock(text=text(lang, "help.body", guide=guide_name(catalog)))]
        if len(catalog.tracks) > 1:
            mine = " · ".join(who.member.tracks or ()) or text(lang, "lab.unchosen")
            blocks.append(TextBlock(text=text(lang, "help.tracks", mine=mine)))
        if self.forms:
            blocks.append(TextBlock(text=text(lang, "help.notes")))
        # The other words for each command the caller may use, from the table itself.
        shown = dict.fromkeys(c for c in self.table.values() if who.is_admin or not c.admin)
        words = [f"{alias} = {c.name}" for c in shown for alias in c.aliases]
        blocks.append(ContextBlock(lines=(text(lang, "help.aliases", words=" · ".join(words)),)))
        if who.is_admin:
            lines = [text(lang, "help.admin")]
            if self.forms:
                lines.append(text(lang, "help.notes.admin"))
            blocks.append(ContextBlock(lines=tuple(lines)))
        return Reply(header=text(lang, "help.header"), blocks=tuple(blocks))
