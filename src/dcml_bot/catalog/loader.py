"""Fetch a guide from an http(s) URL, bounded in bytes, time and redirects; files are read by
``source``. URLs are shown through :func:`redact`: a token in one never reaches a log or a chat."""

from __future__ import annotations

import threading
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from dcml_bot.catalog.source import CatalogError

if TYPE_CHECKING:
    import httpx  # imported when a URL is fetched: reading a file needs no HTTP client

MIB = 1024 * 1024
_REDIRECTS = {301, 302, 303, 307, 308}
# Query parameters whose values are secrets (GitHub's raw ?token=, S3's X-Amz-Signature, …).
_SECRET_NAMES = {"key", "sig", "pwd", "pass", "auth"}
_SECRET_WORDS = ("token", "secret", "password", "signature", "credential", "apikey", "api_key")


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchLimits:
    """What one catalog download may take; the settings name each limit in its error."""

    max_bytes: int = 5 * MIB  # catalog_max_bytes: on the wire and after decompression
    deadline: float = 30.0  # catalog_deadline_seconds: the whole download, redirects included
    connect_timeout: float = 10.0
    read_timeout: float = 15.0  # seconds without a byte
    max_redirects: int = 5
    redirect_hosts: frozenset[str] = frozenset()  # catalog_redirect_hosts: other hosts allowed


@dataclass(frozen=True, slots=True)
class Fetched:
    """A downloaded guide: its bytes, and the validators to ask for the next version with."""

    content: bytes
    etag: str | None = None
    last_modified: str | None = None


def is_url(source: str) -> bool:
    """True for http(s) URLs."""
    return urlsplit(source).scheme in {"http", "https"}


def _secret_param(name: str) -> bool:
    name = unquote(name).lower()
    return name in _SECRET_NAMES or any(word in name for word in _SECRET_WORDS)


