"""Stable identities for catalog entries, derived from what they point to."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit

_ARXIV_HOSTS = {
    "arxiv.org",
    "export.arxiv.org",
    "ar5iv.org",
    "ar5iv.labs.arxiv.org",
    "alphaxiv.org",
}
_ARXIV_PATH = re.compile(
    r"^/(?:abs|pdf|html|format|papers|overview)/"
    r"(?P<id>\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(?:v\d+)?(?:\.pdf)?/?$",
    re.IGNORECASE,
)
_HF_PAPERS_PATH = re.compile(r"^/papers/(?P<id>\d{4}\.\d{4,5})(?:v\d+)?/?$")
_DOI_PATH = re.compile(r"^/(?P<doi>10\.\d{4,9}/\S+)$")

# Query parameters that say where a link was copied from, not what it points to.
_TRACKING_PARAMS = {
    "from",
    "source",
    "src",
    "ref",
    "ref_src",
    "ref_url",
    "share_source",
    "share_from",
    "spm",
    "fbclid",
    "gclid",
    "igshid",
    "mc_cid",
    "mc_eid",
    "si",
    "_hsenc",
    "_hsmkt",
    "scene",
}
_TRACKING_PREFIXES = ("utm_",)
# Parameters that only pick a view of the same page on a given host.
_VIEW_PARAMS = {"github.com": {"tab"}, "arxiv.org": {"context"}}


def arxiv_id(url: str) -> str | None:
    """The arXiv identifier (without version) an URL points to, if it is an arXiv link."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    if host in _ARXIV_HOSTS:
        match = _ARXIV_PATH.match(parts.path)
        if match:
            return match.group("id").lower()
    if host in {"huggingface.co", "hf.co"}:
        match = _HF_PAPERS_PATH.match(parts.path)
        if match:
            return match.group("id")
    return None


def normalise_url(url: str) -> str:
    """An URL without scheme, ``www.``, default port, fragment, trailing slash or tracking query."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    view_params = _VIEW_PARAMS.get(host, set())
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() not in _TRACKING_PARAMS
        and not key.lower().startswith(_TRACKING_PREFIXES)
        and key not in view_params
    ]
    path = re.sub(r"/{2,}", "/", parts.path).rstrip("/")
    normal = host + path
    if query:
        normal += "?" + urlencode(sorted(query))
    return normal


def slug(text: str) -> str:
    """A lower-case slug that keeps letters of any script (so Chinese titles stay readable)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\W_]+", "-", folded).strip("-")


def entry_id(url: str | None, title: str) -> str:
    """The stable id of an entry: ``arxiv:ID``, ``doi:…``, ``url:host/path`` or ``title:slug``."""
    if url:
        found = arxiv_id(url)
        if found:
            return f"arxiv:{found}"
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower().removeprefix("www.")
        if host in {"doi.org", "dx.doi.org"}:
            match = _DOI_PATH.match(parts.path)
            if match:
                return f"doi:{match.group('doi').lower()}"
        if parts.scheme in {"http", "https"} and host:
            return f"url:{normalise_url(url)}"
    return f"title:{slug(title)}"


# Buttons carry an entry's id back (Slack values hold 2,000 characters, a Feishu callback a few
# KB, and a link can be longer): an id over this length travels as a hash of itself.
MAX_REF = 64


def entry_ref(entry_id: str) -> str:
    """A short, stable reference to an entry for button values: its id, or ``ref:`` + a hash."""
    if len(entry_id) <= MAX_REF:
        return entry_id
    return "ref:" + hashlib.blake2b(entry_id.encode("utf-8"), digest_size=12).hexdigest()
