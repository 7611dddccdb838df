"""A catalog URL that trickles: commands, reloads and SIGTERM while a reload downloads it.

Run: .venv/bin/python bench/bench_reload.py [--commands 20]

A ``dcml-bot serve`` child (Slack-only, SQLite in a temporary directory, the catalog at a URL
served by this script) starts with the guide served at once; then the URL trickles a byte every
0.2 s for ever (``catalog_deadline_seconds`` 30, the default). Nine admins' ``/dcml reload`` go in
at once, then ``--commands`` known members' ``/dcml essential`` one after another (as before the
reloads, the baseline): each ack's latency, and how many acks were "Working on it…" instead of
the answer; ``GET /healthz`` meanwhile; then SIGTERM and the time to exit (given up after 90 s).
The child inherits ``PYTHONPATH``, so ``PYTHONPATH=<checkout>/src`` measures that checkout's code
(before / after a change).
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchkit import (
    ADMIN,
    ROOT,
    Child,
    RateLimitedSlack,
    bot_env,
    free_port,
    log,
    machine,
    pct,
    post_command,
    serve_command,
    setup_logging,
)

GUIDE = (ROOT / "config" / "catalog" / "dcml.md").read_bytes()
BUSY = "Working on it"
RELOADS = 9
GIVE_UP = 90.0


class Trickle:
    """The catalog URL: the guide at once, or (``trickle``) a byte every 0.2 s until closed."""

    def __init__(self) -> None:
        self.trickle = False
        self.closed = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                if not outer.trickle:
                    self.send_header("Content-Length", str(len(GUIDE)))
                    self.end_headers()
                    self.wfile.write(GUIDE)
                    return
                self.end_headers()
                try:
                    while not outer.closed.wait(0.2):
                        self.wfile.write(b"-")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/dcml.md"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def timed_command(base: str, text: str, user: str, respond: str) -> tuple[float, bool, Any]:
    """One signed command: (seconds to the ack, whether the ack was "Working on it…", body)."""
    started = time.perf_counter()
    status, body = post_command(base, text, user, respond, timeout=60)
    took = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"/dcml {text} answered {status}: {body}")
    said = body.get("text", "") if isinstance(body, dict) else str(body)
    return took, said.startswith(BUSY), said


def commands(base: str, respond: str, count: int) -> tuple[list[float], int]:
    """``count`` members' ``/dcml essential`` in turn: ack latencies, and how many were busy."""
    times, busy = [], 0
    for n in range(count):
        took, was_busy, _ = timed_command(base, "essential", f"U0R{n:04d}", respond)
        times.append(took)
        busy += was_busy
    return times, busy


def healthz(base: str) -> tuple[int, float]:
    """``GET /healthz``: status and seconds."""
    started = time.perf_counter()
    split = urlsplit(base)
    connection = http.client.HTTPConnection(split.hostname, split.port, timeout=60)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    return response.status, time.perf_counter() - started


def main() -> None:
    """Measure and print."""
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=20)
    args = parser.parse_args()
    log.info("machine: %s", machine())
    log.info("code: %s", os.environ.get("PYTHONPATH") or "the venv's installed dcml_bot")
    fake = RateLimitedSlack().start()
    catalog = Trickle()
    respond = fake.base + "/respond/bench"
    with tempfile.TemporaryDirectory(prefix="dcml-reload-") as name:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        extra = {"DCML_BOT_CATALOG": catalog.url, "DCML_BOT_CATALOG_DEADLINE_SECONDS": "30"}
        if os.environ.get("PYTHONPATH"):
            extra["PYTHONPATH"] = os.environ["PYTHONPATH"]
        env = bot_env(
            f"sqlite:///{Path(name) / 'reload.sqlite3'}",
            port,
            slack_api=fake.base + "/api/",
            extra=extra,
        )
        child = Child(serve_command(), env, Path(name) / "serve.log")
        try:
            child.wait_healthy(base)
            commands(base, respond, args.commands)  # the members' first contact, not measured
            quiet, quiet_busy = commands(base, respond, args.commands)
            log.info(
                "no reload: /dcml essential ack p50 %.3f s, max %.3f s; %d of %d busy",
                pct(quiet, 0.5),
                max(quiet),
                quiet_busy,
                len(quiet),
            )
            catalog.trickle = True
            with ThreadPoolExecutor(RELOADS) as pool:
                reloads = [
                    pool.submit(timed_command, base, "reload", ADMIN, respond)
                    for _ in range(RELOADS)
                ]
                time.sleep(2.5)  # past the first reload's answer budget
                during, during_busy = commands(base, respond, args.commands)
                status, health_seconds = healthz(base)
                answered = [future.result() for future in reloads]
            log.info(
                "%d reloads at once: acks p50 %.3f s, max %.3f s; %d 'Working on it…', "
                "%d 'already running'",
                RELOADS,
                pct([a[0] for a in answered], 0.5),
                max(a[0] for a in answered),
                sum(a[1] for a in answered),
                sum("already running" in a[2] for a in answered),
            )
            log.info(
                "during the trickling reload: /dcml essential ack p50 %.3f s, max %.3f s; "
                "%d of %d busy ('Working on it…'); /healthz %d in %.3f s",
                pct(during, 0.5),
                max(during),
                during_busy,
                len(during),
                status,
                health_seconds,
            )
            started = time.perf_counter()
            child.process.send_signal(signal.SIGTERM)
            try:
                code: int | str = child.process.wait(GIVE_UP)
                exit_seconds = f"{time.perf_counter() - started:.2f} s"
            except subprocess.TimeoutExpired:
                code, exit_seconds = "none", f"> {GIVE_UP:.0f} s (then SIGKILL)"
            log.info("SIGTERM during the download → exit %s after %s", code, exit_seconds)
        finally:
            child.stop()
            catalog.close()
            fake.stop()


if __name__ == "__main__":
    main()
