"""Catalog limits: titles with angle brackets, glued and long links; downloads bounded in size (on
the wire and inflated), time and redirects, with credentials never shown; in ``catalog check``
(a real process) and in a running service's refresh, which keeps the last good guide."""

from __future__ import annotations

import base64
import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dcml_bot.catalog import CatalogError, parse_catalog
from dcml_bot.catalog.guides import Guides
from dcml_bot.catalog.loader import FetchLimits, fetch_catalog, redact

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "dcml-bot"
MB = 1024 * 1024
GOOD = "# Guide\n\n### Basics\n\n- `⚡` 📄 [Attention](https://arxiv.org/abs/1706.03762)\n".encode()
USER, SECRET = "reader", "s3cret-token"
TOO_BIG = "larger than 5 MiB (catalog_max_bytes); not a reading list"
CLI_DEADLINE = 3.0


# --- the parser ------------------------------------------------------------------------------


def test_angle_bracket_text_stays_in_titles_while_layout_html_goes(tmp_path: Path) -> None:
    guide = tmp_path / "guide.md"
    guide.write_text(
        "### Basics\n\n"
        "<details><summary><LLMs> basics</summary>\n\n"
        "- `⚡` 📄 [<LLMs> are <b>few-shot</b> learners<br>](https://arxiv.org/abs/2005.14165)\n"
        "- `⚡` 📄 (<RAG>) [Retrieval for Vector<T> and <Data>](https://arxiv.org/abs/2005.11401)"
        ' <img src="x.png"> <a href="https://x.org">code</a> <!-- note -->\n\n'
        "</details>\n",
        encoding="utf-8",
    )
    catalog = parse_catalog(guide.read_text(encoding="utf-8"), str(guide))
    gpt3, rag = catalog.entries
    assert gpt3.title == "<LLMs> are few-shot learners"
    assert (rag.acronym, rag.title) == ("<RAG>", "Retrieval for Vector<T> and <Data>")
    assert rag.notes == ("code",)  # the layout HTML is dropped, as before
    assert [topic.name for topic in catalog.topics] == ["<LLMs> basics"]
    assert catalog.problems == ()


def test_glued_links_are_split_and_identified_by_the_first(tmp_path: Path) -> None:
    first, second = "https://arxiv.org/abs/2402.03300", "https://arxiv.org/abs/2402.06332"
    guide = tmp_path / "guide.md"
    guide.write_text(
        "### Reasoning\n\n"
        "- `⚡` 📄 [Real title](https://arxiv.org/abs/2402.00001)\n"
        f"- `⚡` 📄+🔧 [DeepSeekMath]({first}{second})\n"
        f"- `💎` 📄 {first}{second}\n"
        "- `💎` 📄 [Archived](https://web.archive.org/web/2024/https://example.org/a)\n",
        encoding="utf-8",
    )
    catalog = parse_catalog(guide.read_text(encoding="utf-8"), str(guide))
    math = catalog.get("arxiv:2402.03300")
    assert math is not None and math.title == "DeepSeekMath" and math.url == first
    assert second in math.notes  # kept: shown with the entry
    assert [p.line for p in math.placements] == [4, 5]  # the bare copy is the same paper
    assert catalog.get("url:web.archive.org/web/2024/https:/example.org/a") is not None
    glued = [p for p in catalog.problems if "glued" in p.message]
    assert [p.line for p in glued] == [4, 5]
    assert all(first in p.message and second in p.message for p in glued)
    assert str(glued[0]).startswith(f"{guide}:4: warning: links glued together: {first} and")


def test_catalog_check_names_glued_and_overlong_links_with_file_and_line(tmp_path: Path) -> None:
    long = "https://example.org/" + "a" * 1200
    guide = tmp_path / "guide.md"
    guide.write_text(
        "### S\n\n"
        "- `⚡` 📄 [Math](https://arxiv.org/abs/2402.03300https://arxiv.org/abs/2402.06332)\n"
        f"- `⚡` 📄 [Long]({long})\n"
        f"- `⚡` 📄 [Just short enough](https://example.org/{'b' * 960})\n",
        encoding="utf-8",
    )
    result = run("catalog", "check", str(guide))
    assert result.code == 0, result.err
    assert (
        f"{guide}:3: warning: links glued together: https://arxiv.org/abs/2402.03300 and "
        "https://arxiv.org/abs/2402.06332" in result.out
    )
    assert f"{guide}:4: warning: link of 1,220 characters (over 1,000" in result.out
    assert ":5:" not in result.out
    assert "usable: 0 errors, 2 warning(s)" in result.out


# --- redaction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:tok@h.org/g.md", "https://u:***@h.org/g.md"),
        ("https://ghp_abc@h.org/g.md", "https://***@h.org/g.md"),
        ("https://h.org/g.md?token=abc&v=2", "https://h.org/g.md?token=***&v=2"),
        ("https://h.org/g.md?X-Amz-Signature=f0&author=me", "https://h.org/g.md?X-Amz-Signature=***&author=me"),
        ("https://h.org/g.md", "https://h.org/g.md"),
        ("docs/guide.md", "docs/guide.md"),
    ],
)  # fmt: skip
def test_redact_hides_credentials_and_token_parameters(url: str, shown: str) -> None:
    assert redact(url) == shown


