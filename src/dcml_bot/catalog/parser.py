"""Parse a lab's Markdown starter guide into a Catalog, on markdown-it-py's token stream."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

from dcml_bot.catalog.icons import (
    DEFAULT_LEGEND,
    KIND_ICONS,
    iter_clusters,
    normalise_icon,
    parse_legend,
)
from dcml_bot.catalog.identity import entry_id
from dcml_bot.catalog.links import derived_title, glued_warning, long_link_warning, split_glued
from dcml_bot.catalog.markup import html_events, markdown, tokenize, too_deep, unclosed_comment
from dcml_bot.catalog.models import (
    COMMON,
    Catalog,
    Entry,
    Kind,
    Level,
    Placement,
    Problem,
    Section,
    Severity,
    Topic,
    Track,
)
from dcml_bot.catalog.source import CatalogError, read_catalog_file

_ACRONYM = re.compile(r"^[(（\[]\s*(?P<acronym>[^()（）\[\]]{1,40}?)\s*[)）\]]$")
_TRIM = " \t\r\n:：-–—|,，;；+"
_LIST_OPEN = {"bullet_list_open", "ordered_list_open"}


def _block_end(tokens: list[Token], start: int) -> int:
    """Index one past the token that closes the block opened at ``start``."""
    depth = 0
    for index in range(start, len(tokens)):
        depth += tokens[index].nesting
        if depth == 0:
            return index + 1
    return len(tokens)


def _line(token: Token) -> int:
    return token.map[0] + 1 if token.map else 0


def _inline_text(children: list[Token] | None, *, with_urls: bool = True) -> str:
    """Plain text of inline tokens; links become ``text (url)`` when the url adds something."""
    parts: list[str] = []
    link_text_start: list[tuple[int, str]] = []
    for child in children or []:
        if child.type in {"text", "code_inline", "html_inline"}:
            parts.append(child.content if child.type != "html_inline" else "")
        elif child.type in {"softbreak", "hardbreak"}:
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)
        elif child.type == "link_open":
            link_text_start.append((len(parts), str(child.attrs.get("href", ""))))
        elif child.type == "link_close" and link_text_start:
            start, href = link_text_start.pop()
            text = "".join(parts[start:]).strip()
            if with_urls and href and text != href:
                parts.append(f" ({href})")
    return re.sub(r"[ \t]+", " ", "".join(parts)).strip()


@dataclass
class _Raw:
    """One listing of an entry before duplicates are merged."""

    title: str
    url: str | None
    title_from_url: bool
    level: Level | None
    level_icon: str | None
    kinds: list[Kind]
    icons: list[str]
    acronym: str | None
    notes: list[str]
    placement: Placement
    unlevelled: bool = False  # no level icon: unclassified, or essential in a guide without levels


@dataclass
class _Walk:
    """Mutable state while walking the token stream."""

    source: str
    md: MarkdownIt
    lines: list[str]
    legend: dict[str, Level]
    legend_from_file: bool
    section_level: int
    title: str | None = None
    section: str | None = None
    topic: str | None = None
    in_summary: bool = False
    sections: list[Section] = field(default_factory=list)
    topics: list[Topic] = field(default_factory=list)
    section_notes: dict[int, list[str]] = field(default_factory=dict)
    topic_notes: dict[int, list[str]] = field(default_factory=dict)
    raws: list[_Raw] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    last_list_end: int = -1
    last_list_entry: _Raw | None = None
    track: str = COMMON
    base_url: str | None = None  # what relative links resolve against
    skip_links: frozenset[str] = frozenset()  # the tracks' guides: links to them are navigation

    def problem(self, line: int, severity: Severity, message: str) -> None:
        self.problems.append(
            Problem(path=self.source, line=line, severity=severity, message=message)
        )

    def add_note(self, text: str) -> None:
        """Attach a description to the current topic, else the current section."""
        if not text:
            return
        if self.topic is not None and self.topics:
            self.topic_notes.setdefault(len(self.topics) - 1, []).append(text)
        elif self.section is not None and self.sections:
            self.section_notes.setdefault(len(self.sections) - 1, []).append(text)

    def set_section(self, name: str, line: int) -> None:
        self.section, self.topic = name, None
        self.sections.append(Section(name=name, line=line))

    def set_topic(self, name: str, line: int) -> None:
        self.topic = name
        self.topics.append(Topic(name=name, section=self.section, line=line))


def _clean_heading(text: str) -> str:
    return text.strip().lstrip("#").strip().rstrip(":：").strip()


def _heading_plan(tokens: list[Token]) -> tuple[int, bool]:
    """The heading level that marks sections, and whether a leading h1 is the guide's title."""
    levels: list[tuple[int, bool]] = []
    in_summary = False
    for token in tokens:
        if token.type == "html_block":
            for kind, tag in html_events(token.content):
                if tag == "summary" and kind in {"open", "close"}:
                    in_summary = kind == "open"
        elif token.type == "heading_open" and token.level == 0:
            levels.append((int(token.tag[1:]), in_summary))
    h1_title = (
        sum(1 for level, _ in levels if level == 1) == 1 and bool(levels) and levels[0][0] == 1
    )
    outside = [level for level, summary in levels if not summary and not (h1_title and level == 1)]
    if outside:
        return min(outside), h1_title
    inside = [level for level, _ in levels if not (h1_title and level == 1)]
    # Only summary headings: there are no sections, every heading is a topic.
    return (min(inside) - 1 if inside else 3), h1_title


