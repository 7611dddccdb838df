"""Hostile HTTP against real ``dcml-bot serve`` processes: huge and slow bodies, slow heads, many
connections, forged and malformed requests, clients hanging up.

Each test talks to the process over raw sockets on 127.0.0.1 and reads what it can see from the
outside: the answers, /proc/PID (memory, open files) and the process's log. Timings are never
asserted, only generous bounds ("cut within the timeout plus 15 s", "+150 MB").
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from fakes.slack import SECRET, FakeSlack

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "dcml-bot"
GIB = 1 << 30
CHUNK = bytes(64 * 1024)  # every streamed body is this buffer sent again and again
TIMEOUT = 3  # DCML_BOT_HTTP_TIMEOUT_SECONDS of the processes (10 by default)


@dataclass
class Served:
    """A running ``dcml-bot serve``: its process, port and log file."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def kib(self, field: str) -> int:
        """A ``/proc/PID/status`` field (VmRSS, VmHWM) in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def fds(self) -> int:
        """Open file descriptors of the process."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def lines(self, since: int = 0) -> list[str]:
        """Log lines written after byte ``since`` of the log."""
        with self.log.open("rb") as file:
            file.seek(since)
            return file.read().decode("utf-8", "replace").splitlines()

    def mark(self) -> int:
        """Where the log ends now (for ``lines``)."""
        return self.log.stat().st_size

    def get(self, path: str = "/healthz") -> int | str:
        """The status of a GET, or the name of the error instead of an answer."""
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            connection.close()
            return response.status
        except OSError as exc:
            return type(exc).__name__


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(
    tmp_path: Path, fake: FakeSlack, *, nofile: int | None = None, **settings: str
) -> Iterator[Served]:
    """``dcml-bot serve`` with Slack over HTTP, SQLite in ``tmp_path``, ``DCML_BOT_<settings>``."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("DCML_BOT_", "SLACK_", "FEISHU_"))
    }
    env.update(
        {
            "DCML_BOT_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}",
            "DCML_BOT_HOST": "127.0.0.1",
            "DCML_BOT_PORT": str(port),
            "DCML_BOT_HTTP_TIMEOUT_SECONDS": str(TIMEOUT),
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": SECRET,
            "DCML_BOT_SLACK_API_URL": fake.base + "/api/",
            "NO_PROXY": "127.0.0.1",
            **{f"DCML_BOT_{k.upper()}": v for k, v in settings.items()},
        }
    )

    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(SCRIPT), "serve"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=limit_files,
        )
    served = Served(proc, port, log)
    try:
        deadline = time.monotonic() + 60
        while served.get() != 200:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSlack]:
    started = FakeSlack().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def bot(fake: FakeSlack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One process for the tests that leave it as they found it, logging everything at INFO."""
    with serving(tmp_path_factory.mktemp("bot"), fake, log_all="1") as served:
        yield served


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)


# --- raw HTTP -----------------------------------------------------------------------------------


