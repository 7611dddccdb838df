"""Fetch a guide from an http(s) URL (bounded, conditional); files are read by ``source``."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dcml_bot.catalog.source import CatalogError

if TYPE_CHECKING:
    import httpx  # imported when a URL is fetched: reading a file needs no HTTP client

FETCH_TIMEOUT = 15.0  # seconds, for each of connect, read, write and pool
MAX_CATALOG_BYTES = 5 * 1024 * 1024


def is_url(source: str) -> bool:
    """True for http(s) URLs."""
    return urlsplit(source).scheme in {"http", "https"}


def fetch_catalog(
    url: str, client: httpx.Client | None = None, headers: dict[str, str] | None = None
) -> httpx.Response | None:
    """GET a catalog URL: the 200 response, or None for 304 Not Modified.

    Raises CatalogError naming the status or the network failure.
    """
    import httpx

    own = client is None
    http = client or httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=True)
    try:
        response = http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise CatalogError(f"{url}: cannot fetch: {exc.__class__.__name__}: {exc}") from None
    finally:
        if own:
            http.close()
    if response.status_code == 304:
        return None
    if response.status_code != 200:
        raise CatalogError(
            f"{url}: cannot fetch: HTTP {response.status_code} {response.reason_phrase}"
        )
    if len(response.content) > MAX_CATALOG_BYTES:
        raise CatalogError(
            f"{url}: larger than {MAX_CATALOG_BYTES // 1024 // 1024} MiB; not a reading list"
        )
    return response
