"""Browsing the guide: queries by level, topic, kind, track or words, and the topic list."""

from __future__ import annotations

from dcml_bot.catalog import Catalog, parse_query, run_query
from dcml_bot.catalog.query import topic_names
from dcml_bot.catalog.topics import topic_index
from dcml_bot.core.builders import grouped, guide_name, simple
from dcml_bot.core.commands.table import Caller, Services
from dcml_bot.core.i18n import text
from dcml_bot.core.plan import Scope, in_scope
from dcml_bot.core.reply import ContextBlock, ItemsBlock, Reply, TextBlock

MAX_CACHED_ANSWERS = 512


class Browse:
    """Answers catalog queries and ``topics`` within the asker's tracks."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def query(self, who: Caller, line: str) -> Reply:
        """A catalog query: levels, topics, kinds, tracks, ``all``, ``search …`` or free text."""
        lang = who.language
        catalog = self.services.catalog
        scope = self.services.scope(who.member)
        # An answer depends only on the (immutable) catalog, the language, the scope and the words.
        answers: dict[tuple[str, Scope, str], Reply] = catalog.memo("command.answers", dict)
        cached = answers.get((lang, scope, line))
        if cached is not None:
            return cached
        reply = self._query(lang, line, scope)
        if len(answers) >= MAX_CACHED_ANSWERS:
            answers.clear()
        answers[(lang, scope, line)] = reply
        return reply

    def _query(self, lang: str, line: str, scope: Scope) -> Reply:
        catalog = self.services.catalog
        query = parse_query(line, catalog)
        if query.empty and not query.tracks:
            return simple(text(lang, "unknown", word=line, hint=text(lang, "hint")))
        results = run_query(catalog, query, scope)
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
        if scope is not None and query.scope(scope) == scope:
            names = ", ".join(sorted(scope))
            footer.append(text(lang, "query.scope", names=names, example=line))
        footer.append(text(lang, "hint"))
        read = query.scope(scope)
        total = sum(1 for e in catalog.entries if in_scope(e, read))
        header = text(lang, "query.header", count=len(results), total=total, query=query.describe())
        return Reply(header=header, blocks=(*blocks, ContextBlock(lines=tuple(footer))))

    def topics(self, who: Caller, rest: str) -> Reply:
        """``topics``: sections and topics with item counts, in the member's tracks."""
        lang = who.language
        catalog = self.services.catalog
        scope = self.services.scope(who.member)
        # Like a query's answer, the list depends only on the catalog, the language and the scope.
        answers: dict[tuple[str, Scope], Reply] = catalog.memo("command.topics", dict)
        cached = answers.get((lang, scope))
        if cached is None:
            if len(answers) >= MAX_CACHED_ANSWERS:
                answers.clear()
            cached = answers[(lang, scope)] = _topics(catalog, lang, scope)
        return cached


def _topics(catalog: Catalog, lang: str, scope: Scope) -> Reply:
    """The topic list for one language and scope, from the catalog's topic index."""
    index = topic_index(catalog)
    lines: list[str] = []
    for section, names in index.layout:
        # One guide shows every topic; with tracks, only those with items in the member's.
        shown = [(name, index.count(name, scope)) for name in names]
        shown = [(name, count) for name, count in shown if scope is None or count]
        if section is not None:
            if scope is not None and not index.lists(section, scope):
                continue
            lines.append(f"▸ {section}")
        indent = "    " if section is not None else ""
        for name, count in shown:
            lines.append(indent + text(lang, "topics.line", name=name, count=count))
    return Reply(
        header=text(lang, "topics.header", guide=guide_name(catalog)),
        blocks=(TextBlock(text="\n".join(lines)), ContextBlock(lines=(text(lang, "hint"),))),
    )
