"""A guide's Markdown as markdown-it-py tokens, and which of its angle brackets are HTML."""

from __future__ import annotations

import functools
import re
from html.parser import HTMLParser

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

# The HTML elements a guide may use for layout; ``<LLMs>`` or ``Vector<T>`` in a title is text.
_ELEMENT_NAMES = """
    a abbr address area article aside audio b base bdi bdo big blockquote body br button canvas
    caption center cite code col colgroup data datalist dd del details dfn dialog div dl dt em
    embed fieldset figcaption figure font footer form h1 h2 h3 h4 h5 h6 head header hgroup hr html
    i iframe img input ins kbd label legend li link main map mark menu meta meter nav noscript
    object ol optgroup option output p param picture pre progress q rp rt ruby s samp script
    section select small source span strike strong style sub summary sup table tbody td template
    textarea tfoot th thead time title tr track tt u ul var video wbr"""
HTML_ELEMENTS = frozenset(_ELEMENT_NAMES.split())
# A start or end tag as markdown-it's html_inline rule matched it: the name, then attributes.
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*)([^>]*)>", re.DOTALL)


def is_html(markup: str) -> bool:
    """Whether inline markup is HTML (a known element, a tag with attributes, a comment)."""
    match = _TAG.fullmatch(markup)
    if match is None:
        return True  # a comment, declaration, processing instruction or CDATA section
    name, rest = match.groups()
    if rest.strip(" \t\r\n/"):
        return True  # attributes: <a href=…>, <img src=…>
    # Mixed case is how text is written, not HTML: <LLMs>, <Data>.
    return name.lower() in HTML_ELEMENTS and (name.islower() or name.isupper())


def _angle_text(state: StateCore) -> None:
    """Turn inline "HTML" that is text in angle brackets back into text (a core rule)."""
    for token in state.tokens:
        if token.type != "inline" or "<" not in token.content:
            continue
        for child in token.children or ():
            if child.type == "html_inline" and not is_html(child.content):
                child.type = "text"


@functools.cache
def markdown() -> MarkdownIt:
    """A CommonMark tokenizer that also turns bare URLs into links (built once, on first use:
    its rule chains are only read while parsing, so threads share it)."""
    md = MarkdownIt("commonmark", {"linkify": True}).enable("linkify")
    md.core.ruler.before("text_join", "angle_text", _angle_text)  # text_join merges the text
    return md


def tokenize(text: str) -> list[Token]:
    """A guide's token stream, as the parser reads it (an index is read twice: for its tracks and
    for its entries; tokenising once is most of the cost)."""
    return markdown().parse(text)


def too_deep(tokens: list[Token]) -> Token | None:
    """The first block nested as deep as markdown-it goes: it skips the rest of its container
    (for a list item, the rest of the guide) without a word."""
    deepest = markdown().options.maxNesting - 1
    return next((t for t in tokens if t.nesting == 1 and t.level >= deepest), None)


def unclosed_comment(token: Token) -> bool:
    """Whether an HTML block is a ``<!--`` with no ``-->``: it runs to the end of the guide."""
    return _all_comment(token.content)


def _all_comment(content: str) -> bool:
    return content.lstrip().startswith("<!--") and "-->" not in content


@functools.cache
def _tag_finder() -> MarkdownIt:
    """markdown-it with only its inline-HTML rule: which ``<`` in a block start a whole tag."""
    return MarkdownIt("zero", {"html": True}).enable("html_inline")


def whole_tags_only(content: str) -> str:
    """An HTML block with each ``<`` that starts no whole tag, comment or declaration escaped.

    html.parser rescans from every unterminated ``<!--``, ``<?`` or ``<a`` to the end of the
    block: quadratic (``<a <a …`` worse), 12 s for 200 kB. markdown-it's inline-HTML rule finds
    the whole ones in linear time, as it does in paragraphs.
    """
    if "<" not in content:
        return content
    parsed = _tag_finder().parseInline(content)
    children = parsed[0].children or [] if parsed else []
    return "".join(
        child.content if child.type == "html_inline" else child.content.replace("<", "&lt;")
        for child in children
    )


@functools.lru_cache(maxsize=1024)
def html_events(content: str) -> tuple[tuple[str, str], ...]:
    """The structural events of an HTML block (a guide repeats the same few blocks)."""
    if _all_comment(content):
        return ()  # an unclosed comment: nothing in it is HTML
    events = _HtmlEvents()
    events.feed(whole_tags_only(content))
    events.close()
    return tuple(events.events)


class _HtmlEvents(HTMLParser):
    """Collects the structural events of an HTML block: details, summary, h1 text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[str, str]] = []
        self._capture: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._capture and tag not in HTML_ELEMENTS:
            self._text.append(self.get_starttag_text() or "")  # <summary><LLMs> basics</summary>
        if tag in {"details", "summary"}:
            self.events.append(("open", tag))
        if tag in {"summary", "h1"}:
            self._capture, self._text = tag, []

    def handle_endtag(self, tag: str) -> None:
        if tag == self._capture:
            text = " ".join("".join(self._text).split())
            if text:
                self.events.append(("text", f"{tag}:{text}"))
            self._capture = None
        if tag in {"details", "summary"}:
            self.events.append(("close", tag))

    def handle_data(self, data: str) -> None:
        if self._capture:
            self._text.append(data)
