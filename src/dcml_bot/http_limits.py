"""What every HTTP request must meet before the app sees it: size, time and well-formed headers.

Two layers, because uvicorn leaves both phases of a request unbounded. ``RequestLimits`` is ASGI
middleware: it reads the body itself, at most ``MAX_BODY`` bytes within ``timeout`` seconds, then
hands it to the app in one piece (413, 408 or 400 otherwise, one log line each, never the body).
``bounded_http`` is uvicorn's httptools protocol with what it lacks before a request reaches any
app: a request head of at most ``MAX_HEAD`` bytes arriving within ``timeout`` seconds, and no
connection held beyond ``limit_concurrency`` (uvicorn would 503 its request, but only once the
head is complete, so idle connections could still take every file descriptor).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024  # the largest Slack or Feishu payload is far smaller; so are the lab's forms
MAX_HEAD = 64 * 1024  # request line and headers (h11's limit is 16 KiB; browsers send < 8 KiB)


def _digits(value: bytes) -> bool:
    return value.strip().isdigit()


# The platforms' signing headers, checked before their SDKs see them: slack_sdk int()s the
# timestamp and compare_digest()s the signature, and both raise (a 500) on malformed values.
SIGNING_HEADERS: dict[bytes, Callable[[bytes], bool]] = {
    b"x-slack-request-timestamp": _digits,
    b"x-slack-signature": bytes.isascii,
    b"x-lark-request-timestamp": _digits,
    b"x-lark-signature": bytes.isascii,
}


class Refusal(Exception):
    """A request refused before the app: status, reason (a metric label) and what went wrong."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


class _Gone(Exception):
    """The client hung up before its body was complete."""


class RequestLimits:
    """ASGI middleware: the app gets each request's body whole and in time, or never sees it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        timeout: float,
        max_body: int = MAX_BODY,
        refused: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.max_body = max_body
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next(
            (int(v) for k, v in scope["headers"] if k == b"content-length" and _digits(v)), None
        )
        chunks: list[bytes] = []
        try:
            self._check_head(scope, declared)
            with anyio.fail_after(self.timeout):
                await self._read(receive, chunks)
        except TimeoutError:
            refusal = Refusal(408, "timeout", f"body not complete in {self.timeout:g} s")
            await self._refuse(scope, send, refusal, _length(chunks, declared))
        except Refusal as refusal:
            await self._refuse(scope, send, refusal, _length(chunks, declared))
        except _Gone:
            log.info(
                "http: %s %r: the client hung up (%s)",
                scope["method"],
                scope["path"],
                _length(chunks, declared),
            )
        else:
            await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _check_head(self, scope: Scope, declared: int | None) -> None:
        if declared is not None and declared > self.max_body:
            # 413 before reading a byte (and before uvicorn sends "100 Continue").
            raise Refusal(413, "too_large", f"body over {self.max_body} bytes")
        for name, value in scope["headers"]:
            check = SIGNING_HEADERS.get(name)
            if check is not None and not check(value):
                raise Refusal(400, "malformed", f"malformed {name.decode()} header {value[:40]!r}")

    async def _read(self, receive: Receive, chunks: list[bytes]) -> None:
        """The body into ``chunks``, as it comes; at most ``max_body`` bytes are kept."""
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body:
                raise Refusal(413, "too_large", f"body over {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return

    async def _refuse(self, scope: Scope, send: Send, refusal: Refusal, length: str) -> None:
        log.info(
            "http: refused %s %r with %d: %s (%s)",
            scope["method"],
            scope["path"],
            refusal.status,
            refusal.detail,
            length,
        )
        if self.refused is not None:
            self.refused(refusal.reason)
        body = refusal.detail.encode()
        await send(
            {
                "type": "http.response.start",
                "status": refusal.status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    # The rest of the body is not read: end the connection with the answer.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _length(chunks: list[bytes], declared: int | None) -> str:
    """``12/5087 bytes``: body bytes kept so far, of the Content-Length (``?`` when chunked)."""
    return f"{sum(map(len, chunks))}/{'?' if declared is None else declared} bytes"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() giving the body read so far in one message, then the client's own messages."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


# --- the protocol: the head of each request, and the connections held ---------------------------


@dataclass
class _Saturation:
    """Connections refused since the limit was reached: one line when it starts, one when the
    open connections are well under the limit again (not one per connection)."""

    refused: int = 0


def bounded_http(
    timeout: float,
    *,
    max_head: int = MAX_HEAD,
    refused: Callable[[str], None] | None = None,
) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, bounding request heads to ``max_head`` bytes and ``timeout``
    seconds, and answering 503 at once to connections beyond ``limit_concurrency`` - 1 (so that
    uvicorn's own check, at the request, counts only requests under way)."""
    saturation = _Saturation()
    count = refused or (lambda reason: None)

    class BoundedHttp(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.head_size: int | None = 0  # None: the head is complete, the body may follow
            self.head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            limit = self.limit_concurrency
            if limit is not None and len(self.connections) >= limit:
                if not saturation.refused:
                    log.warning(
                        "http: %d connections open: new ones get 503 until fewer", limit - 1
                    )
                saturation.refused += 1
                count("connections")
                self._close(b"503 Service Unavailable", b"too many connections")
                return
            if saturation.refused and limit is not None and len(self.connections) < limit * 3 // 4:
                log.info("http: accepting connections again (%d refused)", saturation.refused)
                saturation.refused = 0
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.head_size is not None:
                self.head_size += len(data)
            super().data_received(data)
            closing = self.transport.is_closing()  # e.g. uvicorn's 400 for a malformed head
            if self.head_size is not None and self.head_size > max_head and not closing:
                log.info("http: closed a connection whose request head passed %d bytes", max_head)
                count("head_too_large")
                self._close(b"431 Request Header Fields Too Large", b"request head too large")

        def on_message_begin(self) -> None:
            self.head_size = 0
            self._arm()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self.head_size = None
            self._disarm()
            super().on_headers_complete()

        def _arm(self) -> None:
            if self.head_timer is None:
                self.head_timer = self.loop.call_later(timeout, self._late)

        def _disarm(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def _late(self) -> None:
            self.head_timer = None
            if self.head_size is not None and not self.transport.is_closing():
                log.info(
                    "http: closed a connection without a complete request head in %g s",
                    timeout,
                )
                count("head_timeout")
                self.transport.close()

        def _close(self, status: bytes, text: bytes) -> None:
            self._disarm()
            self.head_size = None
            self.transport.write(
                b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, len(text), text)
            )
            self.transport.close()

    return BoundedHttp


FD_RESERVE = 100  # descriptors left for the database, the platforms' clients, logs and the loop


def connection_limit(wanted: int) -> int:
    """``wanted``, or fewer when the open-file limit would not leave ``FD_RESERVE`` besides."""
    try:
        import resource
    except ImportError:  # not on Windows
        return wanted
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft - FD_RESERVE >= wanted:
        return wanted
    allowed = max(soft - FD_RESERVE, 8)
    log.warning(
        "http: at most %d connections, not %d: the open-file limit is %d (ulimit -n)",
        allowed,
        wanted,
        soft,
    )
    return allowed
