"""Feishu's long connection: lark-oapi's WebSocket client on a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import lark_oapi as lark  # type: ignore[import-untyped]
import lark_oapi.ws.client as lark_ws_client  # type: ignore[import-untyped]

log = logging.getLogger(__name__)


def event_type_of(payload: Mapping[str, Any]) -> str | None:
    """The type of a v2 event (``header.event_type``) or v1 event (``event.type``)."""
    header = payload.get("header")
    if isinstance(header, dict) and isinstance(header.get("event_type"), str):
        return str(header["event_type"])
    event = payload.get("event")
    if isinstance(event, dict) and isinstance(event.get("type"), str):
        return "p1:" + str(event["type"])
    return None


class KnownEventsOnly:
    """What the long connection dispatches to: events of types nobody registered are acked."""

    def __init__(
        self, handler: Any, known: Iterable[str], on_unknown: Callable[[str | None], None]
    ) -> None:
        self.handler = handler
        self.known = frozenset(known)
        self.on_unknown = on_unknown

    def _do_without_validation(self, payload: bytes) -> Any:
        """lark-oapi's entry point for long-connection frames (plaintext, already authenticated)."""
        try:
            data = json.loads(payload)
        except ValueError:
            data = None
        event_type = event_type_of(data) if isinstance(data, dict) else None
        if event_type not in self.known:
            self.on_unknown(event_type)
            return None
        return self.handler._do_without_validation(payload)


class LongConnection:
    """lark-oapi's WebSocket client, on a daemon thread with an event loop of its own."""

    def __init__(self, app_id: str, app_secret: str, handler: Any, domain: str) -> None:
        self.app_id = app_id
        self._secret = app_secret
        self.handler = handler
        self.domain = domain
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._ready = threading.Event()
        self._stopping = threading.Event()

    def start(self) -> None:
        """Connect in the background; never blocks the caller."""
        self._thread = threading.Thread(target=self._run, name="feishu-ws", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # The SDK drives a module-level loop captured at import time (platforms.md §11): give it
        # this thread's, so it never touches a loop someone else is running.
        lark_ws_client.loop = loop
        self._loop = loop
        try:
            self._client = lark.ws.Client(
                self.app_id,
                self._secret,
                event_handler=self.handler,
                domain=self.domain,
                log_level=lark.LogLevel.WARNING,
            )
            self._ready.set()
            if not self._stopping.is_set():
                self._client.start()
        except Exception:
            if not self._stopping.is_set():
                log.exception("feishu: the long connection ended")
        finally:
            self._ready.set()
            self._close(loop)

    def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        client = self._client
        try:
            # Cancel the receive and ping loops first: closing under a live receive loop makes
            # the SDK log the close as an error and leave a failed task behind.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            gathered = asyncio.gather(*tasks, return_exceptions=True)
            loop.run_until_complete(asyncio.wait_for(gathered, 2))
            if client is not None:
                loop.run_until_complete(asyncio.wait_for(client._disconnect(), 2))
        except Exception as exc:
            log.debug("feishu: closing the long connection: %s", exc)
        finally:
            loop.close()

    def is_alive(self) -> bool:
        """Whether the connection's thread is still running."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """End the connection; gives up waiting after ``timeout`` (the thread is a daemon)."""
        self._stopping.set()
        if self._thread is None:
            return
        self._ready.wait(timeout)
        if self._client is not None:
            self._client._auto_reconnect = False
        loop = self._loop
        if loop is not None:
            # Already closed means the thread is finishing anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("feishu: the long connection did not stop within %.0f s", timeout)
