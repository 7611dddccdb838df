"""One synthetic fixture per variant of the catalog format seen in the lab's guides."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcml_bot.catalog import (
    Catalog,
    CatalogError,
    Kind,
    Level,
    Severity,
    load_catalog,
    parse_catalog,
)

VARIANTS = Path(__file__).parent / "data" / "variants"


def variant(name: str) -> Catalog:
    return load_catalog(VARIANTS / f"{name}.md")


def test_bare_url_gets_a_derived_title_and_a_warning() -> None:
    catalog = variant("bare_url")
    arxiv, repo = catalog.entries
    assert (arxiv.id, arxiv.title, arxiv.kinds) == (
        "arxiv:2408.05211",
        "arXiv 2408.05211",
        (Kind.PAPER, Kind.CODE),
    )
    assert repo.id == "url:github.com/BradyFU/Awesome-Multimodal-Large-Language-Models"
    assert repo.url.endswith("?tab=readme-ov-file")  # the link is served as written
    assert [p.line for p in catalog.problems] == [5, 6]
    assert catalog.ok


def test_name_colon_url() -> None:
    survey, course = variant("name_colon_url").entries
    assert (survey.title, survey.id, survey.url) == (
        "Survey",
        "arxiv:2306.13549",
        "https://arxiv.org/pdf/2306.13549",
    )
    assert course.title == "CS324 Large Language Models"
    assert course.kinds == (Kind.COURSE,)
    assert course.level is Level.OPTIONAL


def test_acronym_prefix() -> None:
    smac, qmix = variant("acronym").entries
    assert (smac.acronym, smac.title) == ("SMAC", "The StarCraft Multi-Agent Challenge")
    assert (qmix.acronym, qmix.title, qmix.level) == (
        "QMIX",
        "Monotonic Value Function Factorisation",
        Level.ADVANCED,
    )


def test_title_without_link_gets_a_title_id_and_a_warning() -> None:
    catalog = variant("title_no_link")
    book = catalog.entries[0]
    assert book.url is None
    assert book.id == "title:deep-learning-goodfellow-bengio-and-courville"
    assert book.kinds == (Kind.BOOK,)
    assert [(p.line, p.severity) for p in catalog.problems] == [(3, Severity.WARNING)]
    assert "no link" in catalog.problems[0].message


def test_empty_entries_are_reported_and_ignored() -> None:
    catalog = variant("empty_entry")
    assert [e.title for e in catalog.entries] == ["Attention Is All You Need", "BERT"]
    assert [p.line for p in catalog.problems] == [4, 5]
    assert "empty list item" in catalog.problems[0].message
    assert "empty entry" in catalog.problems[1].message
    assert catalog.ok


def test_extra_spaces_after_the_dash() -> None:
    catalog = variant("extra_spaces")
    assert [(e.level, e.line) for e in catalog.entries] == [
        (Level.ESSENTIAL, 3),
        (Level.OPTIONAL, 4),
        (Level.ADVANCED, 5),  # six spaces: CommonMark makes it indented code; still an entry
    ]
    assert catalog.entries[2].title == "Self-Instruct"
    assert not catalog.problems


def test_tracking_query_is_not_part_of_the_identity() -> None:
    doc, tracked = variant("tracking_query").entries
    assert doc.id == "url:wcny4qa9krto.feishu.cn/wiki/Lyq9wNeovivXpbkwaNVcebrCnnb"
    assert tracked.id == "url:example.org/guide?id=7"


def test_abs_and_versioned_pdf_links_are_one_item_under_two_topics() -> None:
    catalog = variant("duplicate_abs_pdf")
    assert catalog.listings == 4
    assert [e.id for e in catalog.entries] == [
        "arxiv:2310.03744",
        "arxiv:2304.08485",
        "arxiv:2311.06607",
    ]
    llava = catalog.entries[0]
    assert llava.topics == ("ImageLLMs", "Data-Centric VLMs")
    assert llava.line == 12
    assert llava.url == "https://arxiv.org/abs/2310.03744"  # the first listing's link
    assert llava.kinds == (Kind.PAPER, Kind.CODE)  # icons of both listings
    assert not catalog.problems


def test_notes_for_entries_topics_and_sections() -> None:
    catalog = variant("notes")
    mit, uw, juicer = catalog.entries
    assert mit.notes == ("课程难度不大，每节课都有一个配套的实验",)
    assert uw.notes == ()
    assert juicer.notes == ("the system paper; read section 3 first",)
    (topic,) = catalog.topics
    assert topic.name == "数据侧基础"  # trailing full-width colon dropped
    assert topic.notes == (
        "Data-Centric ML是研究数据的方向。",
        "可能有帮助的文档 (https://docs.example.org/doc)",
    )
    basic, systems = catalog.sections
    assert basic.notes == ("This section is about data.",)
    assert systems.notes == (
        "1）主要关注Data Juicer\n2）数据侧工具相关的科研\n需要对于数据侧工具有一定的了解",
    )


def test_unknown_icons() -> None:
    catalog = variant("unknown_icons")
    lab, hot, tool, tutorial = catalog.entries
    assert lab.kinds == (Kind.OTHER, Kind.PAPER)
    assert lab.icons == ("🧪", "📄")
    assert hot.level is None and hot.level_icon == "🔥"
    assert tool.level is Level.ESSENTIAL  # ⚡️ with a variation selector is ⚡
    assert tool.kinds == (Kind.TOOL,)
    assert tutorial.kinds == (Kind.TUTORIAL,)
    assert [(p.line, p.severity) for p in catalog.problems] == [(6, Severity.ERROR)]
    assert "unknown level icon 🔥" in catalog.problems[0].message
    assert not catalog.ok


def test_entry_without_level_is_kept_unclassified_and_prose_bullets_are_notes() -> None:
    catalog = variant("no_level")
    assert [(e.title, e.level) for e in catalog.entries] == [
        ("A Paper Without A Level", None),
        ("A Paper With A Level", Level.ESSENTIAL),
    ]
    assert [p.line for p in catalog.problems] == [3]
    assert catalog.sections[0].notes == ("just a prose bullet, not an entry",)


def test_custom_legend_and_markdown_headings() -> None:
    catalog = variant("custom_legend")
    assert catalog.title == "Graph Learning Starter Guide"
    assert catalog.legend == {"🔥": Level.ESSENTIAL, "🌱": Level.OPTIONAL, "🚀": Level.ADVANCED}
    assert [e.level for e in catalog.entries] == [Level.ESSENTIAL, Level.OPTIONAL, Level.ADVANCED]
    assert [s.name for s in catalog.sections] == ["Foundations"]
    assert [t.name for t in catalog.topics] == ["Scaling"]
    assert catalog.entries[2].topics == ("Scaling",)
    assert not catalog.problems


def test_summary_on_one_line() -> None:
    catalog = variant("one_line_summary")
    assert [(e.title, e.topics, e.section) for e in catalog.entries] == [
        ("Toolformer", ("Tool Use",), "Agents"),
        ("ReAct", ("Planning",), "Agents"),
        ("Section-level Paper", (), "Agents"),  # after </details>: back at section level
    ]


def test_conflicting_titles_and_levels_keep_the_first() -> None:
    catalog = variant("conflicting_titles")
    (entry,) = catalog.entries
    assert entry.title == "多模态大模型入门文档"
    assert entry.level is Level.ESSENTIAL
    assert entry.sections == ("A", "B")
    messages = [p.message for p in catalog.problems]
    assert len(messages) == 2
    assert "different title" in messages[0] and "different level" in messages[1]
    assert catalog.ok


def test_unclosed_details_blocks() -> None:
    catalog = variant("unclosed_details")
    assert [(e.title, e.topics, e.section) for e in catalog.entries] == [
        ("BLIP-2", ("ImageLLMs",), "Vision"),
        ("Video-LLaMA", ("VideoLLMs",), "Vision"),
        ("DeepSeekMath", (), "Math"),
    ]
    assert catalog.sections[1].notes == ("下面是follow-up的新工作",)


def test_no_entries_is_a_one_line_error() -> None:
    with pytest.raises(CatalogError, match=r"no_entries\.md: no reading-list entries found"):
        variant("no_entries")


@pytest.mark.parametrize(
    ("markdown", "title", "notes"),
    [
        ("- `⚡` 📄 [Title](https://a.org/x) (CVPR 2024)", "Title", ("CVPR 2024",)),
        ("- `⚡` 📄 [**Bold** `code` title](https://a.org/x)", "Bold code title", ()),
        ("1. `⚡` 📄 [Ordered](https://a.org/x)", "Ordered", ()),
        ("* ⚡ 📄 [No backticks](https://a.org/x)", "No backticks", ()),
        (
            "- `⚡` 📄 [Paper](https://a.org/x) [Code](https://github.com/a/x)",
            "Paper",
            ("Code (https://github.com/a/x)",),
        ),
    ],
)
def test_inline_shapes(markdown: str, title: str, notes: tuple[str, ...]) -> None:
    catalog = parse_catalog(f"### S\n\n{markdown}\n")
    (entry,) = catalog.entries
    assert (entry.title, entry.notes, entry.level) == (title, notes, Level.ESSENTIAL)
    assert entry.url == "https://a.org/x"


def test_parsing_does_not_depend_on_line_endings() -> None:
    text = (VARIANTS / "duplicate_abs_pdf.md").read_text(encoding="utf-8")
    unix = parse_catalog(text)
    windows = parse_catalog(text.replace("\n", "\r\n"))
    assert [e.as_record() for e in unix.entries] == [e.as_record() for e in windows.entries]