def _find_legend(tokens: list[Token]) -> dict[str, Level]:
    """The first legend paragraph or blockquote in the guide, if any."""
    for token in tokens:
        if token.type == "inline":
            legend = parse_legend(_inline_text(token.children, with_urls=False))
            if legend:
                return legend
    return {}


def _split_prefix(text: str, legend: dict[str, Level]) -> tuple[str | None, list[str], str]:
    """Split the text before a link into (level icon, kind icons, remaining words)."""
    level_icon: str | None = None
    icons: list[str] = []
    words: list[str] = []
    for chunk, is_emoji in iter_clusters(text):
        if is_emoji:
            icon = normalise_icon(chunk)
            if level_icon is None and not icons and not "".join(words).strip() and icon in legend:
                level_icon = icon
            elif "".join(words).strip():
                words.append(chunk)
            else:
                icons.append(icon)
        elif chunk.strip().strip("+").strip() or words:
            words.append(chunk)
    return level_icon, icons, "".join(words).strip(_TRIM)


def _single_emoji(text: str) -> str | None:
    clusters = [c for c in iter_clusters(text.strip()) if c[0].strip()]
    if len(clusters) == 1 and clusters[0][1]:
        return normalise_icon(clusters[0][0])
    return None


def _parse_item_inline(walk: _Walk, children: list[Token], line: int) -> _Raw | None:
    """Turn the first paragraph of a list item into a raw entry, or None for prose bullets."""
    level_icon: str | None = None
    explicit_marker = False
    rest = list(children)
    while rest and rest[0].type == "text" and not rest[0].content.strip():
        rest.pop(0)
    if rest and rest[0].type == "code_inline":
        marker = _single_emoji(rest[0].content)
        if marker is not None or not rest[0].content.strip():
            level_icon = marker
            explicit_marker = True
            rest.pop(0)

    prefix_parts: list[str] = []
    link: tuple[str, str, bool] | None = None
    trailing: list[Token] = []
    index = 0
    while index < len(rest):
        child = rest[index]
        if child.type == "link_open" and link is None:
            end = index + 1
            while end < len(rest) and rest[end].type != "link_close":
                end += 1
            href = str(child.attrs.get("href", "")).strip()
            text = _inline_text(rest[index + 1 : end], with_urls=False)
            link = (href, text, child.markup == "linkify" or text.strip() == href)
            index = end + 1
            continue
        if link is None:
            if child.type in {"text", "code_inline"}:
                prefix_parts.append(child.content)
            elif child.type in {"softbreak", "hardbreak"}:
                prefix_parts.append(" ")
        else:
            trailing.append(child)
        index += 1

    if link is not None and link[0].partition("#")[0] in walk.skip_links:
        return None  # a link to a track's guide (or a heading in it): navigation, not reading
    inline_level, icons, words = _split_prefix("".join(prefix_parts), walk.legend)
    if level_icon is None and not explicit_marker:
        level_icon = inline_level
    elif inline_level is not None:
        icons.insert(0, inline_level)

    if level_icon is None and link is None:
        if not explicit_marker and (words or icons):
            return None  # a prose bullet, not an entry
        walk.problem(line, Severity.WARNING, "empty list item; ignored")
        return None
    if link is None and not words:
        walk.problem(
            line,
            Severity.WARNING,
            f"empty entry: level {level_icon or '?'} but no title or link; ignored",
        )
        return None

    acronym: str | None = None
    url: str | None = None
    title_from_url = False
    glued: list[str] = []
    if link is not None:
        href, link_text, bare = link
        href, *glued = split_glued(href)
        if glued:
            walk.problem(line, Severity.WARNING, glued_warning([href, *glued]))
        url = href or None
        match = _ACRONYM.match(words)
        if match:
            acronym, words = match.group("acronym").strip(), ""
        if bare:
            title = words or derived_title(href)
            title_from_url = not words
            if title_from_url:
                walk.problem(
                    line, Severity.WARNING, f"bare link without a title; shown as {title!r}"
                )
        else:
            title = f"{words} {link_text}".strip() if words else link_text
            if not title:
                title, title_from_url = derived_title(href), True
        url = _resolve(walk, url, line)
        too_long = long_link_warning(url) if url else None
        if too_long:
            walk.problem(line, Severity.WARNING, too_long)
    else:
        title = words
        walk.problem(line, Severity.WARNING, f"entry has no link: {title}")

    level: Level | None = None
    if level_icon is not None:
        level = walk.legend.get(level_icon)
        if level is None:
            known = ", ".join(f"{icon} {lvl.value}" for icon, lvl in walk.legend.items())
            walk.problem(
                line,
                Severity.ERROR,
                f"unknown level icon {level_icon} (the legend defines {known})",
            )

    kinds: list[Kind] = []
    for icon in icons:
        kind = KIND_ICONS.get(icon, Kind.OTHER)
        if kind not in kinds:
            kinds.append(kind)
    notes: list[str] = []
    extra = _inline_text(trailing).strip(_TRIM)
    wrapped = _ACRONYM.match(extra)
    if wrapped:
        extra = wrapped.group("acronym")  # "(CVPR 2024)" -> "CVPR 2024"
    if extra:
        notes.append(extra)
    notes += glued
    return _Raw(
        title=" ".join(title.split()),
        url=url,
        title_from_url=title_from_url,
        level=level,
        level_icon=level_icon,
        kinds=kinds,
        icons=icons,
        acronym=acronym,
        notes=notes,
        placement=Placement(section=walk.section, topic=walk.topic, line=line, track=walk.track),
        unlevelled=level_icon is None,
    )


