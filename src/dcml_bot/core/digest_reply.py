"""The digest, its thread's opening post and a note in that thread, as neutral replies."""

from __future__ import annotations

from dcml_bot.core.digest_week import Week
from dcml_bot.core.i18n import text
from dcml_bot.core.reply import (
    Block,
    ContextBlock,
    ItemsBlock,
    ItemView,
    Mention,
    Reply,
    TextBlock,
)
from dcml_bot.store import MemberRecord

# Keeps the post within every platform's limits (Slack: 50 blocks) whatever the week.
MAX_NAMES = 20
MAX_FINISHES = 15


def display(member: MemberRecord) -> str:
    """The name the lab sees: the display name, else the platform user id."""
    return member.display_name or member.user_id


def about(
    lang: str, key: str, member: MemberRecord, *, mention: bool, **values: object
) -> TextBlock:
    """A line that starts with a member (message ``key`` starts with ``{name}``): their plain
    display name, or with ``mention`` a mention (a ping) the platform renders."""
    if not mention:
        return TextBlock(text=text(lang, key, name=display(member), **values))
    rest = text(lang, key, name="", **values).lstrip()
    return TextBlock(text=rest, mention=Mention(user_id=member.user_id, name=display(member)))


def _joined(lang: str, parts: list[str]) -> str:
    return text(lang, "digest.list.sep").join(parts)


def digest_reply(lang: str, week: Week, *, mention: bool) -> Reply:
    """The week's post in the lab channel (members who do not share are never named)."""
    blocks: list[Block] = []
    names = [display(m) for m in week.newcomers[:MAX_NAMES]]
    unnamed = week.unnamed_newcomers + len(week.newcomers) - len(names)
    if names:
        shown = _joined(lang, names)
        if unnamed:
            shown = text(lang, "digest.newcomers.more", names=shown, count=unnamed)
        blocks.append(TextBlock(text=text(lang, "digest.newcomers", names=shown)))
    elif unnamed:
        blocks.append(TextBlock(text=text(lang, "digest.newcomers.count", count=unnamed)))
    if week.done:
        blocks.append(TextBlock(text=text(lang, "digest.done", count=week.done)))
        views = []
        for popular in week.popular:
            view = (
                ItemView.of(popular.entry)
                if popular.entry
                else ItemView(id=popular.item_id, title=popular.title)
            )
            views.append(
                view.model_copy(
                    update={"note": text(lang, "digest.readers", count=popular.readers)}
                )
            )
        blocks.append(ItemsBlock(title=text(lang, "digest.popular"), items=tuple(views)))
    if week.finishes:
        blocks.append(TextBlock(text=text(lang, "digest.finished.header")))
        for finish in week.finishes[:MAX_FINISHES]:
            what = [
                text(lang, "digest.level", level=text(lang, f"level.{level.value}"))
                for level in finish.levels
            ]
            what += [text(lang, "digest.track", title=title) for title in finish.tracks]
            blocks.append(
                about(
                    lang,
                    "digest.finished",
                    finish.member,
                    mention=mention,
                    what=_joined(lang, what),
                )
            )
        if len(week.finishes) > MAX_FINISHES:
            blocks.append(
                ContextBlock(lines=(text(lang, "more", count=len(week.finishes) - MAX_FINISHES),))
            )
    paper = week.paper
    if paper is not None:
        why = (
            text(lang, "digest.paper.picked")
            if paper.picked
            else text(lang, "digest.paper.planned", count=paper.planned)
        )
        blocks += [
            ItemsBlock(
                title=text(lang, "digest.paper"), items=(ItemView.of(paper.entry, with_note=True),)
            ),
            ContextBlock(lines=(why, text(lang, "digest.paper.thread"))),
        ]
    return Reply(
        header=text(lang, "digest.header", week=week.week),
        blocks=tuple(blocks),
        private=False,
        lang=lang,
    )


def thread_reply(lang: str, title: str) -> Reply:
    """The first post of the thread under the digest: discuss the paper of the week here."""
    return Reply(
        blocks=(TextBlock(text=text(lang, "digest.thread", title=title)),), private=False, lang=lang
    )


def note_reply(
    lang: str, member: MemberRecord, note_text: str, title: str, *, named: bool, mention: bool
) -> Reply:
    """A member's note in the paper's thread; its author named only if they share."""
    if named:
        lead = about(lang, "digest.note", member, mention=mention, title=title)
    else:
        lead = TextBlock(text=text(lang, "digest.note.anonymous", title=title))
    return Reply(blocks=(lead, TextBlock(text=note_text)), private=False, lang=lang)