def redact(location: str) -> str:
    """A path or URL as it may be shown: credentials and token parameters become ``***``."""
    if not is_url(location):
        return location
    parts = urlsplit(location)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, password, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if password else f"***@{host}"  # a lone name is a token
    params = parts.query.split("&") if parts.query else []
    query = "&".join(
        f"{name}=***" if value and _secret_param(name) else f"{name}{equals}{value}"
        for name, equals, value in (param.partition("=") for param in params)
    )
    if (netloc, query) == (parts.netloc, parts.query):
        return location
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def without_credentials(url: str) -> str:
    """The URL without its user name and password (what links resolved against it may show)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _size(count: int) -> str:
    for unit, scale in (("MiB", MIB), ("KiB", 1024)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count:,} bytes"


def fetch_catalog(
    url: str,
    client: httpx.Client | None = None,
    headers: dict[str, str] | None = None,
    limits: FetchLimits | None = None,
    *,
    cancel: threading.Event | None = None,
) -> Fetched | None:
    """GET a catalog URL within ``limits``: the guide, or None for 304 Not Modified.

    Raises CatalogError, one line naming the limit, the status or the network failure.
    ``cancel``, once set, ends the download at its next chunk (the bot is stopping).
    """
    limits = limits or FetchLimits()
    outcome: list[Fetched | BaseException | None] = []
    stop = threading.Event()
    stopped = (stop, cancel) if cancel is not None else (stop,)

    def download() -> None:
        try:
            outcome.append(_download(url, client, headers or {}, limits, stopped))
        except BaseException as exc:  # handed to the caller
            outcome.append(exc)

    # httpx has no deadline for a whole response: a server trickling a byte now and then
    # resets its read timeout for ever. The caller waits for the deadline, no longer.
    worker = threading.Thread(target=download, name="catalog-fetch", daemon=True)
    worker.start()
    worker.join(limits.deadline)
    if not outcome:
        stop.set()  # the worker gives up at its next chunk or read timeout
        raise CatalogError(
            f"{redact(url)}: not downloaded within {limits.deadline:g} s "
            "(catalog_deadline_seconds); the server is too slow or its response never ends"
        )
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _download(
    url: str,
    client: httpx.Client | None,
    headers: dict[str, str],
    limits: FetchLimits,
    stop: tuple[threading.Event, ...],
) -> Fetched | None:
    import httpx

    shown, parts = redact(url), urlsplit(url)
    origin = (parts.hostname or "").lower()
    # Credentials go in the Authorization header, so the URL httpx logs holds none.
    auth = None
    if parts.username is not None or parts.password is not None:
        auth = httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
    target = without_credentials(url)
    asked = {**headers, "Accept-Encoding": "gzip, deflate"}  # the encodings read below, bounded
    started = time.monotonic()
    own = client is None
    http = client or httpx.Client()
    try:
        for _ in range(limits.max_redirects + 1):
            left = max(limits.deadline - (time.monotonic() - started), 0.1)
            timeout = httpx.Timeout(
                min(limits.read_timeout, left), connect=min(limits.connect_timeout, left)
            )
            host = (urlsplit(target).hostname or "").lower()
            with http.stream(
                "GET",
                target,
                headers=asked,
                auth=auth if host == origin else None,
                timeout=timeout,
                follow_redirects=False,
            ) as response:
                location = response.headers.get("Location")
                if response.status_code in _REDIRECTS and location:
                    target = _redirect(shown, target, location, origin, limits)
                    continue
                if response.status_code == 304:
                    return None
                if response.status_code != 200:
                    raise CatalogError(
                        f"{shown}: cannot fetch: HTTP {response.status_code} "
                        f"{response.reason_phrase}"
                    )
                content = _read_body(shown, response, limits, stop)
                return Fetched(
                    content, response.headers.get("ETag"), response.headers.get("Last-Modified")
                )
        raise CatalogError(
            f"{shown}: more than {limits.max_redirects} redirects; not followed (use the URL "
            "they lead to)"
        )
    except httpx.ConnectTimeout:
        raise CatalogError(f"{shown}: cannot connect within {limits.connect_timeout:g} s") from None
    except httpx.TimeoutException:
        raise CatalogError(f"{shown}: the server sent nothing for {timeout.read:g} s") from None
    except httpx.HTTPError as exc:
        raise CatalogError(
            f"{shown}: cannot fetch: {exc.__class__.__name__}: {_scrub(str(exc), url)}"
        ) from None
    finally:
        if own:
            http.close()


def _redirect(shown: str, current: str, location: str, origin: str, limits: FetchLimits) -> str:
    """Where a redirect leads, when it may be followed: the same host, or one configured."""
    target = without_credentials(urljoin(current, location))
    parts = urlsplit(target)
    host = (parts.hostname or "").lower()
    if parts.scheme not in {"http", "https"} or not host:
        raise CatalogError(f"{shown}: redirected to {redact(target)}; not an http(s) URL")
    if urlsplit(current).scheme == "https" and parts.scheme == "http":
        raise CatalogError(f"{shown}: redirected from https to plain http; not followed")
    if host != origin and host not in limits.redirect_hosts:
        raise CatalogError(
            f"{shown}: redirected to another host ({host}); not followed (use the URL it leads "
            "to, or allow the host in catalog_redirect_hosts)"
        )
    return target


def _read_body(
    shown: str, response: httpx.Response, limits: FetchLimits, stop: tuple[threading.Event, ...]
) -> bytes:
    """The body, decoded, refused as soon as it (or its compressed form) passes the size cap."""
    too_big = CatalogError(
        f"{shown}: larger than {_size(limits.max_bytes)} (catalog_max_bytes); not a reading list"
    )
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limits.max_bytes:
        raise too_big
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in {"identity", "", "gzip", "x-gzip", "deflate"}:
        raise CatalogError(f"{shown}: sent in an encoding not asked for ({encoding}); not read")
    # Our own zlib, not httpx's decoders: each chunk is inflated only up to the cap, so a small
    # gzip bomb never takes more memory than the cap.
    inflate = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding not in {"identity", ""} else None
    body = bytearray()
    wire = 0
    try:
        for chunk in response.iter_raw():
            if any(event.is_set() for event in stop):
                raise CatalogError(f"{shown}: download abandoned (deadline or shutdown)")
            wire += len(chunk)
            if wire > limits.max_bytes:
                raise too_big
            room = limits.max_bytes - len(body) + 1  # one byte more than fits says "too big"
            body += inflate.decompress(chunk, room) if inflate else chunk
            if len(body) > limits.max_bytes:
                raise too_big
        if inflate is not None:
            body += inflate.flush()
    except zlib.error as exc:
        raise CatalogError(f"{shown}: cannot inflate its {encoding} body: {exc}") from None
    if len(body) > limits.max_bytes:
        raise too_big
    return bytes(body)


def _scrub(message: str, url: str) -> str:
    """An error message without the URL's credentials, should the library have quoted them."""
    parts = urlsplit(url)
    secrets = [parts.password or parts.username or ""]
    secrets += [
        value
        for name, _, value in (param.partition("=") for param in parts.query.split("&"))
        if value and _secret_param(name)
    ]
    for secret in secrets:
        if len(secret) >= 3:
            message = message.replace(secret, "***")
    return message
