"""The admins' weekly review commands: ``digest`` (a preview), ``digest pick <item>`` and
``attention``."""

from __future__ import annotations

from dcml_bot.catalog import Entry, parse_query, run_query
from dcml_bot.catalog.query import fold
from dcml_bot.core.attention import Attention
from dcml_bot.core.builders import simple
from dcml_bot.core.commands.table import Caller, Services
from dcml_bot.core.digest import DigestService
from dcml_bot.core.i18n import text, weekday
from dcml_bot.core.reply import Block, ContextBlock, ItemsBlock, ItemView, Reply, TextBlock

PICK_WORDS = {"pick", "选", "选定"}


def find_entry(services: Services, words: str) -> Entry | list[Entry]:
    """The catalog entry ``words`` name (an id, a short reference, the title or words from it),
    or every candidate when there is not exactly one."""
    catalog = services.catalog
    by_id = catalog.get(words)
    if by_id is not None:
        return by_id
    found = run_query(catalog, parse_query("search " + words, catalog))
    exact = [e for e in found if fold(e.title) == fold(words)]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0]
    return found


class Review:
    """``digest``, ``digest pick`` and ``attention`` (admins only)."""

    def __init__(self, services: Services, digest: DigestService, attention: Attention) -> None:
        self.services = services
        self.digest_service = digest
        self.attention_service = attention

    def digest(self, who: Caller, rest: str) -> Reply:
        """``digest``: this week's digest as it would be posted now; ``digest pick <item>``."""
        lang = who.language
        service = self.digest_service
        if not service.on:
            return simple(text(lang, "digest.off"))
        head, _, words = rest.partition(" ")
        if fold(head) in PICK_WORDS:
            return self.pick(who, words.strip())
        if rest:
            return simple(text(lang, "digest.usage"))
        now = self.services.clock()
        week = service.week(now)
        row = service.status(week)
        if row is not None and row.status == "sent":
            status = text(lang, "digest.status.posted")
        else:
            day = weekday(lang, service.plan.day)
            status = text(
                lang, "digest.status.pending", day=day, time=service.plan.at.strftime("%H:%M")
            )
        composed = service.compose(week)
        header = text(lang, "digest.preview", week=week, status=status)
        if composed.empty:
            return simple(text(lang, "digest.empty", week=week), header=header)
        preview = service.reply(composed)
        return Reply(header=header, blocks=preview.blocks)

    def pick(self, who: Caller, words: str) -> Reply:
        """``digest pick <id or title words>``: the paper of the week; nothing saved unless the
        words name exactly one item."""
        lang = who.language
        if not words:
            return simple(text(lang, "digest.usage"))
        found = find_entry(self.services, words)
        if isinstance(found, list):
            if not found:
                return simple(text(lang, "pick.none", words=words[:60]))
            shown = tuple(ItemView.of(e) for e in found[:10])
            blocks: list[Block] = [
                TextBlock(text=text(lang, "pick.many", words=words[:60], count=len(found))),
                ItemsBlock(items=shown),
                ContextBlock(lines=(f"/dcml digest pick {shown[0].id}",)),
            ]
            return Reply(blocks=tuple(blocks))
        week = self.digest_service.pick(found, who.member, self.services.clock())
        return simple(text(lang, "digest.picked", week=week, title=found.title))

    def attention(self, who: Caller, rest: str) -> Reply:
        """``attention``: members who need an admin's attention, one line each."""
        service = self.attention_service
        return service.reply(who.language, service.concerns(self.services.clock()))
