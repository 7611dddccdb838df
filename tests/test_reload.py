"""A catalog URL that trickles bytes: reloads coalesce, commands answer, shutdown does not wait.

Real Slack commands (signed, through Bolt and the bot's worker pool) and the local lab's reload
form, against a catalog server on port 0 that sends the guide, or a byte every 0.2 s for ever.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from dcml_bot.app import Service, build_service
from dcml_bot.core.i18n import text
from dcml_bot.server import build_http_app
from fakes.api import running
from fakes.slack import DELIVERY_TIME, FakeSlack, Slack, slack_settings
from support import Clock, lab_settings

GUIDE = (Path(__file__).resolve().parent.parent / "config" / "catalog" / "dcml.md").read_bytes()
BUSY = text("en", "busy")
# Far beyond the test: a reload still under way at shutdown has to be abandoned, not awaited.
DEADLINE = 300.0


class CatalogServer:
    """Serves the guide at once, or (``trickle``) a byte every 0.2 s until closed."""

    def __init__(self) -> None:
        self.trickle = False
        self.requests = 0
        self.trickling = threading.Event()  # a trickled download is under way
        self.closed = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection does

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests += 1
                self.send_response(200)
                if not outer.trickle:
                    self.send_header("Content-Length", str(len(GUIDE)))
                    self.end_headers()
                    self.wfile.write(GUIDE)
                    return
                self.end_headers()
                outer.trickling.set()
                try:
                    while not outer.closed.wait(0.2):
                        self.wfile.write(b"-")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the bot gave up the download, as it should at shutdown

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/dcml.md"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def catalogs() -> Iterator[CatalogServer]:
    server = CatalogServer()
    try:
        yield server
    finally:
        server.close()


def hh_mm(service: Service, started: dt.datetime, user: str) -> str:
    """When the reload began, as a member reads it (in their time zone)."""
    member = service.bot.store.get_member("slack", user)
    assert member is not None
    return f"{started.astimezone(ZoneInfo(service.bot.profiles.timezone(member))):%H:%M}"


def test_reloads_coalesce_commands_answer_and_stop_abandons_the_download(
    tmp_path: Path, catalogs: CatalogServer
) -> None:
    fake = FakeSlack().start()
    settings = slack_settings(
        f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        fake,
        catalog=catalogs.url,
        catalog_deadline_seconds=DEADLINE,
    )
    clock = Clock(DELIVERY_TIME)
    service = build_service(settings, clock=clock, schedule=False)
    try:
        with running(build_http_app(service)) as base:
            slack = Slack(service, base, fake, clock)
            assert slack.command("help", user="U0ADMIN").status_code == 200  # the admin is known
            catalogs.trickle = True
            first: list[httpx.Response] = []
            asked = threading.Thread(
                target=lambda: first.append(slack.command("reload", user="U0ADMIN"))
            )
            asked.start()
            assert catalogs.trickling.wait(10), "the reload never started its download"
            started = service.bot.library.reloading
            assert started is not None
            running_since = text(
                "en",
                "reload.running",
                started=hh_mm(service, started, "U0ADMIN"),
                count=len(service.bot.library.catalog.entries),
            )

            # Nine reloads took every worker before; now each later one answers in its ack.
            for _ in range(8):
                ack = slack.command("reload", user="U0ADMIN")
                assert ack.status_code == 200
                assert ack.json()["text"] == running_since
            # A member's command is answered in its ack too, from the catalog served meanwhile.
            answer = slack.command("essential", user="U0READER").json()
            assert answer["text"] != BUSY and "essential" in answer["text"].lower()
            # The scheduler's refresh does not queue behind the download either.
            assert service.jobs.refresh_catalog().status == "running"
            assert fake.requests("/api/chat.postMessage") == []  # no admin told of a "problem"
            health = httpx.get(base + "/healthz", timeout=10)
            assert health.status_code == 200, health.text
            body = health.json()
            assert body["catalog"]["reloading_since"] == started.isoformat()
            assert body["workers"]["slack"]["stuck"] is False
            assert catalogs.requests == 2  # the start-up load, and one reload for all nine

            asked.join(10)
            assert first[0].json()["text"] == BUSY  # the first one waits for its download
            began = time.monotonic()
            service.stop()
            took = time.monotonic() - began
            assert took < 10, f"stop waited {took:.1f} s for a download"  # it trickles for ever
            # The download itself is dropped at its next byte, not left to its deadline.
            while service.bot.library.reloading is not None:
                assert time.monotonic() - began < 10, "the download was not given up"
                time.sleep(0.05)
        late = fake.responses()
        assert [r["text"] for r in late] == [text("en", "reload.stopped")]
    finally:
        fake.stop()


def test_the_lab_reload_form_says_a_reload_is_running(db_url: str, catalogs: CatalogServer) -> None:
    settings = lab_settings(db_url, catalog=catalogs.url, catalog_deadline_seconds=DEADLINE)
    service = build_service(settings, schedule=False)
    with running(build_http_app(service)) as base, httpx.Client(base_url=base) as client:
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
        assert csrf is not None
        headers = {"Origin": base, "Sec-Fetch-Site": "same-origin"}

        def reload() -> httpx.Response:
            return client.post(
                "/local/admin/reload", data={"csrf": csrf.group(1)}, headers=headers, timeout=30
            )

        catalogs.trickle = True
        first: list[httpx.Response] = []
        asked = threading.Thread(target=lambda: first.append(reload()))
        asked.start()
        assert catalogs.trickling.wait(10)
        started = service.bot.library.reloading
        assert started is not None
        second = reload()
        assert second.status_code == 303
        when = f"{started.astimezone(ZoneInfo(settings.timezone)):%H:%M}"
        assert f"A reload is already running, started {when}." in httpx.URL(
            second.headers["location"]
        ).params.get("notice", "")
        page = client.get("/")  # the page is served meanwhile, from the catalog in use
        assert page.status_code == 200 and "items" in page.text
        service.stop()  # the first form post gets its answer: the bot is stopping
        asked.join(10)
        assert not asked.is_alive()
        error = httpx.URL(first[0].headers["location"]).params.get("error", "")
        assert error == "Catalog not reloaded: the bot is stopping."
    assert catalogs.requests == 2
