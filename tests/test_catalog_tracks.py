"""Tracks in the catalog: an index's headings become tracks; guides load and fail one by one.

tests/data/starter-guide/ is the lab's Starter-Guide layout (index + four of its eight direction
guides; see SOURCE.md there); the index's other four links point at guides that are not there,
as on a lab that has not written them yet.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dcml_bot.catalog import Level, parse_catalog
from dcml_bot.catalog.guides import Guides, TrackSource
from dcml_bot.catalog.query import parse_query, run_query

STARTER = Path(__file__).resolve().parent / "data" / "starter-guide"
INDEX = STARTER / "Readme.md"
BASE = "https://github.com/PKU-DAIR/Starter-Guide/blob/main/"
MISSING = ("database", "aiAgents", "diffusion", "science")


def test_the_index_headings_become_tracks_named_after_their_folders() -> None:
    loaded = Guides(str(INDEX), link_base=BASE).load()
    catalog = loaded.catalog
    assert catalog is not None
    assert [(t.name, t.title) for t in catalog.tracks] == [
        ("common", "✨ 科研入门指南"),
        ("systems", "AI系统方向"),
        ("autoML", "AutoML方向"),
        ("dcml", "Data-Centric ML方向"),
        ("graphs", "Graph方向"),
    ]
    # The four guides that are not there: one line each, naming the index line that links them.
    index_text = INDEX.read_text(encoding="utf-8").splitlines()
    assert len(loaded.errors) == len(MISSING)
    for error, name in zip(loaded.errors, MISSING, strict=True):
        path, line, rest = error.split(":", 2)
        assert path == str(INDEX)
        assert f"docs/{name}/Readme.md" in index_text[int(line) - 1]
        assert rest.startswith(f" track {name}: ") and rest.endswith("no such file")
    # Navigation lists (links to the guides and their headings) are not entries.
    assert not [e for e in catalog.entries if e.url and "/Readme.md#" in e.url]
    common = [e for e in catalog.entries if e.tracks == ("common",)]
    assert len(common) == 9
    # The research starter list has no level icons: everything in it is essential, unwarned.
    assert {e.level for e in common} == {Level.ESSENTIAL}
    assert not [p for p in catalog.problems if "no level icon" in p.message]
    counts = {t.name: sum(t.name in e.tracks for e in catalog.entries) for t in catalog.tracks}
    assert counts == {"common": 9, "systems": 78, "autoML": 40, "dcml": 43, "graphs": 69}


def test_relative_links_resolve_against_link_base_else_are_warned() -> None:
    with_base = Guides(str(INDEX), link_base=BASE.rstrip("/")).load().catalog
    assert with_base is not None
    urls = {e.url for e in with_base.entries if e.tracks == ("common",)}
    assert BASE + "docs/tutorials/Readme.md" in urls
    assert BASE + "docs/tutorials/how_to_do_research.md" in urls
    assert not [p for p in with_base.problems if "relative link" in p.message]

    bare = Guides(str(INDEX)).load().catalog
    assert bare is not None
    assert "docs/tutorials/Readme.md" in {e.url for e in bare.entries}
    warned = [str(p) for p in bare.problems if "relative link" in p.message]
    assert warned == [
        f"{INDEX}:38: warning: relative link docs/tutorials/how_to_do_research.md is shown as "
        "is: set link_base to the repository's web address (or serve the guide from its URL) "
        "to resolve it",
        f"{INDEX}:40: warning: relative link docs/tutorials/Readme.md is shown as is: set "
        "link_base to the repository's web address (or serve the guide from its URL) to "
        "resolve it",
    ]


@pytest.fixture
def served() -> Iterator[str]:
    """The starter guide over HTTP (a missing guide answers 404)."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(STARTER))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_an_index_at_a_url_reads_each_guide_at_its_url(served: str) -> None:
    loaded = Guides(served + "Readme.md").load()
    catalog = loaded.catalog
    assert catalog is not None
    assert [t.name for t in catalog.tracks] == ["common", "systems", "autoML", "dcml", "graphs"]
    assert {t.source for t in catalog.tracks[1:]} == {
        f"{served}docs/{name}/Readme.md" for name in ("systems", "autoML", "dcml", "graphs")
    }
    # Relative links resolve against the index's own URL.
    assert served + "docs/tutorials/Readme.md" in {e.url for e in catalog.entries}
    assert len(loaded.errors) == 4
    assert all("HTTP 404" in error for error in loaded.errors)


