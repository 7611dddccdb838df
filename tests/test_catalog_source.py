"""Bytes to text: UTF-8 only, and mis-encoded (mojibake) guides refused with a useful message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dcml_bot.catalog import CatalogError, decode_catalog, load_catalog, read_catalog_file
from dcml_bot.catalog.source import guess_legacy_code_page

DATA = Path(__file__).parent / "data"
GUIDE = Path(__file__).resolve().parent.parent / "config" / "catalog" / "dcml.md"


def test_the_as_received_guide_is_refused_naming_the_code_page() -> None:
    with pytest.raises(CatalogError) as info:
        read_catalog_file(DATA / "dcml-as-received.txt")
    message = str(info.value)
    assert "\n" not in message
    assert "dcml-as-received.txt" in message
    assert "UTF-8" in message and "legacy code page" in message
    assert "Windows-1254" in message
    assert "original UTF-8 file" in message


@pytest.mark.parametrize("code_page", ["cp1252", "cp1250", "cp1251"])
def test_mojibake_from_other_code_pages_is_refused(code_page: str) -> None:
    text = GUIDE.read_text(encoding="utf-8")
    garbled = text.encode("utf-8").decode(code_page, errors="ignore").encode("utf-8")
    with pytest.raises(CatalogError, match="mojibake"):
        decode_catalog(garbled, "guide.md")


def test_code_page_guess() -> None:
    text = "### 数据侧基础\n- `⚡` 📄 [多模态大模型入门文档](https://example.org)\n"
    garbled = text.encode("utf-8").decode("cp1254", errors="ignore")
    assert guess_legacy_code_page(garbled) == "Windows-1254 (Turkish)"


def test_the_real_guides_are_not_mistaken_for_mojibake() -> None:
    assert decode_catalog(GUIDE.read_bytes(), "x").startswith("<p align")
    assert "数据侧基础" in decode_catalog((DATA / "dcml-2024-10-31-fd72b2f.md").read_bytes(), "x")


def test_utf8_bom_is_accepted() -> None:
    data = b"\xef\xbb\xbf### S\n\n- `\xe2\x9a\xa1` [T](https://a.org)\n"
    assert decode_catalog(data, "x").startswith("### S")


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"", r"^g\.md: the file is empty"),
        (b"  \n\n", r"^g\.md: the file is empty"),
        ("### 数据\n- x\n".encode("gbk"), r"^g\.md:1: not UTF-8 text \(byte 0xca at offset 4\)"),
        ("### S\n\n- café".encode("latin-1"), r"^g\.md:3: not UTF-8 text"),
        ("### S".encode("utf-16"), r"^g\.md: the file is UTF-16"),
        (b"### S\x00\x00", r"^g\.md: the file contains NUL bytes"),
    ],
)
def test_bad_bytes_are_one_line_errors(data: bytes, pattern: str) -> None:
    with pytest.raises(CatalogError, match=pattern) as info:
        decode_catalog(data, "g.md")
    assert "\n" not in str(info.value)


def test_missing_path_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no such file"):
        load_catalog(tmp_path / "missing.md")
    with pytest.raises(CatalogError, match="is a directory"):
        load_catalog(tmp_path)


def test_the_mojibake_prefilter_covers_every_character_ftfy_looks_for() -> None:
    # decode_catalog skips ftfy (and its import) for text with no MOJIBAKE_CANDIDATES character;
    # that is sound only if every pattern of ftfy's heuristic needs one of them.
    from ftfy import badness

    from dcml_bot.catalog.source import MOJIBAKE_CANDIDATES

    looked_for = {c for c in badness.BADNESS_RE.pattern if ord(c) > 127}
    for chars in badness.MOJIBAKE_CATEGORIES.values():
        for start, end in re.findall(r"(.)-(.)", chars):
            looked_for.update(map(chr, range(ord(start), ord(end) + 1)))
        assert all(ord(c) > 127 for c in chars.replace("-", ""))  # no ASCII class
    missed = sorted(c for c in looked_for if not MOJIBAKE_CANDIDATES.match(c))
    assert missed == []
    # The guide itself (CJK, emoji, ⚡) has none, so reading it never loads ftfy.
    assert MOJIBAKE_CANDIDATES.search(GUIDE.read_text(encoding="utf-8")) is None
