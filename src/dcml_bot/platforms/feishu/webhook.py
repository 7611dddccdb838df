"""Feishu's webhook: the headers lark-oapi expects, a freshness window, refusals told apart."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from lark_oapi.core.model import RawRequest  # type: ignore[import-untyped]
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dcml_bot.core.metrics import Metrics
from dcml_bot.platforms.feishu.messenger import PLATFORM

log = logging.getLogger(__name__)

PATH = "/feishu/events"
MAX_BODY = 256 * 1024
# lark-oapi enforces no replay window; Slack's 5 minutes is the model.
FRESHNESS = 300
TIMESTAMP, NONCE, SIGNATURE = (
    "X-Lark-Request-Timestamp",
    "X-Lark-Request-Nonce",
    "X-Lark-Signature",
)
# lark-oapi looks these up case-sensitively; ASGI servers hand them over in lower case.
CANONICAL_HEADERS = {
    name.lower(): name
    for name in (TIMESTAMP, NONCE, SIGNATURE, "X-Request-Id", "X-Tt-Logid", "Content-Type")
}
AUTH_FAILURES = {
    "signature verification failed": "signature",
    "invalid verification_token": "token",
    "encrypt_key not found": "undecryptable",
    "webhook credentials provider failed": "token",
}
_UNREGISTERED = re.compile(r"processor not found, type: ([\w.\-]+)")


class QuietRejections(logging.Filter):
    """Drops lark-oapi's ERROR traceback for requests it refuses: we count and log them."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the dispatcher's "handle event failed" records."""
        return not str(record.msg).startswith("handle event failed")


def quiet_lark_rejections() -> None:
    """Install QuietRejections on lark-oapi's logger once per process."""
    logger = logging.getLogger("Lark")
    if not any(isinstance(f, QuietRejections) for f in logger.filters):
        logger.addFilter(QuietRejections())


def canonical_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request headers with the names lark-oapi expects (it reads them case-sensitively)."""
    return {CANONICAL_HEADERS.get(name.lower(), name): value for name, value in headers}


def is_fresh(stamp: str, now: float) -> bool:
    """Whether a request timestamp (unix seconds) is within FRESHNESS of now."""
    try:
        value = int(stamp.strip())
    except ValueError:
        return False
    return abs(now - value) <= FRESHNESS


class Webhook:
    """``POST /feishu/events``: size, JSON and freshness checked here, the rest by lark-oapi."""

    def __init__(
        self,
        handler: Any,
        metrics: Metrics,
        *,
        encrypted: bool,
        on_unknown: Callable[[str | None], None],
    ) -> None:
        self.handler = handler
        self.metrics = metrics
        self.encrypted = encrypted
        self.on_unknown = on_unknown

    def _reject(self, reason: str, status: int, message: str) -> Response:
        self.metrics.rejected.labels(PLATFORM, reason).inc()
        log.info("feishu: request refused (%s)", reason)
        return JSONResponse({"msg": message}, status_code=status)

    async def endpoint(self, request: Request) -> Response:
        """Check size, JSON and freshness; lark-oapi decrypts and verifies; answer in time."""
        body = await request.body()
        if len(body) > MAX_BODY:
            return self._reject("too_large", 413, "request body too large")
        try:
            parsed = json.loads(body)
        except ValueError:  # UnicodeDecodeError included
            return self._reject("malformed", 400, "malformed request")
        if not isinstance(parsed, dict):
            return self._reject("malformed", 400, "malformed request")
        headers = canonical_headers(request.headers.items())
        signed = all(headers.get(name) for name in (TIMESTAMP, NONCE, SIGNATURE))
        stamp = headers.get(TIMESTAMP)
        if stamp is not None and not is_fresh(stamp, time.time()):
            return self._reject("stale", 401, "stale request")
        raw = RawRequest()
        raw.uri = PATH
        raw.body = body
        raw.headers = headers
        answer = await run_in_threadpool(self.handler.do, raw)
        return self._translate(answer, signed=signed)

    def _translate(self, answer: Any, *, signed: bool) -> Response:
        """lark-oapi answers every failure with 500; tell the sender's faults apart."""
        content = bytes(answer.content or b"")
        if answer.status_code == 200:
            return Response(content, status_code=200, media_type="application/json")
        message = content.decode("utf-8", "replace")
        # Only reached after the token and signature checks passed.
        found = _UNREGISTERED.search(message)
        if found:
            self.on_unknown(found.group(1))
            return JSONResponse({"msg": "ignored"})
        if self.encrypted and not signed:
            return self._reject("unsigned", 401, "missing signature")
        for needle, reason in AUTH_FAILURES.items():
            if needle in message:
                return self._reject(reason, 401, "unauthorized")
        return self._reject("undecryptable", 400, "undecryptable request")