# --- a hostile catalog server ----------------------------------------------------------------


@functools.cache
def gzip_bomb() -> bytes:
    """About 200 KB of gzip that inflates to 200 MB."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MB)
    return b"".join(squeeze.compress(zeros) for _ in range(200)) + squeeze.flush()


@dataclass
class Hostile:
    """A catalog server on 127.0.0.1; ``/switch.md`` answers as ``mode`` says."""

    base: str
    port: int
    mode: str = "good"


def _hostile_handler(state: Hostile, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # bodies end when the connection does

        def log_message(self, *args: object) -> None:
            pass

        def start(self, length: int | None = None, **headers: str) -> None:
            self.send_response(200)
            if length is not None:
                self.send_header("Content-Length", str(length))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()

        def redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.end_headers()

        def do_GET(self) -> None:
            path = self.path.removeprefix("/private")
            if path != self.path:
                expected = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self.send_error(401)
                    return
            mode = state.mode if path == "/switch.md" else path.strip("/").removesuffix(".md")
            try:
                if mode in {"good", "guide"}:
                    self.start(len(GOOD))
                    self.wfile.write(GOOD)
                elif mode == "endless":
                    self.start()
                    chunk = b"- words\n" * 8192
                    while not stop.is_set():
                        self.wfile.write(chunk)
                elif mode == "big":  # 100 MB, announced
                    self.start(100 * MB)
                    chunk = bytes(64 * 1024)
                    for _ in range(100 * MB // len(chunk)):
                        self.wfile.write(chunk)
                elif mode == "bomb":
                    bomb = gzip_bomb()
                    self.start(len(bomb), Content_Encoding="gzip")
                    self.wfile.write(bomb)
                elif mode == "trickle":  # a byte a second, for two minutes
                    self.start()
                    for _ in range(120):
                        if stop.wait(1.0):
                            break
                        self.wfile.write(b"-")
                        self.wfile.flush()
                elif mode == "elsewhere":  # "localhost" is another host than 127.0.0.1
                    self.redirect(f"http://localhost:{state.port}/guide.md")
                elif mode == "here":
                    self.redirect("/guide.md")
                elif mode == "loop":
                    self.redirect("/loop")
                else:
                    self.send_error(404)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up, as it should

    return Handler


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    stop = threading.Event()
    state = Hostile(base="", port=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _hostile_handler(state, stop))
    server.daemon_threads = True
    state.port = server.server_address[1]
    state.base = f"http://127.0.0.1:{state.port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    gzip_bomb()
    yield state
    stop.set()
    server.shutdown()
    server.server_close()


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{SECRET}@")


# --- catalog check, a real process -----------------------------------------------------------


@dataclass
class Ran:
    code: int
    out: str
    err: str
    seconds: float
    peak_mb: float  # the process's peak resident memory


def run(*args: str, env: dict[str, str] | None = None, limit: float = 60.0) -> Ran:
    """Run the console script, measuring its time and peak memory (os.wait4: this child only)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DCML_BOT_")}
    environment.update({"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        process = subprocess.Popen(
            [str(SCRIPT), *args], cwd=ROOT, env=environment, stdout=out, stderr=err
        )
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > limit:
                process.kill()
                os.wait4(process.pid, 0)
                pytest.fail(f"dcml-bot {' '.join(args)} still running after {limit:.0f} s")
            time.sleep(0.02)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return Ran(
            process.returncode,
            out.read().decode(),
            err.read().decode(),
            seconds,
            usage.ru_maxrss / 1024,  # KiB on Linux
        )


def check(url: str) -> Ran:
    return run(
        "catalog", "check", url, env={"DCML_BOT_CATALOG_DEADLINE_SECONDS": str(CLI_DEADLINE)}
    )


@pytest.fixture(scope="module")
def baseline_mb(hostile: Hostile) -> float:
    good = check(f"{hostile.base}/guide.md")
    assert good.code == 0, good.err
    return good.peak_mb


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/endless.md", TOO_BIG),
        ("/big.md", TOO_BIG),
        ("/bomb.md", TOO_BIG),
        ("/trickle.md", "not downloaded within 3 s (catalog_deadline_seconds)"),
        ("/elsewhere.md", "redirected to another host (localhost); not followed"),
        ("/loop.md", "more than 5 redirects"),
        ("/private/endless.md", TOO_BIG),
    ],
)
def test_catalog_check_ends_hostile_downloads_with_one_line(
    hostile: Hostile, baseline_mb: float, path: str, message: str
) -> None:
    url = f"{hostile.base}{path}"
    if path.startswith("/private"):
        url = with_credentials(url)
    result = check(url)
    assert result.code == 1
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {redact(url)}: {message}"), lines
    assert SECRET not in result.err
    assert result.seconds < 3 * CLI_DEADLINE
    assert result.peak_mb - baseline_mb < 100, f"{result.peak_mb:.0f} MB at peak"