def head(path: str = "/slack/events", **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")  # as a raw client sends them


def status_of(sock: socket.socket, timeout: float = 30) -> int | str:
    """The status of the answer on ``sock``, or the name of the error instead."""
    sock.settimeout(timeout)
    try:
        line = sock.recv(4096).split(b"\r\n")[0]
    except OSError as exc:
        return type(exc).__name__
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else repr(line)


def stream(port: int, total: int, *, chunked: bool = False) -> tuple[int | str, int]:
    """POST ``total`` bytes of zeros to /slack/events as fast as the server takes them (the
    body is generated, never allocated); the answer's status and the bytes sent before it."""
    sock = socket.create_connection(("127.0.0.1", port))
    framing = {"Transfer_Encoding": "chunked"} if chunked else {"Content_Length": str(total)}
    sent = 0
    try:
        sock.sendall(head(Content_Type="application/json", **framing))
        while sent < total:
            if chunked:
                sock.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
            else:
                sock.sendall(CHUNK)
            sent += len(CHUNK)
    except OSError:  # the server answered and closed: what matters is the answer
        pass
    try:
        return status_of(sock), sent
    finally:
        sock.close()


def signed(body: str, stamp: str | None = None) -> dict[str, str]:
    stamp = stamp or str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X_Slack_Request_Timestamp": stamp, "X_Slack_Signature": "v0=" + digest}


def command(text: str) -> str:
    return urlencode({"command": "/dcml", "text": text, "user_id": "U0LIMITS", "team_id": "T0001"})


def post(port: int, body: bytes, **headers: str) -> tuple[int | str, bytes]:
    """A whole POST to /slack/events: the status and the answer's body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    connection.request(
        "POST",
        "/slack/events",
        body=body,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    return response.status, answer


# --- 1. bodies are refused before they are read --------------------------------------------------


def test_a_1_gib_body_gets_413_and_the_memory_stays_bounded(bot: Served) -> None:
    before = bot.kib("VmHWM")
    assert stream(bot.port, GIB)[0] == 413  # Content-Length: refused before reading
    status, sent = stream(bot.port, GIB, chunked=True)  # counted while streaming
    assert status == 413 and sent < GIB
    results: list[int | str] = []
    posts = [
        threading.Thread(target=lambda: results.append(stream(bot.port, 200 << 20)[0]))
        for _ in range(8)
    ]
    for thread in posts:
        thread.start()
    for thread in posts:
        thread.join(120)
    assert results == [413] * 8
    growth_mb = (bot.kib("VmHWM") - before) / 1024
    assert growth_mb < 150, f"peak RSS grew by {growth_mb:.0f} MB"
    assert bot.get() == 200


def test_a_huge_request_head_gets_431_and_the_memory_stays_bounded(bot: Served) -> None:
    before = bot.kib("VmHWM")
    sock = socket.create_connection(("127.0.0.1", bot.port))
    sent = 0
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        line = b"X-Filler: " + b"a" * 8000 + b"\r\n"
        while sent < 200 << 20:
            sock.sendall(line)
            sent += len(line)
    except OSError:
        pass
    assert status_of(sock) in {431, "ConnectionResetError"}
    sock.close()
    assert sent < 50 << 20, "the server kept reading the head"
    assert (bot.kib("VmHWM") - before) / 1024 < 150
    assert bot.get() == 200


def test_a_body_under_the_limits_reaches_the_platform_whole(bot: Served) -> None:
    # Chunked, in pieces with pauses (within the timeout), with "Expect: 100-continue".
    body = command("essential").encode()
    sock = socket.create_connection(("127.0.0.1", bot.port))
    sock.sendall(
        head(
            Content_Type="application/x-www-form-urlencoded",
            Transfer_Encoding="chunked",
            Expect="100-continue",
            **signed(body.decode()),
        )
    )
    assert status_of(sock) == 100
    for piece in (body[:10], body[10:30], body[30:]):
        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        time.sleep(0.3)
    sock.sendall(b"0\r\n\r\n")
    answer = b""
    sock.settimeout(15)
    while b"\r\n\r\n" not in answer or b'"blocks"' not in answer:
        data = sock.recv(65536)
        assert data, answer
        answer += data
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200 ")


# --- 2. slow bodies and heads are cut; /healthz answers meanwhile --------------------------------


def test_trickled_bodies_and_heads_are_cut_while_healthz_answers(bot: Served) -> None:
    mark = bot.mark()
    bodies = []
    for _ in range(210):
        sock = socket.create_connection(("127.0.0.1", bot.port))
        sock.sendall(head(Content_Length="1000") + b"x")
        bodies.append(sock)
    heads = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", bot.port))
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: 127.")
        heads.append(sock)
    started = time.monotonic()
    assert bot.get() == 200  # while 230 slow connections are open
    for sock in bodies:  # a byte now and then: alive, never done
        sock.sendall(b"x")
    assert [status_of(sock, TIMEOUT + 15) for sock in bodies] == [408] * len(bodies)
    for sock in heads:  # closed without an answer
        sock.settimeout(TIMEOUT + 15)
        assert sock.recv(100) == b""
    elapsed = time.monotonic() - started
    for sock in bodies + heads:
        sock.close()
    assert elapsed < TIMEOUT + 15
    log = bot.lines(mark)
    timeouts = [line for line in log if "with 408: body not complete in 3 s" in line]
    assert len(timeouts) == len(bodies)
    assert timeouts[0].endswith("(2/1000 bytes)")
    assert sum("without a complete request head in 3 s" in line for line in log) == len(heads)
    assert bot.get() == 200


def test_1100_slow_connections_cannot_take_every_file_descriptor(
    fake: FakeSlack, tmp_path: Path
) -> None:
    # The reported outage: 1,100 trickling connections, 1,024 open files allowed.
    with serving(tmp_path, fake, nofile=1024) as served:
        socks = []
        for n in range(1100):
            sock = socket.create_connection(("127.0.0.1", served.port))
            sock.sendall(head(Content_Length="1000") if n % 2 else b"POST /slack")
            socks.append(sock)
        most = served.fds()
        statuses = set()
        for _ in range(10):
            statuses.add(served.get())
            most = max(most, served.fds())
            time.sleep(0.1)
        assert most < 1024 - 100, most
        assert statuses <= {200, 503}, statuses  # an answer, never a reset
        wait_until(lambda: served.get() == 200, TIMEOUT + 15)
        for sock in socks:
            sock.close()
        metrics = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        metrics.request("GET", "/metrics")
        text = metrics.getresponse().read().decode()
        refused = re.search(
            r'rejected_requests_total\{platform="http",reason="connections"} (\d+)', text
        )
        assert refused is not None and int(refused.group(1)) >= 1100 - 256
        log = "\n".join(served.lines())
        assert log.count("256 connections open: new ones get 503 until fewer") == 1
        assert "Traceback" not in log


# --- 3. a forged request is one line, without its body -------------------------------------------

FORGED = "2026-11-29 08:00:00,000 CRITICAL dcml_bot: forged"


@pytest.mark.parametrize(("level", "lines"), [("INFO", 1), ("DEBUG", 1), ("WARNING", 0)])
def test_a_forged_request_is_logged_as_one_line_without_its_body(
    fake: FakeSlack, tmp_path: Path, level: str, lines: int
) -> None:
    marker = "BODYMARKER" * 2000
    body = command(marker) + "\n" + FORGED
    with serving(tmp_path, fake, log_all="1", log_level=level) as served:
        mark = served.mark()
        headers = signed(body)
        headers["X_Slack_Signature"] = "v0=" + "0" * 64
        status, answer = post(
            served.port, body.encode(), Content_Type="application/x-www-form-urlencoded", **headers
        )
        assert status == 401 and marker not in answer.decode()
        assert served.get() == 200
        log = served.lines(mark)
    assert not any("BODYMARKER" in line for line in log)
    assert not any(line.startswith(FORGED[:20]) for line in log)
    refused = [line for line in log if "slack: refused POST '/slack/events' with 401" in line]
    assert len(refused) == lines, log
    if lines:
        assert refused[0].endswith(f"bad or stale signature ({len(body.encode())} bytes)")


def test_a_refused_path_with_a_newline_stays_on_its_line(bot: Served) -> None:
    mark = bot.mark()
    sock = socket.create_connection(("127.0.0.1", bot.port))
    sock.sendall(head("/x%0A" + FORGED.replace(" ", "%20"), Content_Length=str(GIB)))
    assert status_of(sock) == 413
    sock.close()
    log = bot.lines(mark)
    assert not any(line.startswith(FORGED[:20]) for line in log)
    assert [line.split(" ", 2)[2] for line in log] == [
        "INFO dcml_bot.http_limits: http: refused POST '/x\\n"
        + FORGED
        + f"' with 413: body over 262144 bytes (0/{GIB} bytes)"
    ]


# --- 6. malformed signing headers get 400, hang-ups no traceback ---------------------------------


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X_Slack_Request_Timestamp", "abc"),
        ("X_Slack_Request_Timestamp", ""),
        ("X_Slack_Request_Timestamp", "1.5e9"),
        ("X_Slack_Signature", "v0=\u00e9\u00e9"),
        ("X_Lark_Request_Timestamp", "yesterday"),
    ],
)
def test_malformed_signing_headers_get_400_not_500(bot: Served, header: str, value: str) -> None:
    mark = bot.mark()
    body = command("essential")
    headers: dict[str, Any] = {
        "Content_Type": "application/x-www-form-urlencoded",
        "Content_Length": str(len(body)),
    }
    headers.update(signed(body))
    headers[header] = value
    sock = socket.create_connection(("127.0.0.1", bot.port))
    sock.sendall(head(**headers) + body.encode())
    assert status_of(sock) == 400
    sock.close()
    log = bot.lines(mark)
    assert sum("with 400: malformed" in line for line in log) == 1, log
    assert not any(" ERROR " in line or "Traceback" in line for line in log)
    form = "application/x-www-form-urlencoded"
    assert post(bot.port, body.encode(), Content_Type=form, **signed(body))[0] == 200  # control


def test_a_client_hanging_up_mid_upload_logs_one_quiet_line(bot: Served) -> None:
    mark = bot.mark()
    sock = socket.create_connection(("127.0.0.1", bot.port))
    sock.sendall(head(Content_Length="100000", **signed("x")) + b"x" * 1000)
    time.sleep(0.3)
    sock.close()
    wait_until(lambda: any("hung up" in line for line in bot.lines(mark)), 10)
    time.sleep(0.3)
    log = bot.lines(mark)
    assert [line.split(" ", 2)[2] for line in log if "/slack/events" in line] == [
        "INFO dcml_bot.http_limits: http: POST '/slack/events': the client hung up "
        "(1000/100000 bytes)"
    ]
    assert not any(" ERROR " in line or "Traceback" in line for line in log)


def test_a_low_open_file_limit_lowers_the_connection_cap(fake: FakeSlack, tmp_path: Path) -> None:
    with serving(tmp_path, fake, nofile=300) as served:
        socks = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(400)]
        time.sleep(0.5)
        most = served.fds()
        assert served.get() == 503
        for sock in socks:
            sock.close()
        log = "\n".join(served.lines())
    assert most < 300 - 50, most
    assert "http: at most 200 connections, not 256: the open-file limit is 300 (ulimit -n)" in log
    assert log.count("200 connections open: new ones get 503 until fewer") == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [("HTTP_TIMEOUT_SECONDS", "0"), ("HTTP_TIMEOUT_SECONDS", "inf"), ("HTTP_MAX_CONNECTIONS", "0")],
)
def test_the_limits_refuse_values_that_would_disable_them(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    from dcml_bot.config import SettingsError
    from dcml_bot.settings import load_settings

    monkeypatch.setenv(f"DCML_BOT_{name}", value)
    with pytest.raises(SettingsError, match=f"environment variable DCML_BOT_{name}"):
        load_settings(ROOT / "config" / "dcml-bot.toml")
