"""The message tables: both languages have every key with the same placeholders, and every key
the code asks for by name is in them (a missing Chinese key would silently show English)."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

from dcml_bot.core import i18n

SRC = Path(__file__).resolve().parents[1] / "src" / "dcml_bot"


def placeholders(message: str) -> set[str]:
    """The ``{names}`` a message is formatted with."""
    return {name for _, name, _, _ in string.Formatter().parse(message) if name is not None}


def tables() -> dict[str, dict[str, str]]:
    return {lang: i18n._TABLES[lang] for lang in i18n.LANGUAGES}


def keys_used(root: Path = SRC) -> dict[str, list[str]]:
    """Every literal key passed to ``text(lang, "key", …)`` in the source, with where."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            key = node.args[1]
            if name != "text":
                continue
            where = f"{path.relative_to(root)}:{node.lineno}"
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                found.setdefault(key.value, []).append(where)
            elif isinstance(key, ast.JoinedStr) and isinstance(key.values[0], ast.Constant):
                # f"level.{…}": some key must start with the literal part ("level.*")
                found.setdefault(f"{key.values[0].value}*", []).append(where)
    return found


def known(key: str) -> bool:
    """Whether the English table has the key (or, for ``prefix*``, a key with that prefix)."""
    if key.endswith("*"):
        return any(k.startswith(key[:-1]) for k in tables()["en"])
    return key in tables()["en"]


def mismatches(en: dict[str, str], zh: dict[str, str]) -> list[str]:
    """What differs between two tables: keys only in one, placeholders that differ."""
    problems = [f"{key}: only in English" for key in en.keys() - zh.keys()]
    problems += [f"{key}: only in Chinese" for key in zh.keys() - en.keys()]
    for key in en.keys() & zh.keys():
        if placeholders(en[key]) != placeholders(zh[key]):
            problems.append(f"{key}: {placeholders(en[key])} != {placeholders(zh[key])}")
    return sorted(problems)


def test_every_language_has_every_key_with_the_same_placeholders() -> None:
    assert mismatches(tables()["en"], tables()["zh"]) == []


def test_the_check_catches_a_missing_key_and_a_renamed_placeholder() -> None:
    en = dict(tables()["en"])
    zh = dict(tables()["zh"])
    del zh["help.header"]
    zh["done.ok"] = "已标记为已读：{name}"
    assert mismatches(en, zh) == [
        "done.ok: {'title'} != {'name'}",
        "help.header: only in English",
    ]


def test_every_key_the_code_names_is_in_the_tables() -> None:
    used = keys_used()
    assert len(used) > 100  # the scan finds the calls (it would pass vacuously otherwise)
    assert "level.*" in used and "digest.invite.*" in used  # and the f-string ones
    missing = {key: where for key, where in used.items() if not known(key)}
    assert missing == {}


def test_the_scan_sees_a_key_that_is_not_there(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(
        'from dcml_bot.core.i18n import text\nx = text("en", "no.such.key", n=1)\n'
        'y = text("zh", f"nowhere.{x}")\n'
    )
    assert keys_used(tmp_path) == {"no.such.key": ["mod.py:2"], "nowhere.*": ["mod.py:3"]}
    assert not known("no.such.key") and not known("nowhere.*") and known("level.*")


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_weekdays_are_named_in_every_language(lang: str) -> None:
    assert i18n.WEEKDAYS[lang].keys() == i18n.WEEKDAYS["en"].keys()
