"""Hostile HTTP: memory under huge bodies, slow connections, file descriptors, forged-request logs.

Run: .venv/bin/python bench/bench_http_limits.py [--no-baseline] [--connections 1100]

A Slack-only ``dcml-bot serve`` child (SQLite in a temporary directory, the benches' fake Web API)
gets, over raw sockets on 127.0.0.1:

1. bodies: a 200 MB request head, one 1 GiB POST with Content-Length, one 1 GiB chunked POST and
   eight parallel 200 MB POSTs to /slack/events, each streamed from one buffer (generated, never
   allocated): the answer, seconds to it, bytes sent before it, the child's VmRSS / VmHWM after;
2. trickles: 200 connections sending a POST's body a byte a second: seconds from opening to the
   408 (min / median / max), /healthz while they are open, the child's open files;
3. file descriptors: ``--connections`` slow connections (half a head, half a body) against a
   child whose open-file limit is 1,024 (the reported outage): the most open files seen, what
   /healthz answered meanwhile, seconds until it answers 200 again;
4. forgeries: 200 requests with a bad signature and a 256 KiB - 1 body holding a newline, at
   ``DCML_BOT_LOG_ALL=1``: log bytes and lines they add (the issue measured 52 MB).

Baseline: the bare Bolt app (bench/bare_bolt_app.py: Starlette + uvicorn + Bolt, no limits) under
1-3 (``--no-baseline`` skips it: its 1 GiB body alone takes about 2 GB of memory).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import os
import resource
import socket
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from benchkit import (
    SIGNING_SECRET,
    Child,
    RateLimitedSlack,
    bare_command,
    bot_env,
    free_port,
    log,
    machine,
    pct,
    serve_command,
    setup_logging,
)

GIB = 1 << 30
CHUNK = bytes(64 * 1024)
TRICKLES = 200


def healthz(port: int, timeout: float = 10) -> int | str:
    """The status of GET /healthz, or the error's name."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.status
    except OSError as exc:
        return type(exc).__name__


def answer(sock: socket.socket, timeout: float = 60) -> int | str:
    """The status of the answer on ``sock``, or the error's name."""
    sock.settimeout(timeout)
    try:
        line = sock.recv(4096).split(b"\r\n")[0]
    except OSError as exc:
        return type(exc).__name__
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else "closed"


def stream(port: int, total: int, chunked: bool = False) -> tuple[int | str, float, int]:
    """POST ``total`` zero bytes to /slack/events: the status, seconds to it, bytes sent."""
    started = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port))
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    sent = 0
    try:
        sock.sendall(f"POST /slack/events HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode())
        while sent < total:
            sock.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK)
            sent += len(CHUNK)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    status = answer(sock, 300)
    sock.close()
    return status, time.perf_counter() - started, sent


def flood_head(port: int, total: int) -> tuple[int | str, float, int]:
    """A GET whose headers never end (8 KB each, up to ``total`` bytes): status, seconds, sent."""
    started = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port))
    line = b"X-Filler: " + b"a" * 8000 + b"\r\n"
    sent = 0
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        while sent < total:
            sock.sendall(line)
            sent += len(line)
        sock.sendall(b"\r\n")
    except OSError:
        pass
    status = answer(sock, 300)
    sock.close()
    return status, time.perf_counter() - started, sent


def start(kind: str, fake: RateLimitedSlack, workdir: Path, **env: str) -> tuple[Child, int]:
    """The bot (``serve``) or the baseline (``bare``), healthy."""
    port = free_port()
    bot = bot_env(f"sqlite:///{workdir}/{kind}-{port}.sqlite3", port, slack_api=fake.base + "/api/")
    bot.update(env)
    command = (
        serve_command() if kind == "serve" else bare_command(port, fake.base + "/api/", inline=True)
    )
    child = Child(command, bot, workdir / f"{kind}-{port}.log")
    child.wait_healthy(f"http://127.0.0.1:{port}")
    return child, port


def mb(kib: int) -> str:
    return f"{kib / 1024:.0f} MB"


