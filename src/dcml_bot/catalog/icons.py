"""Level and kind icons: emoji clustering, the default tables and the guide's own legend."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

from dcml_bot.catalog.models import Kind, Level

_VARIATION_SELECTORS = "\ufe0e\ufe0f"
_ZWJ = "\u200d"

DEFAULT_LEGEND: dict[str, Level] = {
    "⚡": Level.ESSENTIAL,
    "💎": Level.OPTIONAL,
    "💡": Level.ADVANCED,
}

KIND_ICONS: dict[str, Kind] = {
    "📄": Kind.PAPER,
    "🔧": Kind.CODE,
    "💭": Kind.PAPER,
    "🗞": Kind.COURSE,
    "🎓": Kind.COURSE,
    "📔": Kind.BOOK,
    "📦": Kind.BOOK,
    "🛠": Kind.TOOL,
    "🧑\u200d🏫": Kind.TUTORIAL,
}

# Words a legend label may contain, mapped to the level they name (checked in this order).
_LABEL_WORDS: tuple[tuple[Level, tuple[str, ...]], ...] = (
    (Level.ADVANCED, ("进阶", "進階", "advanced", "further", "深入")),
    (Level.OPTIONAL, ("选读", "選讀", "optional", "recommended", "可选", "推荐")),
    (Level.ESSENTIAL, ("必读", "必讀", "essential", "must", "required", "core")),
)

_LEGEND_LABEL = re.compile(
    r"^\s*(?:为|是|=|:|：|->|→|-|–|—|is\b|means\b)?\s*(?P<label>[^,，;；、。|/\n]+)", re.IGNORECASE
)


def normalise_icon(icon: str) -> str:
    """Drop emoji variation selectors so ``⚡️`` and ``⚡`` compare equal."""
    return "".join(ch for ch in icon if ch not in _VARIATION_SELECTORS).strip()


def _is_pictograph(ch: str) -> bool:
    if ch in _VARIATION_SELECTORS or ch == _ZWJ:
        return False
    cat = unicodedata.category(ch)
    if cat == "So":
        return True
    # Skin-tone modifiers and regional indicators are symbols in all but category.
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF or 0x1F3FB <= ord(ch) <= 0x1F3FF


def iter_clusters(text: str) -> Iterator[tuple[str, bool]]:
    """Split text into emoji clusters (ZWJ sequences, modifiers) and plain runs.

    Yields ``(chunk, is_emoji)`` pairs in order.
    """
    i, n = 0, len(text)
    plain: list[str] = []
    while i < n:
        ch = text[i]
        if not _is_pictograph(ch):
            plain.append(ch)
            i += 1
            continue
        if plain:
            yield "".join(plain), False
            plain = []
        j = i + 1
        while j < n:
            nxt = text[j]
            if nxt in _VARIATION_SELECTORS or 0x1F3FB <= ord(nxt) <= 0x1F3FF:
                j += 1
            elif nxt == _ZWJ and j + 1 < n and _is_pictograph(text[j + 1]):
                j += 2
            else:
                break
        yield text[i:j], True
        i = j
    if plain:
        yield "".join(plain), False


def level_for_label(label: str) -> Level | None:
    """The level a legend label such as ``基础必读`` or ``Essential`` names."""
    folded = label.casefold()
    for level, words in _LABEL_WORDS:
        if any(word in folded for word in words):
            return level
    return None


def parse_legend(text: str) -> dict[str, Level]:
    """Read ``⚡为基础必读,💎为基础选读…`` style legends; empty when text is not a legend."""
    legend: dict[str, Level] = {}
    folded = text.casefold()
    if not any(word in folded for _, words in _LABEL_WORDS for word in words):
        return legend  # no level label at all: most paragraphs, found without splitting emoji
    chunks = list(iter_clusters(text))
    for index, (chunk, is_emoji) in enumerate(chunks):
        if not is_emoji or index + 1 >= len(chunks):
            continue
        match = _LEGEND_LABEL.match(chunks[index + 1][0])
        if match is None:
            continue
        level = level_for_label(match.group("label"))
        icon = normalise_icon(chunk)
        if level is not None and icon not in legend:
            legend[icon] = level
    # A single icon-and-label pair is a sentence, not a legend.
    return legend if len(legend) >= 2 else {}