def _index(root: Path, *tracks: str, extra: str = "") -> Path:
    lines = [
        "# Lab guide",
        "",
        "## Start here",
        "",
        "- 📄 [Common](https://arxiv.org/abs/2301.00001)",
    ]
    for name in tracks:
        lines += ["", f"### {name.split('/')[-1].title()} [🔗](docs/{name}/Readme.md)", ""]
        lines += [f"- [Intro](docs/{name}/Readme.md#intro)"]
    (root / "Readme.md").write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return root / "Readme.md"


def _guide(root: Path, name: str, *items: str) -> Path:
    path = root / "docs" / name / "Readme.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = ["# " + name, "", "> ⚡ essential, 💎 optional, 💡 advanced", "", "### Intro", ""]
    path.write_text("\n".join([*body, *items]) + "\n", encoding="utf-8")
    return path


def test_one_item_in_two_tracks_is_one_entry_that_knows_both(tmp_path: Path) -> None:
    index = _index(tmp_path, "a", "b")
    _guide(tmp_path, "a", "- `⚡` 📄 [Shared](https://arxiv.org/abs/2302.00002)")
    _guide(
        tmp_path,
        "b",
        "- `💎` 📄 [Shared, titled again](http://arxiv.org/pdf/2302.00002v2)",
        "- `⚡` 📄 [Only b](https://arxiv.org/abs/2302.00003)",
    )
    catalog = Guides(str(index)).load().catalog
    assert catalog is not None
    shared = catalog.get("arxiv:2302.00002")
    assert shared is not None
    assert shared.tracks == ("a", "b")
    assert shared.title == "Shared"  # the first listing's
    assert shared.level_in({"a"}) is Level.ESSENTIAL
    assert shared.level_in({"b"}) is Level.OPTIONAL
    assert shared.level_in({"common", "b"}) is Level.OPTIONAL
    assert shared.level is Level.ESSENTIAL  # its most essential level anywhere
    assert len(catalog.entries) == 3
    # A query scoped to b sees the shared paper at b's level.
    essential_in_b = run_query(catalog, parse_query("essential", catalog), {"b"})
    assert [e.id for e in essential_in_b] == ["arxiv:2302.00003"]
    optional_in_b = run_query(catalog, parse_query("optional", catalog), {"b"})
    assert [e.id for e in optional_in_b] == ["arxiv:2302.00002"]


def test_a_broken_guide_keeps_its_last_good_version_and_only_it(tmp_path: Path) -> None:
    index = _index(tmp_path, "a", "b")
    _guide(tmp_path, "a", "- `⚡` 📄 [A1](https://arxiv.org/abs/2303.00001)")
    guide_b = _guide(tmp_path, "b", "- `⚡` 📄 [B1](https://arxiv.org/abs/2303.00002)")
    guides = Guides(str(index))
    first = guides.load()
    assert first.errors == () and first.changed
    assert first.catalog is not None and len(first.catalog.entries) == 3

    _guide(
        tmp_path,
        "a",
        "- `⚡` 📄 [A1](https://arxiv.org/abs/2303.00001)",
        "- `⚡` 📄 [A2](https://arxiv.org/abs/2303.00004)",
    )
    guide_b.write_text(guide_b.read_text() + "- `🔥` 📄 [B2](https://arxiv.org/abs/2303.00003)\n")
    second = guides.load()
    assert second.catalog is not None and second.changed
    ids = {e.id for e in second.catalog.entries}
    assert "arxiv:2303.00004" in ids  # a's new version is served
    assert "arxiv:2303.00002" in ids and "arxiv:2303.00003" not in ids  # b's last good one
    assert any(e.startswith(f"{guide_b}:8: error: unknown level icon 🔥") for e in second.errors)
    assert any("track b: serving its last good version" in e for e in second.errors)

    guide_b.unlink()
    third = guides.load()
    assert third.catalog is not None
    assert "arxiv:2303.00002" in {e.id for e in third.catalog.entries}
    assert any("track b:" in e and "no such file" in e for e in third.errors)
    assert any("track b: serving its last good version" in e for e in third.errors)


