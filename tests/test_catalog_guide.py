"""The lab's real guide and its older version: exact counts, structure and stable ids."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dcml_bot.catalog import Catalog, Kind, Level, load_catalog

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "config" / "catalog" / "dcml.md"
HISTORY = Path(__file__).parent / "data" / "dcml-2024-10-31-fd72b2f.md"


@pytest.fixture(scope="module")
def guide() -> Catalog:
    return load_catalog(GUIDE)


@pytest.fixture(scope="module")
def history() -> Catalog:
    return load_catalog(HISTORY)


def test_guide_counts(guide: Catalog) -> None:
    assert guide.listings == 48
    assert len(guide.entries) == 43
    assert len(guide.sections) == 5
    assert len(guide.topics) == 14
    assert Counter(e.level for e in guide.entries) == {Level.ESSENTIAL: 43}


def test_guide_counts_per_topic(guide: Catalog) -> None:
    per_topic = Counter(topic for e in guide.entries for topic in e.topics)
    assert per_topic == {
        "数据侧基础": 2,
        "Quick Start": 2,
        "ImageLLMs": 4,
        "VideoLLMs": 5,
        "Data-Centric VLMs（主要是数据的选择、增强(recaption)，比如重写caption）": 6,
        "Vision-Language Model Visual Information Extraction": 4,
        "Modality Alignment": 2,
        "Data Processing": 4,
        "Data Evaluation": 1,
        "Data Generation": 2,
        "Data Extraction(RAG)": 4,
        "Image数据评估论文": 6,
        "MathLLMs": 3,
        "Math Datasets": 2,
    }
    # One survey sits directly under its section, before the first topic.
    untopiced = [e for e in guide.entries if not e.topics]
    assert [(e.id, e.section) for e in untopiced] == [
        ("arxiv:2405.16640", "Data Centric LLM and VLM Algorithms")
    ]


def test_guide_counts_per_section_and_kind(guide: Catalog) -> None:
    assert Counter(e.section for e in guide.entries) == {
        "Data Centric ML Basic": 2,
        "LLM and VLM Basic": 20,
        "Data Centric LLM and VLM Algorithms": 12,
        "Data Centric LLM and VLM Systems": 6,
        "Data-Centric Domain-Specific LLMs": 3,
    }
    kinds = Counter(k for e in guide.entries for k in e.kinds)
    assert kinds == {Kind.PAPER: 41, Kind.CODE: 16, Kind.COURSE: 2}


def test_guide_title_and_legend(guide: Catalog) -> None:
    assert guide.title == "🔥 Data-Centric ML方向"
    assert guide.legend_from_file
    assert guide.legend == {"⚡": Level.ESSENTIAL, "💎": Level.OPTIONAL, "💡": Level.ADVANCED}


def test_guide_is_usable_with_only_bare_link_warnings(guide: Catalog) -> None:
    assert guide.ok
    assert [(p.line, p.severity.value) for p in guide.problems] == [
        (125, "warning"),
        (126, "warning"),
    ]
    assert all("bare link without a title" in p.message for p in guide.problems)


def test_duplicates_merge_into_one_entry_at_first_position(guide: Catalog) -> None:
    llava = guide.get("arxiv:2310.03744")
    assert llava is not None
    assert llava.line == 58
    assert [p.line for p in llava.placements] == [58, 85]
    assert llava.topics[0] == "ImageLLMs"
    assert llava.topics[1].startswith("Data-Centric VLMs")
    merged = {e.id for e in guide.entries if len(e.placements) > 1}
    assert merged == {
        "arxiv:2310.03744",
        "arxiv:2311.10122",
        "arxiv:2311.17005",
        "arxiv:2402.03300",
        "arxiv:2402.06332",
    }


def test_guide_order_is_first_appearance(guide: Catalog) -> None:
    lines = [e.line for e in guide.entries]
    assert lines == sorted(lines)
    assert [e.position for e in guide.entries] == list(range(len(guide.entries)))
    assert guide.entries[0].title == "MIT DCAI 2024"


def test_entry_and_topic_notes(guide: Catalog) -> None:
    mit = guide.entries[0]
    assert mit.notes[0].startswith("课程难度不大")
    topics = {t.name: t for t in guide.topics}
    assert topics["数据侧基础"].notes == (
        "Data-Centric ML是研究使用数据生成、选择与配比等方法实现大规模，"
        "高效以及提升模型表现的研究方向。",
    )
    assert topics["VideoLLMs"].notes[0].startswith("可能有帮助的文档 (https://docs.google.com/")
    assert [n[:2] for n in topics["Modality Alignment"].notes] == ["1）", "2）", "1.", "2.", "3."]
    sections = {s.name: s for s in guide.sections}
    assert sections["Data Centric LLM and VLM Systems"].notes[0].count("\n") == 3


def test_bare_links_and_named_links(guide: Catalog) -> None:
    bare = guide.get("arxiv:2408.05211")
    assert bare is not None and bare.title == "arXiv 2408.05211"
    assert bare.url == "https://arxiv.org/pdf/2408.05211"
    repo = guide.get("url:github.com/BradyFU/Awesome-Multimodal-Large-Language-Models")
    assert repo is not None and repo.title == "BradyFU/Awesome-Multimodal-Large-Language-Models"


def test_history_counts(history: Catalog) -> None:
    assert history.listings == 37
    assert len(history.entries) == 31
    assert [s.name for s in history.sections] == [
        "Data Centric ML Basic",
        "多模态大模型数据侧",
        "Data-Centric AI4Math",
        "Data Centric Tools",
        "Multimodal LLM",
    ]
    # The older guide lists the intro document twice under two titles: one item, one warning.
    assert history.ok
    assert len(history.problems) == 3
    assert any("different title" in p.message and p.line == 143 for p in history.problems)


def test_ids_are_stable_across_versions(guide: Catalog, history: Catalog) -> None:
    current = {e.id for e in guide.entries}
    old = {e.id for e in history.entries}
    # Every item of the older guide is still in the current one, under the same id, even where
    # its link changed form (?from=… tracking query, "Survey: url" vs "[Survey](url)").
    assert old <= current
    assert len(current - old) == 12
    by_title = {e.title.casefold(): e.id for e in guide.entries}
    for entry in history.entries:
        if entry.title.casefold() in by_title:
            assert by_title[entry.title.casefold()] == entry.id
    assert "url:wcny4qa9krto.feishu.cn/wiki/Lyq9wNeovivXpbkwaNVcebrCnnb" in old & current
    assert "arxiv:2306.13549" in old & current
