"""Who has read a paper: lab members named as readers, only those who share their progress."""

from __future__ import annotations

from dcml_bot.core.i18n import text
from dcml_bot.store import MemberRecord, Store

ASK_LIMIT = 3  # the "ask alice, bob" line names at most this many


def name_of(member: MemberRecord) -> str:
    """The name a member is shown by (never a mention: renderers escape it as text)."""
    return member.display_name or member.user_id


def ask_line(
    store: Store, member: MemberRecord, item_id: str, lang: str, *, share_default: bool
) -> str | None:
    """ "Read it already: alice, bob — ask them." for a paper offered to ``member``; None when
    no other member who shares their progress has read it."""
    readers = store.readers_of(
        member.platform, item_id, share_default=share_default, limit=ASK_LIMIT, exclude=member.id
    )
    if not readers:
        return None
    names = text(lang, "list.sep").join(name_of(reader) for reader in readers)
    return text(lang, "readers.ask", names=names)