def test_catalog_check_follows_same_host_redirects_and_sends_credentials(
    hostile: Hostile,
) -> None:
    moved = check(f"{hostile.base}/here.md")
    assert moved.code == 0, moved.err
    assert "1 items from 1 listings" in moved.out
    private = check(with_credentials(f"{hostile.base}/private/guide.md"))
    assert private.code == 0, private.err
    assert f"(http://{USER}:***@127.0.0.1:{hostile.port}/private/guide.md)" in private.out
    assert SECRET not in private.out + private.err
    refused = check(f"{hostile.base}/private/guide.md")
    assert refused.code == 1 and "HTTP 401" in refused.err


# --- the fetcher in process: time and memory -------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/endless.md", "larger than 1 MiB (catalog_max_bytes)"),
        ("/big.md", "larger than 1 MiB (catalog_max_bytes)"),
        ("/bomb.md", "larger than 1 MiB (catalog_max_bytes)"),
        ("/trickle.md", "not downloaded within 2 s (catalog_deadline_seconds)"),
    ],
)
def test_fetches_are_bounded_in_time_and_memory(hostile: Hostile, path: str, message: str) -> None:
    limits = FetchLimits(max_bytes=MB, deadline=2.0)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(CatalogError, match=r"^http://127\.0\.0\.1:\d+/\w+\.md: ") as caught:
            fetch_catalog(f"{hostile.base}{path}", limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message in str(caught.value)
    assert time.monotonic() - started < 3 * limits.deadline
    assert peak < 100 * MB, f"{peak / MB:.0f} MB at peak"


def test_redirects_to_a_configured_host_are_followed_without_credentials(
    hostile: Hostile,
) -> None:
    limits = FetchLimits(redirect_hosts=frozenset({"localhost"}))
    fetched = fetch_catalog(f"{hostile.base}/elsewhere.md", limits=limits)
    assert fetched is not None and fetched.content == GOOD
    guides = Guides(with_credentials(f"{hostile.base}/private/guide.md"))
    assert guides.location == f"http://{USER}:***@127.0.0.1:{hostile.port}/private/guide.md"
    loaded = guides.load()
    assert loaded.catalog is not None and loaded.catalog.source == guides.location


# --- a running service's refresh -------------------------------------------------------------


def test_serve_refresh_keeps_the_last_good_guide_and_tells_admins_once(
    db_url: str, hostile: Hostile
) -> None:
    from dcml_bot.app import build_service
    from support import lab_settings, text_of

    hostile.mode = "good"
    url = with_credentials(f"{hostile.base}/switch.md")
    settings = lab_settings(db_url, catalog=url, admins=["local:boss"])
    service = build_service(settings, schedule=False)
    try:
        library, local = service.bot.library, service.bot.messengers["local"]

        def told() -> list[str]:
            return [text_of(reply) for _, reply in local.inbox("boss")]  # type: ignore[attr-defined]

        assert library.source == redact(url) and SECRET not in library.source
        tracemalloc.start()
        try:
            # The same problem (too big, three ways) is one DM; each new problem, one more.
            for mode, count in [("endless", 1), ("big", 1), ("bomb", 1), ("elsewhere", 2)]:
                hostile.mode = mode
                started = time.monotonic()
                for _ in range(2):  # the second refresh meets the same problem: no new DM
                    result = service.jobs.refresh_catalog()
                    assert result.status == "rejected"
                    assert [e.title for e in library.catalog.entries] == ["Attention"]
                assert time.monotonic() - started < 30
                assert len(told()) == count, mode
                assert redact(url) in told()[-1] and len(result.errors) == 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 100 * MB, f"{peak / MB:.0f} MB at peak"
        assert TOO_BIG in told()[0] and "another host" in told()[-1]
        ok, health = service.health()
        assert ok and health["catalog"]["source"] == redact(url)
        assert SECRET not in json.dumps(health) + "".join(told())
        hostile.mode = "good"
        assert service.jobs.refresh_catalog().status in {"loaded", "unchanged"}
    finally:
        service.stop()
        hostile.mode = "good"


def test_serve_refresh_honours_the_configured_deadline(db_url: str, hostile: Hostile) -> None:
    from dcml_bot.app import build_service
    from support import lab_settings

    hostile.mode = "good"
    settings = lab_settings(
        db_url,
        catalog=f"{hostile.base}/switch.md",
        admins=["local:boss"],
        catalog_deadline_seconds=2.0,
        catalog_max_bytes=64 * 1024,
    )
    service = build_service(settings, schedule=False)
    try:
        hostile.mode = "trickle"
        started = time.monotonic()
        result = service.jobs.refresh_catalog()
        assert time.monotonic() - started < 3 * 2.0
        assert result.status == "rejected" and "within 2 s" in result.errors[0]
        hostile.mode = "endless"
        assert "larger than 64 KiB" in service.jobs.refresh_catalog().errors[0]
        assert [e.title for e in service.bot.library.catalog.entries] == ["Attention"]
    finally:
        service.stop()
        hostile.mode = "good"