def bodies(child: Child, port: int, name: str) -> None:
    """1: a huge head and huge bodies, memory after each."""
    log.info(
        "%s: ready, VmRSS %s, VmHWM %s", name, mb(child.status("VmRSS")), mb(child.status("VmHWM"))
    )
    status, seconds, sent = flood_head(port, 200 << 20)
    log.info(
        "%s: a 200 MB request head -> %s after %.3f s, %s sent; VmRSS %s, VmHWM %s",
        name, status, seconds, mb(sent // 1024),
        mb(child.status("VmRSS")), mb(child.status("VmHWM")),
    )  # fmt: skip
    for label, total, chunked in (
        ("1 GiB, Content-Length", GIB, False),
        ("1 GiB, chunked", GIB, True),
    ):
        status, seconds, sent = stream(port, total, chunked)
        log.info(
            "%s: %s -> %s after %.3f s, %s sent; VmRSS %s, VmHWM %s",
            name, label, status, seconds, mb(sent // 1024),
            mb(child.status("VmRSS")), mb(child.status("VmHWM")),
        )  # fmt: skip
    results: list[tuple[int | str, float, int]] = []
    threads = [
        threading.Thread(target=lambda: results.append(stream(port, 200 << 20))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.info(
        "%s: 8 x 200 MB in parallel -> %s, slowest %.3f s; VmRSS %s, VmHWM %s",
        name, dict(Counter(r[0] for r in results)), max(r[1] for r in results),
        mb(child.status("VmRSS")), mb(child.status("VmHWM")),
    )  # fmt: skip


def trickles(child: Child, port: int, name: str, wait: float) -> None:
    """2: slow bodies, cut (or not) by the body timeout; /healthz meanwhile."""
    socks, opened = [], []
    for _ in range(TRICKLES):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        socks.append(sock)
        opened.append(time.perf_counter())
        sock.setblocking(False)
    health, latencies = [], []
    cut: dict[int, tuple[float, int | str]] = {}
    deadline = time.perf_counter() + wait
    files = 0
    while len(cut) < len(socks) and time.perf_counter() < deadline:
        files = max(files, len(os.listdir(f"/proc/{child.pid}/fd")))
        began = time.perf_counter()
        health.append(healthz(port))
        latencies.append(time.perf_counter() - began)
        for n, sock in enumerate(socks):
            if n in cut:
                continue
            try:
                sock.send(b"x")
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                cut[n] = (time.perf_counter() - opened[n], type(exc).__name__)
                continue
            status = int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else "closed"
            cut[n] = (time.perf_counter() - opened[n], status)
        time.sleep(1.0)
    for sock in socks:
        sock.close()
    times = [seconds for seconds, _ in cut.values()]
    log.info(
        "%s: %d trickling bodies: %d cut (%s) in %s; still open after %.0f s: %d; /healthz "
        "meanwhile %s, median %.1f ms; at most %d open files",
        name, len(socks), len(cut), dict(Counter(s for _, s in cut.values())),
        f"{min(times):.2f} / {pct(times, 0.5):.2f} / {max(times):.2f} s (min / median / max)"
        if times else "-",
        wait, len(socks) - len(cut), dict(Counter(health)),
        pct(latencies, 0.5) * 1000, files,
    )  # fmt: skip


def descriptors(child: Child, port: int, name: str, connections: int) -> None:
    """3: many slow connections against 1,024 open files."""
    socks = []
    refused = 0
    for n in range(connections):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(
                b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                if n % 2
                else b"POST /slack"
            )
            socks.append(sock)
        except OSError:
            refused += 1
    started = time.perf_counter()
    most, health = 0, []
    back = None
    while time.perf_counter() - started < 30:
        most = max(most, len(os.listdir(f"/proc/{child.pid}/fd")))
        status = healthz(port, 3)
        health.append(status)
        if status == 200 and back is None and len(health) > 1:
            back = time.perf_counter() - started
            break
        time.sleep(0.5)
    for sock in socks:
        sock.close()
    log.info(
        "%s: %d slow connections (%d refused at connect), open-file limit 1,024: at most %d "
        "open files; /healthz %s; answering 200 again after %s",
        name, connections, refused, most, dict(Counter(health)),
        f"{back:.1f} s" if back is not None else "no answer in 30 s",
    )  # fmt: skip


def forgeries(fake: RateLimitedSlack, workdir: Path) -> None:
    """4: what 200 forged requests with big bodies add to the log, at log_all."""
    child, port = start("serve", fake, workdir, DCML_BOT_LOG_ALL="1")
    try:
        before = child.log_path.stat().st_size
        lines_before = len(child.log_path.read_bytes().splitlines())
        body = "command=%2Fdcml&text=" + "a" * (256 * 1024 - 200) + "\n2026 CRITICAL forged"
        body = body[: 256 * 1024 - 1]
        stamp = str(int(time.time()))
        wrong = hmac.new(
            b"not-" + SIGNING_SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256
        )
        statuses = Counter()
        for _ in range(200):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request(
                "POST",
                "/slack/events",
                body=body.encode(),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Slack-Request-Timestamp": stamp,
                    "X-Slack-Signature": "v0=" + wrong.hexdigest(),
                },
            )
            statuses[connection.getresponse().status] += 1
            connection.close()
        time.sleep(0.5)
        added = child.log_path.stat().st_size - before
        lines = len(child.log_path.read_bytes().splitlines()) - lines_before
        log.info(
            "forgeries: 200 x %d-byte forged bodies -> %s; the log grew by %d bytes, %d lines "
            "(%.0f bytes a request)",
            len(body), dict(statuses), added, lines, added / 200,
        )  # fmt: skip
    finally:
        child.stop()


def main() -> None:
    """Measure and print."""
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--connections", type=int, default=1100)
    args = parser.parse_args()
    log.info("machine: %s", machine())
    kinds = ["serve"] if args.no_baseline else ["serve", "bare"]
    fake = RateLimitedSlack().start()
    try:
        with tempfile.TemporaryDirectory(prefix="dcml-http-") as name:
            workdir = Path(name)
            for kind in kinds:
                child, port = start(kind, fake, workdir)
                try:
                    bodies(child, port, kind)
                    trickles(child, port, kind, wait=25)
                finally:
                    child.stop()
            for kind in kinds:
                child, port = start(kind, fake, workdir)
                resource.prlimit(child.pid, resource.RLIMIT_NOFILE, (1024, 1024))
                try:
                    descriptors(child, port, kind, args.connections)
                finally:
                    child.stop()
            forgeries(fake, workdir)
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
