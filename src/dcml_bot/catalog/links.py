"""What an entry's link says about it: links glued together, overlong links, a derived title."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from dcml_bot.catalog.identity import arxiv_id

# Longer links do not fit where chat platforms carry them (Slack and Feishu cut at ~2,000).
LONG_LINK = 1000
# A second scheme glued to the end of a link; after "/", "=" or "?" it is part of the link
# (web.archive.org/web/2024/https://…, ?url=https://…).
_GLUED = re.compile(r"(?<=[^/=?&#:(\s])(?=https?://)", re.IGNORECASE)
_SCHEME = re.compile(r"https?://", re.IGNORECASE)


def split_glued(href: str) -> list[str]:
    """The links in an href that glues several together (``…/2402.03300https://…``), in order."""
    if not _SCHEME.match(href) or len(_SCHEME.findall(href)) < 2:
        return [href]
    return [part for part in _GLUED.split(href) if part]


def glued_warning(links: list[str]) -> str:
    """The ``catalog check`` warning for links glued into one."""
    named = ", ".join(links[:-1]) + f" and {links[-1]}"
    return (
        f"links glued together: {named}; the entry is identified by the first "
        "(the others are kept as notes); put a space between them"
    )


def long_link_warning(url: str) -> str | None:
    """The ``catalog check`` warning for a link over :data:`LONG_LINK` characters, if it is one."""
    if len(url) <= LONG_LINK:
        return None
    return (
        f"link of {len(url):,} characters (over {LONG_LINK:,}; chat platforms cut long links): "
        f"{url[:60]}…; use a shorter address"
    )


def derived_title(url: str) -> str:
    """A readable title for a bare link: ``arXiv 2408.05211``, ``owner/repo`` or host/path."""
    found = arxiv_id(url)
    if found:
        return f"arXiv {found}"
    parts = urlsplit(url)
    host = (parts.hostname or url).removeprefix("www.")
    path = parts.path.strip("/")
    if host == "github.com" and path:
        return "/".join(path.split("/")[:2])
    return f"{host}/{path}" if path else host
