"""The query language users type in chat and the CLI's filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcml_bot.catalog import Catalog, Kind, Level, QueryError, build_query, load_catalog, search
from dcml_bot.catalog.query import parse_query

GUIDE = Path(__file__).resolve().parent.parent / "config" / "catalog" / "dcml.md"
VARIANTS = Path(__file__).parent / "data" / "variants"


@pytest.fixture(scope="module")
def guide() -> Catalog:
    return load_catalog(GUIDE)


def ids(entries: list) -> list[str]:  # type: ignore[type-arg]
    return [e.id for e in entries]


@pytest.mark.parametrize("word", ["essential", "Essential", "必读", "基础必读", "⚡", "`⚡`", "⚡️"])
def test_level_words(guide: Catalog, word: str) -> None:
    query, results = search(guide, word)
    assert query.levels == {Level.ESSENTIAL}
    assert len(results) == 43


@pytest.mark.parametrize("word", ["optional", "选读", "💎", "advanced", "进阶", "💡"])
def test_other_levels_are_empty_in_this_guide(guide: Catalog, word: str) -> None:
    query, results = search(guide, word)
    assert query.levels and not query.topics and not query.text
    assert results == []


def test_rag_finds_data_extraction(guide: Catalog) -> None:
    query, results = search(guide, "rag")
    assert query.topics == ("rag",)
    assert {t for e in results for t in e.topics} == {"Data Extraction(RAG)"}
    assert len(results) == 4


def test_video_finds_videollms(guide: Catalog) -> None:
    _, results = search(guide, "VIDEO")
    assert ids(results) == [
        "arxiv:2308.12966",
        "arxiv:2306.02858",
        "arxiv:2311.10122",
        "arxiv:2311.17005",
        "arxiv:2403.15377",
    ]


def test_math_finds_both_math_topics(guide: Catalog) -> None:
    _, results = search(guide, "math")
    assert {t for e in results for t in e.topics} == {"MathLLMs", "Math Datasets"}
    assert len(results) == 3  # two papers appear in both topics; each is one item


def test_combinations(guide: Catalog) -> None:
    query, results = search(guide, "essential video")
    assert query.levels == {Level.ESSENTIAL} and query.topics == ("video",)
    assert len(results) == 5
    _, results = search(guide, "code math")
    assert len(results) == 3
    _, results = search(guide, "course")
    assert [e.title for e in results] == ["MIT DCAI 2024", "华盛顿大学 DCAI"]
    _, results = search(guide, "data generation")
    assert [e.id for e in results] == ["arxiv:2401.02524", "arxiv:2406.15126"]
    _, results = search(guide, "optional video")
    assert results == []


def test_free_text_in_english_and_chinese(guide: Catalog) -> None:
    query, results = search(guide, "search clip")
    assert query.text == ("clip",) and not query.topics
    titles = [e.title for e in results]
    assert "CLIPScore: A Reference-free Evaluation Metric for Image Captioning" in titles
    assert "Improving CLIP Training with Language Rewrites" in titles
    _, results = search(guide, "课程难度")  # an entry note
    assert [e.title for e in results] == ["MIT DCAI 2024"]
    _, results = search(guide, "华盛顿")
    assert [e.title for e in results] == ["华盛顿大学 DCAI"]
    _, results = search(guide, "数学知识")  # a topic note
    assert {t for e in results for t in e.topics} >= {"Math Datasets"}


def test_latin_words_match_at_word_starts(guide: Catalog) -> None:
    _, results = search(guide, "search rag")
    assert [e.title for e in results] == ["GraphRAG"]  # not "leverage large multimodal model"
    _, results = search(guide, "search instruction tuning")
    assert {e.id for e in results} == {"arxiv:2304.08485", "arxiv:2310.03744"}


def test_unknown_words_search_text_and_can_match_nothing(guide: Catalog) -> None:
    query, results = search(guide, "zzzunknown")
    assert query.text == ("zzzunknown",)
    assert results == []
    assert query.describe() == '"zzzunknown"'


def test_quoted_phrases_and_unbalanced_quotes(guide: Catalog) -> None:
    query = parse_query('search "visual instruction"', guide)
    assert query.text == ("visual instruction",)
    query = parse_query('search "visual', guide)
    assert query.text == ("visual",)


def test_kinds_and_icons(guide: Catalog) -> None:
    assert parse_query("papers", guide).kinds == {Kind.PAPER}
    assert parse_query("🔧", guide).kinds == {Kind.CODE}
    assert parse_query("工具", guide).kinds == {Kind.TOOL}


def test_query_uses_the_guides_own_legend() -> None:
    catalog = load_catalog(VARIANTS / "custom_legend.md")
    _, results = search(catalog, "🚀")
    assert [e.title for e in results] == ["GraphSAINT"]
    _, results = search(catalog, "advanced")
    assert [e.title for e in results] == ["GraphSAINT"]


def test_build_query_validates_options(guide: Catalog) -> None:
    query = build_query(guide, levels=["必读"], topics=["rag"], kinds=["paper"], search="graph")
    assert query.describe() == 'essential · paper · topic "rag" · "graph"'
    with pytest.raises(QueryError, match="unknown level 'urgent'"):
        build_query(guide, levels=["urgent"])
    with pytest.raises(QueryError, match="unknown kind 'video'"):
        build_query(guide, kinds=["video"])
    with pytest.raises(QueryError, match="no topic or section matches 'quantum'"):
        build_query(guide, topics=["quantum"])
