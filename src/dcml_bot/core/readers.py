"""Who has read a paper: lab members named as readers, only those who share their progress."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from dcml_bot.core.i18n import text
from dcml_bot.store import MemberRecord, Store

ASK_LIMIT = 3  # the "ask alice, bob" line names at most this many


def name_of(member: MemberRecord) -> str:
    """The name a member is shown by (never a mention: renderers escape it as text)."""
    return member.display_name or member.user_id


def readers_line(readers: Sequence[MemberRecord], member: MemberRecord, lang: str) -> str | None:
    """ "Read it already: alice, bob — ask them." from a paper's readers, ``member`` left out;
    None when nobody else is left."""
    names = [name_of(reader) for reader in readers if reader.id != member.id][:ASK_LIMIT]
    if not names:
        return None
    return text(lang, "readers.ask", names=text(lang, "list.sep").join(names))


def ask_line(
    store: Store, member: MemberRecord, item_id: str, lang: str, *, share_default: bool
) -> str | None:
    """The "ask them" line for a paper offered to ``member`` (None: no other reader shares)."""
    readers = store.readers_of(
        member.platform, item_id, share_default=share_default, limit=ASK_LIMIT, exclude=member.id
    )
    return readers_line(readers, member, lang)


class ReadersOnce:
    """The readers of each paper read once for a whole weekly run (most members get the same
    few papers): one query per paper, not one per member, as of the run's start."""

    def __init__(self, store: Store, *, share_default: bool) -> None:
        self.store = store
        self.share_default = share_default
        self._seen: dict[tuple[str, str], list[MemberRecord]] = {}
        self._lock = threading.Lock()

    def line(self, member: MemberRecord, item_id: str, lang: str) -> str | None:
        """The "ask them" line for ``member``'s paper."""
        key = (member.platform, item_id)
        with self._lock:
            readers = self._seen.get(key)
        if readers is None:
            # One more than shown: the member, if among them, is left out afterwards.
            readers = self.store.readers_of(
                member.platform, item_id, share_default=self.share_default, limit=ASK_LIMIT + 1
            )
            with self._lock:
                self._seen[key] = readers
        return readers_line(readers, member, lang)
