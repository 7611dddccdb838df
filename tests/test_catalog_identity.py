"""Entry identity: arXiv ids, URL normalisation and title slugs."""

from __future__ import annotations

import pytest

from dcml_bot.catalog.identity import entry_id, normalise_url, slug


@pytest.mark.parametrize(
    "url",
    [
        "https://arxiv.org/abs/2310.03744",
        "https://arxiv.org/abs/2310.03744v2",
        "http://arxiv.org/pdf/2310.03744",
        "https://arxiv.org/pdf/2310.03744v1",
        "https://arxiv.org/pdf/2310.03744v1.pdf",
        "https://www.arxiv.org/abs/2310.03744/",
        "https://export.arxiv.org/abs/2310.03744",
        "https://arxiv.org/html/2310.03744v3",
        "https://huggingface.co/papers/2310.03744",
    ],
)
def test_arxiv_forms_share_one_id(url: str) -> None:
    assert entry_id(url, "whatever") == "arxiv:2310.03744"


def test_old_style_and_five_digit_arxiv_ids() -> None:
    assert entry_id("https://arxiv.org/abs/hep-th/9901001v2", "x") == "arxiv:hep-th/9901001"
    assert entry_id("https://arxiv.org/pdf/2401.18059v1", "x") == "arxiv:2401.18059"
    assert entry_id("https://arxiv.org/abs/1706.03762", "x") == "arxiv:1706.03762"


def test_arxiv_listing_pages_are_plain_urls() -> None:
    assert entry_id("https://arxiv.org/list/cs.CL/recent", "x") == "url:arxiv.org/list/cs.CL/recent"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://koh.pw/cse599j/", "koh.pw/cse599j"),
        ("http://koh.pw/cse599j", "koh.pw/cse599j"),
        ("https://WWW.Example.org:443/a//b/#section", "example.org/a/b"),
        ("https://example.org/a?utm_source=x&utm_campaign=y&b=2&a=1", "example.org/a?a=1&b=2"),
        ("https://x.feishu.cn/wiki/Abc?from=from_copylink", "x.feishu.cn/wiki/Abc"),
        ("https://github.com/o/r?tab=readme-ov-file", "github.com/o/r"),
        ("https://example.org/page?tab=2", "example.org/page?tab=2"),
        ("https://example.org:8443/p", "example.org:8443/p"),
    ],
)
def test_url_normalisation(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


def test_doi_links() -> None:
    assert entry_id("https://doi.org/10.1145/3318464.3389738", "x") == "doi:10.1145/3318464.3389738"


def test_title_fallback_and_slug() -> None:
    assert (
        entry_id(None, "Deep Learning (Goodfellow et al.)")
        == "title:deep-learning-goodfellow-et-al"
    )
    assert entry_id(None, "华盛顿大学 DCAI") == "title:华盛顿大学-dcai"
    assert entry_id("mailto:someone@example.org", "Ask Bob") == "title:ask-bob"
    assert slug("  Ｆｕｌｌ－width  ") == "full-width"
