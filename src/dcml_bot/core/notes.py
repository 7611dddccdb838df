"""Reading together: who has read a paper (``who``, ``share``) and notes on papers (``note``,
``notes``): one paragraph per note, kept with the item's id, shown newest first."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

from dcml_bot.catalog import Entry, entry_ref
from dcml_bot.catalog.query import fold
from dcml_bot.core.builders import note_input, simple
from dcml_bot.core.commands.table import Caller, Services, Submitted
from dcml_bot.core.i18n import text
from dcml_bot.core.plan import READ
from dcml_bot.core.readers import name_of
from dcml_bot.core.reading import choose, lookup
from dcml_bot.core.reply import (
    Block,
    ContextBlock,
    InputBlock,
    ItemsBlock,
    ItemView,
    Reply,
    TextBlock,
)
from dcml_bot.store import MemberRecord, NoteRecord
from dcml_bot.store.reading_together import NOTE_MAX

log = logging.getLogger(__name__)

NOTES_SHOWN = 10  # newest notes in /dcml notes (a Feishu card holds 30 KB)
WHO_SHOWN = 50
_DELETE = re.compile(r"^(delete|del|删除)\s+#?(?P<id>\d{1,18})$", re.IGNORECASE)
_ITEM_ID = re.compile(r"^(arxiv|url|doi|title|ref):\S+$")
_ON = {"on", "yes", "true", "开", "开启", "公开"}
_OFF = {"off", "no", "false", "关", "关闭", "隐藏"}
# A hook is told of every note saved (the digest posts it in the paper's thread).
NoteHook = Callable[[NoteRecord, MemberRecord], object]


class Notes:
    """``share``, ``who``, ``note`` (and ``note delete`` for admins), ``notes``; the note box."""

    def __init__(self, services: Services) -> None:
        self.services = services
        # Called after each note is saved, never for a refused one; its failure is only logged.
        self.on_added: NoteHook | None = None

    # --- sharing ----------------------------------------------------------------------------

    def share(self, who: Caller, rest: str) -> Reply:
        """``share on|off``: whether the member is named as a reader anywhere; no word: which."""
        lang, member = who.language, who.member
        choice = fold(rest)
        if not choice:
            shares = self._shares(member)
            lab = text(lang, "share.default") if member.share_progress is None else ""
            key = "share.state.on" if shares else "share.state.off"
            return simple(text(lang, key, default=lab))
        if choice not in _ON | _OFF:
            return simple(text(lang, "share.bad"))
        on = choice in _ON
        self.services.store.set_share_progress(member.id, on)
        return simple(text(lang, "share.on" if on else "share.off"))

    def _shares(self, member: MemberRecord) -> bool:
        chosen = member.share_progress
        return self.services.share_default if chosen is None else chosen

    def who(self, who: Caller, rest: str) -> Reply:
        """``who <paper>``: the members who marked it done and share their progress."""
        lang = who.language
        entry = self._entry(who, rest, "who.usage")
        if isinstance(entry, Reply):
            return entry
        readers = self.services.store.readers_of(
            who.member.platform,
            entry.id,
            share_default=self.services.share_default,
            limit=WHO_SHOWN + 1,
        )
        blocks: list[Block] = [ItemsBlock(items=(ItemView.of(entry),))]
        if not readers:
            blocks.append(TextBlock(text=text(lang, "who.none", title=entry.title)))
        else:
            names = text(lang, "list.sep").join(name_of(r) for r in readers[:WHO_SHOWN])
            if len(readers) > WHO_SHOWN:
                names += " " + text(lang, "who.more", count=len(readers) - WHO_SHOWN)
            blocks.append(TextBlock(text=names))
        blocks.append(ContextBlock(lines=(text(lang, "who.hidden"),)))
        return Reply(header=text(lang, "who.header", title=entry.title), blocks=tuple(blocks))

    # --- notes ------------------------------------------------------------------------------

    def notes(self, who: Caller, rest: str) -> Reply:
        """``notes <paper>``: its notes, newest first, each author named only if they share."""
        lang = who.language
        entry = self._entry(who, rest, "notes.usage")
        if isinstance(entry, Reply):
            return entry
        store, ref = self.services.store, entry_ref(entry.id)
        found = store.notes_for(
            who.member.platform,
            entry.id,
            share_default=self.services.share_default,
            limit=NOTES_SHOWN,
        )
        blocks: list[Block] = [ItemsBlock(items=(ItemView.of(entry),))]
        if not found:
            blocks.append(TextBlock(text=text(lang, "notes.none", title=entry.title, ref=ref)))
            return Reply(blocks=tuple(blocks))
        zone = ZoneInfo(self.services.profiles.timezone(who.member))
        for note in found:
            author = note.author or text(lang, "notes.anonymous")
            date = note.created_at.astimezone(zone).strftime("%Y-%m-%d")
            heading = text(lang, "notes.line", author=author, date=date, id=note.id)
            blocks += [ContextBlock(lines=(heading,)), TextBlock(text=note.text)]
        older = store.count_notes(entry.id) - len(found)
        if older > 0:
            blocks.append(ContextBlock(lines=(text(lang, "notes.more", count=older),)))
        return Reply(header=text(lang, "notes.header", title=entry.title), blocks=tuple(blocks))

    def note(self, who: Caller, rest: str) -> Reply:
        """``note <paper> <text>`` (or ``<title words> | <text>``); ``note delete <n>``."""
        lang = who.language
        deleting = _DELETE.match(rest)
        if deleting is not None:
            return self._delete(who, int(deleting["id"]))
        if fold(rest).split(" ", 1)[0] in {"delete", "del", "删除"}:
            return simple(text(lang, "note.delete.usage"))
        head, _, typed = rest.partition(" ")
        entry = self.services.catalog.get(head) if head else None
        if entry is None:
            words, bar, typed = rest.partition("|")
            if not bar and _ITEM_ID.match(head):
                return simple(text(lang, "pick.none", words=head))
            if not bar or not words.strip():
                return simple(text(lang, "note.usage"))
            found = lookup(self.services.catalog, words.strip())
            if not found:
                return simple(text(lang, "pick.none", words=words.strip()))
            if len(found) > 1:
                return simple(text(lang, "note.many", words=words.strip(), count=len(found)))
            entry = found[0]
        return self._save(who, entry, typed).reply

    def ask(self, who: Caller, action: str, value: str) -> InputBlock | Reply:
        """The note box for a paper, unless the paper is gone or not read by the member."""
        entry = self.services.catalog.get(value)
        if entry is None:
            return simple(text(who.language, "action.gone"))
        unread = self._unread(who, entry)
        return note_input(who.language, entry) if unread is None else simple(unread)

    def submit(self, who: Caller, action: str, value: str, typed: str) -> Submitted:
        """A note typed into the box under a paper (the value is the paper's reference)."""
        entry = self.services.catalog.get(value)
        if entry is None:
            message = text(who.language, "action.gone")
            return Submitted(simple(message), message)
        return self._save(who, entry, typed)

    def _save(self, who: Caller, entry: Entry, typed: str) -> Submitted:
        """Check and store a note; tell the hook. Refused notes leave nothing behind."""
        lang, member = who.language, who.member
        body = typed.strip()
        problem = None
        if not body:
            problem = text(lang, "note.empty", max=NOTE_MAX)
        elif len(body) > NOTE_MAX:
            problem = text(lang, "note.long", count=len(body), max=NOTE_MAX)
        else:
            problem = self._unread(who, entry)
        if problem is not None:
            return Submitted(simple(problem), problem)
        store = self.services.store
        note_id = store.add_note(member.id, entry.id, body, self.services.clock())
        log.info("note #%d on %s by member %d", note_id, entry.id, member.id)
        self._tell(note_id, member)
        saved = text(lang, "note.saved", title=entry.title, ref=entry_ref(entry.id))
        paper = ItemsBlock(items=(ItemView.of(entry),))
        return Submitted(Reply(blocks=(paper, TextBlock(text=saved))))

    def _tell(self, note_id: int, member: MemberRecord) -> None:
        hook = self.on_added
        if hook is None:
            return
        note = self.services.store.get_note(note_id, share_default=self.services.share_default)
        if note is None:  # deleted in the meantime
            return
        try:
            hook(note, member)
        except Exception:  # the note is saved: a failed thread post must not undo the reply
            log.exception("the note hook failed for note #%d", note_id)

    def _unread(self, who: Caller, entry: Entry) -> str | None:
        """Why the member may not leave a note on the paper yet (None: they read it)."""
        done = self.services.store.progress_for(who.member.id).get(entry.id)
        if done is not None and done.state == READ:
            return None
        return text(who.language, "note.unread", title=entry.title, ref=entry_ref(entry.id))

    def _delete(self, who: Caller, note_id: int) -> Reply:
        lang = who.language
        if not who.is_admin:
            return simple(text(lang, "note.delete.admin"))
        store = self.services.store
        if not store.delete_note(note_id, by=who.member.id, now=self.services.clock()):
            return simple(text(lang, "note.gone", id=note_id))
        log.info("note #%d deleted by admin member %d", note_id, who.member.id)
        return simple(text(lang, "note.deleted", id=note_id))

    def _entry(self, who: Caller, words: str, usage: str) -> Entry | Reply:
        """The paper ``words`` names (an id, a button reference, or title words)."""
        lang = who.language
        if not words:
            return simple(text(lang, usage))
        return choose(self.services.catalog, lang, words)