def _resolve(walk: _Walk, url: str | None, line: int) -> str | None:
    """A link made absolute against the guide's address; relative ones without one are warned."""
    if not url or urlsplit(url).scheme in {"http", "https"}:
        return url
    if urlsplit(url).scheme or url.startswith("#"):
        walk.problem(line, Severity.WARNING, f"link is not an http(s) URL: {url}")
        return url
    if walk.base_url is None:
        walk.problem(
            line,
            Severity.WARNING,
            f"relative link {url} is shown as is: set link_base to the repository's web address "
            "(or serve the guide from its URL) to resolve it",
        )
        return url
    return urljoin(walk.base_url, url)


def _quote_text(tokens: list[Token]) -> str:
    """Text of a blockquote or list body, one line per paragraph, list items numbered."""
    lines: list[str] = []
    marker = ""
    for token in tokens:
        if token.type == "list_item_open":
            marker = f"{token.info}{token.markup} " if token.info else "• "
        elif token.type == "inline":
            text = _inline_text(token.children)
            if text:
                lines.append(marker + text)
                marker = ""
        elif token.type in {"fence", "code_block"}:
            lines.append(token.content.rstrip())
    return "\n".join(lines)


def _walk_list(walk: _Walk, tokens: list[Token], parent: _Raw | None) -> _Raw | None:
    """Walk a list block; returns the last entry it produced."""
    last: _Raw | None = None
    index = 1
    while index < len(tokens) - 1:
        token = tokens[index]
        if token.type != "list_item_open":
            index += 1
            continue
        end = _block_end(tokens, index)
        item = tokens[index + 1 : end - 1]
        line = _line(token)
        raw: _Raw | None = None
        prose: list[str] = []
        first = True
        inner = 0
        while inner < len(item):
            block = item[inner]
            block_end = _block_end(item, inner) if block.nesting == 1 else inner + 1
            body = item[inner:block_end]
            if first and block.type == "paragraph_open":
                children = body[1].children or []
                raw = _parse_item_inline(walk, children, line)
                if raw is None:
                    prose.append(_inline_text(children))
            elif first and block.type == "code_block":
                # "-      `⚡` …" (too many spaces after the dash) tokenises as indented code.
                parsed = walk.md.parseInline(block.content.strip())
                children = parsed[0].children or [] if parsed else []
                raw = _parse_item_inline(walk, children, line)
                if raw is None:
                    prose.append(block.content.strip())
            elif block.type in _LIST_OPEN:
                nested_last = _walk_list(walk, body, raw or parent)
                if nested_last is None and raw is None:
                    prose.append(_quote_text(body))
            else:
                text = _quote_text(body)
                if text:
                    (raw.notes if raw else prose).append(text)
            first = False
            inner = block_end
        if first:
            walk.problem(line, Severity.WARNING, "empty list item; ignored")
        if raw is not None:
            walk.raws.append(raw)
            last = raw
        else:
            text = "\n".join(p for p in prose if p)
            if parent is not None:
                parent.notes.append(text)
            else:
                walk.add_note(text)
        index = end
    return last