def test_nothing_changed_serves_the_same_catalog_object(tmp_path: Path) -> None:
    index = _index(tmp_path, "a")
    _guide(tmp_path, "a", "- `⚡` 📄 [A1](https://arxiv.org/abs/2303.00001)")
    guides = Guides(str(index))
    first = guides.load()
    again = guides.load()
    assert again.catalog is first.catalog and not again.changed


def test_duplicate_and_reserved_track_names_are_refused_one_line_each(tmp_path: Path) -> None:
    index = _index(tmp_path, "x/systems", "y/systems", "paper", "ok")
    for name in ("x/systems", "y/systems", "paper", "ok"):
        _guide(tmp_path, name, f"- `⚡` 📄 [{name}](https://example.org/{name})")
    loaded = Guides(str(index)).load()
    assert loaded.catalog is not None
    assert [t.name for t in loaded.catalog.tracks] == ["common", "systems", "ok"]
    assert len(loaded.errors) == 2
    duplicate, reserved = loaded.errors
    assert f"track name 'systems' is already used by {index}:" in duplicate
    assert "track name 'paper' is also a level, kind or query word" in reserved
    # The refused guides' navigation links are still not entries.
    assert not [e for e in loaded.catalog.entries if e.url and "Readme.md#" in e.url]


def test_config_tables_rename_retitle_and_add_tracks(tmp_path: Path) -> None:
    index = _index(tmp_path, "paper", "b")
    guide_paper = _guide(tmp_path, "paper", "- `⚡` 📄 [P](https://arxiv.org/abs/2304.00001)")
    _guide(tmp_path, "b", "- `⚡` 📄 [B](https://arxiv.org/abs/2304.00002)")
    extra = _guide(tmp_path / "elsewhere", "z", "- `💎` 📄 [Z](https://arxiv.org/abs/2304.00003)")
    tracks = {
        "basics": TrackSource(name="basics", catalog=str(guide_paper)),  # renames `paper`
        "b": TrackSource(name="b", title="Bee direction"),
        "zed": TrackSource(name="zed", catalog=str(extra), title="Zed"),
    }
    loaded = Guides(str(index), tracks=tracks).load()
    assert loaded.catalog is not None
    assert [(t.name, t.title) for t in loaded.catalog.tracks] == [
        ("common", "Start here"),
        ("basics", "Paper"),
        ("b", "Bee direction"),
        ("zed", "Zed"),
    ]
    assert loaded.errors == ()  # `paper` alone would be refused; the config renamed it
    bad = Guides(str(index), tracks={"nothing": TrackSource(name="nothing")}).load()
    assert any("tracks.nothing: no guide found by that name" in e for e in bad.errors)


def test_a_guide_without_level_icons_counts_its_entries_as_essential() -> None:
    plain = parse_catalog("## Read\n\n- 📄 [One](https://a.org/1)\n- 📔 [Two](https://a.org/2)\n")
    assert [e.level for e in plain.entries] == [Level.ESSENTIAL, Level.ESSENTIAL]
    assert plain.problems == ()
    mixed = parse_catalog(
        "## Read\n\n- `⚡` 📄 [One](https://a.org/1)\n- 📔 [Two](https://a.org/2)\n"
    )
    assert [e.level for e in mixed.entries] == [Level.ESSENTIAL, None]
    assert [p.message for p in mixed.problems] == [
        "entry has no level icon; listed as unclassified: Two"
    ]
