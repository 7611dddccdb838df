"""Turn catalog bytes into trustworthy text, refusing undecodable or mis-encoded files."""

from __future__ import annotations

import re
from pathlib import Path

# Legacy single-byte code pages that UTF-8 text is most often wrongly decoded with.
_LEGACY_CODE_PAGES = (
    ("cp1252", "Windows-1252 (Western European)"),
    ("cp1254", "Windows-1254 (Turkish)"),
    ("cp1250", "Windows-1250 (Central European)"),
    ("cp1251", "Windows-1251 (Cyrillic)"),
    ("cp1253", "Windows-1253 (Greek)"),
    ("cp1257", "Windows-1257 (Baltic)"),
    ("latin-1", "ISO-8859-1 (Latin-1)"),
    ("mac_roman", "Mac OS Roman"),
    ("cp437", "DOS code page 437"),
)


# Every character ftfy's mojibake heuristic looks for (what single-byte code pages make of UTF-8's
# high bytes: Latin-1 to Cyrillic, punctuation to box drawing, MacRoman's U+F8FF and ligatures,
# U+FFFD), in whole Unicode blocks; every pattern of ftfy.badness.is_bad needs at least one of
# them. Text without any (ASCII, CJK, emoji, ⚡) cannot be mojibake, and ftfy (≈ 30 ms to import)
# is not loaded for it. tests/test_catalog_source.py checks this set against the installed ftfy.
MOJIBAKE_CANDIDATES = re.compile("[\x80-\u04ff\u2000-\u25ff\uf8ff\ufb00-\ufb4f\ufffd]")


def looks_garbled(text: str) -> bool:
    """Whether the text looks like mojibake, by ftfy's heuristic (imported only when needed)."""
    if MOJIBAKE_CANDIDATES.search(text) is None:
        return False
    from ftfy.badness import is_bad

    return is_bad(text)


class CatalogError(Exception):
    """A catalog that cannot be used at all; the message is one line for the user."""


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def guess_legacy_code_page(text: str) -> str | None:
    """Name the code page that UTF-8 text was wrongly decoded with, when one explains it."""
    best: tuple[int, int, str] | None = None
    for codec, name in _LEGACY_CODE_PAGES:
        raw = text.encode(codec, errors="replace")
        unencodable = raw.count(b"?") - text.count("?")
        repaired = raw.decode("utf-8", errors="replace")
        undecodable = repaired.count("\ufffd")
        score = (unencodable, undecodable, name)
        if best is None or score < best:
            best = score
    if best is None:
        return None
    unencodable, undecodable, name = best
    # The explanation must account for the text: nearly every character maps back to bytes.
    if unencodable * 20 > len(text):
        return None
    return name


def decode_catalog(data: bytes, origin: str) -> str:
    """Decode catalog bytes as UTF-8, or raise CatalogError saying what is wrong and what to do."""
    if not data.strip():
        raise CatalogError(f"{origin}: the file is empty; expected a Markdown reading list")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CatalogError(
            f"{origin}: the file is UTF-16; save it as UTF-8 (without BOM) and try again"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = _line_of(data, exc.start)
        raise CatalogError(
            f"{origin}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save the guide as UTF-8 and try again"
        ) from None
    if "\x00" in text:
        raise CatalogError(f"{origin}: the file contains NUL bytes; it is not a text file")
    if looks_garbled(text):
        code_page = guess_legacy_code_page(text)
        how = (
            f"decoded with the legacy code page {code_page}"
            if code_page
            else "decoded with a legacy code page"
        )
        raise CatalogError(
            f"{origin}: garbled text (mojibake): this looks like UTF-8 that was {how} and saved "
            "again, so titles would be shown garbled; use the original UTF-8 file (e.g. download "
            "the raw file again, or open it as UTF-8 and save it as UTF-8) and try again"
        )
    return text


def read_catalog_file(path: Path) -> str:
    """Read a catalog file from disk with decode_catalog's checks."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CatalogError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CatalogError(f"{path}: is a directory, expected a Markdown file") from None
    except PermissionError:
        raise CatalogError(f"{path}: permission denied") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return decode_catalog(data, str(path))