def _handle_html(walk: _Walk, token: Token) -> None:
    if unclosed_comment(token) and token.map:
        # markdown-it, like GitHub, reads everything after an unclosed comment as the comment.
        walk.problem(
            _line(token),
            Severity.WARNING,
            f"unclosed <!-- comment hides the rest of the guide (lines {_line(token)}–"
            f"{token.map[1]}), as on GitHub; close it with -->",
        )
    for kind, value in html_events(token.content):
        if kind == "open" and value == "details":
            walk.topic = None
        elif kind == "close" and value == "details":
            walk.topic = None
            walk.in_summary = False
        elif value == "summary":
            walk.in_summary = kind == "open"
        elif kind == "text" and value.startswith("summary:"):
            name = _clean_heading(value.removeprefix("summary:"))
            if name:
                walk.set_topic(name, _line(token))
        elif kind == "text" and value.startswith("h1:") and walk.title is None:
            walk.title = value.removeprefix("h1:").strip()


def _links_a_guide(walk: _Walk, children: list[Token] | None) -> bool:
    return any(
        child.type == "link_open"
        and str(child.attrs.get("href", "")).partition("#")[0] in walk.skip_links
        for child in children or ()
    )


def _is_legend(walk: _Walk, text: str) -> bool:
    return walk.legend_from_file and bool(parse_legend(text))


def parse_catalog(
    text: str,
    source: str = "<catalog>",
    *,
    track: str = COMMON,
    base_url: str | None = None,
    skip_links: frozenset[str] = frozenset(),
    allow_empty: bool = False,
    tokens: list[Token] | None = None,
) -> Catalog:
    """Parse guide text into a Catalog; raises CatalogError when it holds no entries.

    ``track`` names the guide's track; relative links resolve against ``base_url``; links to
    ``skip_links`` (other guides, with or without an anchor) are navigation, not entries.
    ``allow_empty``: an index may list nothing but its tracks. ``tokens``: from :func:`tokenize`.
    """
    md = markdown()
    tokens = tokens if tokens is not None else tokenize(text)
    file_legend = _find_legend(tokens)
    section_level, h1_title = _heading_plan(tokens)
    walk = _Walk(
        source=source,
        md=md,
        lines=text.splitlines(),
        legend=file_legend or dict(DEFAULT_LEGEND),
        legend_from_file=bool(file_legend),
        section_level=section_level,
        track=track,
        base_url=base_url,
        skip_links=skip_links,
    )
    deep = too_deep(tokens)
    if deep is not None and deep.map:
        walk.problem(
            _line(deep),
            Severity.WARNING,
            f"lists or quotes nested too deep: lines {_line(deep)}–{deep.map[1]} are not read; "
            "nest fewer levels",
        )
    index = 0
    while index < len(tokens):
        token = tokens[index]
        end = _block_end(tokens, index) if token.nesting == 1 else index + 1
        body = tokens[index:end]
        if token.type == "html_block":
            _handle_html(walk, token)
        elif token.type == "heading_open":
            name = _clean_heading(_inline_text(body[1].children, with_urls=False))
            level = int(token.tag[1:])
            if h1_title and level == 1 and walk.title is None:
                walk.title = name
            elif _links_a_guide(walk, body[1].children):
                walk.topic = None  # an index heading that links a track's guide: not a topic
            elif name and (walk.in_summary or level > walk.section_level):
                walk.set_topic(name, _line(token))
            elif name:
                walk.set_section(name, _line(token))
        elif token.type in _LIST_OPEN:
            walk.last_list_entry = _walk_list(walk, body, None)
            walk.last_list_end = token.map[1] if token.map else -1
        elif token.type == "blockquote_open":
            note = _quote_text(body)
            start = token.map[0] if token.map else -1
            follows_list = (
                start >= 1
                and walk.last_list_end == start
                and walk.lines[start - 1].strip() != ""
                and walk.last_list_entry is not None
            )
            if _is_legend(walk, note):
                pass
            elif follows_list and walk.last_list_entry is not None:
                walk.last_list_entry.notes.append(note)
            else:
                walk.add_note(note)
        elif token.type == "paragraph_open":
            note = _quote_text(body)
            if not _is_legend(walk, note):
                walk.add_note(note)
        if token.type not in _LIST_OPEN:
            walk.last_list_entry = None
        index = end
    return _assemble(walk, allow_empty)


