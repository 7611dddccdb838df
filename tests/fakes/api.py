"""Local fakes at the wire: a fake HTTP API server on port 0, and a running bot service.

``FakeAPI`` is the one fake Web API server of the tests and of the benches: fakes.slack and
fakes.feishu build on it (bench/benchkit.py uses their rate-limited kinds, with tests/ on
``sys.path``).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import uvicorn

Reply = tuple[int, Any, dict[str, str]]
Handler = Callable[[dict[str, Any]], Reply]


class FakeAPI:
    """A threaded HTTP server on 127.0.0.1, port 0, answering from per-path handlers.

    A handler gets the request as a dict (``method``, ``path``, ``query``, ``headers`` and the
    ``body`` parsed from JSON or a form, else text) and returns ``(status, payload, headers)``;
    a path without one answers 200 ``{"ok": true}``. ``hits`` counts requests per path.

    - ``record``: also keep every request dict in ``calls``, oldest first (the tests read them);
      off, nothing is kept, for benches sending thousands of requests.
    - ``keep_alive``: speak HTTP/1.1 and keep connections open for the client's next request (the
      benches' clients reuse them); off, HTTP/1.0, one request per connection.
    """

    def __init__(
        self,
        routes: dict[str, Handler] | None = None,
        *,
        record: bool = True,
        keep_alive: bool = False,
    ) -> None:
        self.routes: dict[str, Handler] = dict(routes or {})
        self.record = record
        self.calls: list[dict[str, Any]] = []
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(size) if size else b""
                url = urlsplit(self.path)
                ctype = (self.headers.get("Content-Type") or "").split(";")[0]
                body: Any
                if raw and (ctype == "application/json" or (not ctype and raw[:1] in b"{[")):
                    body = json.loads(raw)  # lark-oapi posts its token request without a type
                elif ctype == "application/x-www-form-urlencoded":
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                else:
                    body = raw.decode("utf-8", "replace")
                request = {
                    "method": self.command,
                    "path": url.path,
                    "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                    "headers": dict(self.headers.items()),
                    "body": body,
                }
                with outer.lock:
                    outer.hits[url.path] += 1
                    if outer.record:
                        outer.calls.append(request)
                handler = outer.route(url.path)
                status, payload, headers = (
                    handler(request) if handler is not None else (200, {"ok": True}, {})
                )
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"

    def route(self, path: str) -> Handler | None:
        """The handler for a path (None: the default answer); subclasses may choose otherwise."""
        return self.routes.get(path)

    def start(self) -> FakeAPI:
        """Serve on a daemon thread."""
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeAPI:
        """``with FakeSlack() as fake:``: started, and stopped at the end (setup and cleanup)."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_hits(self, path: str, count: int, timeout: float = 5.0) -> bool:
        """Poll until ``path`` has had at least ``count`` requests (the bot's background sends
        arrive later than its answer); False if it has not within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if self.hits[path] >= count:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def requests(self, path: str) -> list[dict[str, Any]]:
        """Recorded requests to one path, oldest first (none unless ``record``)."""
        with self.lock:
            return [c for c in self.calls if c["path"] == path]


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1, port 0; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked; thread-safe (a fake's rate limit)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()
        self._lock = threading.RLock()

    def wait(self) -> float:
        """Seconds until there is a token (0.0: there is one); takes nothing."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    def take(self) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there will be."""
        with self._lock:
            wait = self.wait()
            if not wait:
                self._tokens -= 1.0
            return wait


def retry_after(wait: float) -> str:
    """An honest ``Retry-After``: whole seconds until there is a token, at least 1."""
    return str(max(1, math.ceil(wait)))


def take_all(buckets: list[TokenBucket], lock: threading.Lock) -> float:
    """Take a token from every bucket, or from none: 0.0, or the seconds until all have one."""
    with lock:
        wait = max((bucket.wait() for bucket in buckets), default=0.0)
        if not wait:
            for bucket in buckets:
                bucket.take()
        return wait