def _assemble(walk: _Walk, allow_empty: bool) -> Catalog:
    """Merge listings of the same item and freeze the result."""
    merged: dict[str, _Raw] = {}
    placements: dict[str, list[Placement]] = {}
    if not any(raw.level is not None or raw.level_icon for raw in walk.raws):
        # A guide without any level icon (an index's starter list): everything is essential.
        for raw in walk.raws:
            raw.level = Level.ESSENTIAL
    else:
        for raw in walk.raws:
            if raw.unlevelled:
                walk.problem(
                    raw.placement.line,
                    Severity.WARNING,
                    f"entry has no level icon; listed as unclassified: {raw.title}",
                )
    for raw in walk.raws:
        key = entry_id(raw.url, raw.title)
        first = merged.get(key)
        if first is None:
            merged[key] = raw
            placements[key] = [raw.placement]
            continue
        placements[key].append(raw.placement)
        line = raw.placement.line
        if first.title_from_url and not raw.title_from_url:
            first.title, first.title_from_url = raw.title, False
        elif not raw.title_from_url and raw.title.casefold() != first.title.casefold():
            walk.problem(
                line,
                Severity.WARNING,
                f"same item as line {first.placement.line} under a different title: "
                f"{raw.title!r} vs {first.title!r} (keeping the first)",
            )
        if raw.level is not None and first.level is not None and raw.level != first.level:
            walk.problem(
                line,
                Severity.WARNING,
                f"same item as line {first.placement.line} with a different level: "
                f"{raw.level.value} vs {first.level.value} (keeping the first)",
            )
        elif first.level is None and first.level_icon is None:
            first.level, first.level_icon = raw.level, raw.level_icon
        for kind in raw.kinds:
            if kind not in first.kinds:
                first.kinds.append(kind)
        for icon in raw.icons:
            if icon not in first.icons:
                first.icons.append(icon)
        for note in raw.notes:
            if note not in first.notes:
                first.notes.append(note)
        first.acronym = first.acronym or raw.acronym

    if not merged and not allow_empty:
        raise CatalogError(
            f"{walk.source}: no reading-list entries found "
            "(expected list items such as - `⚡` 📄 [Title](https://…))"
        )
    entries = tuple(
        Entry(
            id=key,
            title=raw.title,
            url=raw.url,
            level=raw.level,
            level_icon=raw.level_icon,
            kinds=tuple(raw.kinds),
            icons=tuple(raw.icons),
            acronym=raw.acronym,
            notes=tuple(n for n in raw.notes if n),
            placements=tuple(replace(p, level=raw.level) for p in placements[key]),
            position=position,
        )
        for position, (key, raw) in enumerate(merged.items())
    )
    sections = tuple(
        replace(s, notes=tuple(walk.section_notes.get(i, ()))) for i, s in enumerate(walk.sections)
    )
    topics = tuple(
        replace(t, notes=tuple(walk.topic_notes.get(i, ()))) for i, t in enumerate(walk.topics)
    )
    problems = tuple(sorted(walk.problems, key=lambda p: (p.line, p.severity != Severity.ERROR)))
    return Catalog(
        source=walk.source,
        title=walk.title,
        legend=walk.legend,
        legend_from_file=walk.legend_from_file,
        sections=sections,
        topics=topics,
        entries=entries,
        listings=len(walk.raws),
        problems=problems,
        tracks=(Track(name=walk.track, title=walk.title or walk.source, source=walk.source),),
    )


def load_catalog(path: Path | str) -> Catalog:
    """Read and parse a catalog file; raises CatalogError with a one-line message."""
    path = Path(path)
    return parse_catalog(read_catalog_file(path), str(path))
