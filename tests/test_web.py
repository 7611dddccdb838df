"""The local web lab over real HTTP: routes, state in the database, and bad input."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dcml_bot.app import Service, build_service
from dcml_bot.platforms.local.messenger import LocalClock
from dcml_bot.server import build_http_app
from dcml_bot.settings import load_settings
from fakes.api import running
from support import CONFIG, MONDAY_SLOT, Clock, lab_settings

THURSDAY = MONDAY_SLOT + dt.timedelta(days=3)


@dataclass
class Lab:
    service: Service
    client: httpx.Client
    base: str
    csrf: str

    def post(self, path: str, **form: str) -> httpx.Response:
        """A form post as the lab's page sends it (same origin, with its CSRF token)."""
        headers = {"Origin": self.base, "Sec-Fetch-Site": "same-origin"}
        return self.client.post(path, data={"csrf": self.csrf, **form}, headers=headers)


@pytest.fixture
def lab(db_url: str) -> Iterator[Lab]:
    service = build_service(lab_settings(db_url), clock=Clock(THURSDAY), schedule=False)
    with running(build_http_app(service)) as base, httpx.Client(base_url=base) as client:
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
        assert csrf is not None
        yield Lab(service, client, base, csrf.group(1))


def test_add_member_sends_one_welcome_and_switches_to_them(lab: Lab) -> None:
    response = lab.post("/local/members", name="Alice Liu")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/?as=alice-liu")
    page = lab.client.get("/?as=alice-liu").text
    assert "Welcome" in page and 'data-kind="dm"' in page
    again = lab.post("/local/members", name="alice liu")
    assert "already" in again.headers["location"]
    messenger = lab.service.bot.messengers["local"]
    assert len(messenger.inbox("alice-liu")) == 1  # type: ignore[attr-defined]


def test_command_reply_is_rendered_with_previews_and_kept(lab: Lab) -> None:
    lab.post("/local/members", name="Bob")
    response = lab.post("/local/command", **{"as": "bob", "text": "/dcml essential"})
    assert response.status_code == 303
    page = lab.client.get("/?as=bob").text
    catalog = lab.service.bot.library.catalog
    first = next(e for e in catalog.entries if e.level and e.level.value == "essential")
    assert first.url is not None and first.url in page
    assert "As Slack" in page and "As Feishu" in page and "within limits" in page
    assert re.search(r"\d+ of 50 blocks, longest text \d+ of 3000 chars", page)
    assert re.search(r"As Feishu: \d+ of 30720 bytes", page)
    assert '"type": "header"' in page.replace("&#34;", '"')  # Block Kit JSON shown
    assert '"schema": "2.0"' in page.replace("&#34;", '"')  # Feishu card JSON shown
    assert "&gt; /dcml essential" in page


def test_user_text_is_escaped_in_the_page(lab: Lab) -> None:
    lab.post("/local/members", name="Eve")
    lab.post("/local/command", **{"as": "eve", "text": "search <script>alert(1)</script>"})
    page = lab.client.get("/?as=eve").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_week_delivery_and_done_button_update_progress(lab: Lab) -> None:
    lab.post("/local/members", name="Carol")
    bot = lab.service.bot
    member = bot.store.get_member("local", "carol")
    assert member is not None
    week_paper = bot.messengers["local"].inbox("carol")[-1][1]  # type: ignore[attr-defined]
    button = week_paper.buttons[0]
    assert button.action == "done"
    message_id = bot.messengers["local"].inbox("carol")[-1][0]  # type: ignore[attr-defined]
    pressed = lab.post(
        "/local/press",
        **{"as": "carol", "message": message_id, "action": "done", "value": button.value},
    )
    assert pressed.status_code == 303
    item_id = button.value.split("|")[0]
    assert bot.store.progress_for(member.id)[item_id].state == "read"
    rewritten = dict(bot.messengers["local"].inbox("carol"))[message_id]  # type: ignore[attr-defined]
    assert rewritten.buttons == ()
    ran = lab.post("/local/admin/deliver", **{"as": "carol"})
    assert "Delivery+ran" in ran.headers["location"]


def test_advance_moves_the_clock_a_week_and_delivers(lab: Lab, db_url: str) -> None:
    lab.post("/local/members", name="Dan")
    clock = lab.service.bot.clock
    assert isinstance(clock, LocalClock)
    before = clock()
    response = lab.post("/local/admin/advance", **{"as": "dan"})
    assert response.status_code == 303
    assert clock() - before >= dt.timedelta(days=7)
    inbox = lab.service.bot.messengers["local"].inbox("dan")  # type: ignore[attr-defined]
    assert len(inbox) == 2  # the welcome (with week 1's paper) and next week's paper
    # The offset is kept in the database: a new service on it sees the same lab time.
    again = build_service(lab_settings(db_url), clock=Clock(THURSDAY), schedule=False)
    try:
        assert again.bot.clock() - THURSDAY >= dt.timedelta(days=7)
    finally:
        again.bot.close()


def test_reload_shows_problems_and_keeps_the_catalog(lab: Lab, tmp_path: Any) -> None:
    guide = tmp_path / "guide.md"
    guide.write_text("# G\n\n### S\n\n- `⚡` 📄 [Paper](https://arxiv.org/abs/2301.00001)\n")
    lab.service.bot.library.source = str(guide)
    ok = lab.post("/local/admin/reload")
    assert "Catalog+loaded" in ok.headers["location"]
    guide.write_text("# G\n\n### S\n\n- `❓` 📄 [Paper](https://arxiv.org/abs/2301.00001)\n")
    bad = lab.post("/local/admin/reload")
    location = bad.headers["location"]
    assert "error=Catalog+refused" in location and "guide.md%3A5" in location
    page = lab.client.get(location).text
    assert "Catalog refused" in page and re.search(r"guide\.md:5", page)
    assert len(lab.service.bot.library.catalog.entries) == 1


@pytest.mark.parametrize(
    ("path", "form", "status", "message"),
    [
        ("/local/command", {"as": "nobody", "text": "help"}, 404, "no member"),
        ("/local/command", {"as": "frank", "text": "   "}, 400, "Type a command"),
        ("/local/command", {"as": "frank", "text": "x" * 2001}, 413, "at most 2000"),
        ("/local/command", {"text": "help"}, 400, "Choose who you are"),
        ("/local/members", {"name": ""}, 400, "Type a name"),
        ("/local/members", {"name": "<b>" * 3}, 400, "Names are up to"),
        ("/local/members", {"name": "x" * 41}, 400, "Names are up to"),
        ("/local/press", {"as": "frank", "action": "", "value": "x"}, 400, "not valid"),
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(
    lab: Lab, path: str, form: dict[str, str], status: int, message: str
) -> None:
    lab.post("/local/members", name="Frank")
    store = lab.service.bot.store
    before = (len(store.list_members()), len(store.local_messages()))
    response = lab.post(path, **form)
    assert response.status_code == status
    assert message in response.text
    assert (len(store.list_members()), len(store.local_messages())) == before


def test_unknown_member_page_is_404_with_a_message(lab: Lab) -> None:
    response = lab.client.get("/?as=ghost")
    assert response.status_code == 404
    assert "no member" in response.text


def test_malformed_form_body_is_400(lab: Lab) -> None:
    # A part without a name: the form cannot be read (before the CSRF token could be).
    response = lab.client.post(
        "/local/command",
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\nhelp\r\n--x--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x", "Origin": lab.base},
    )
    assert response.status_code == 400


def test_local_platform_is_off_when_a_real_platform_is_configured(db_url: str) -> None:
    from pydantic import SecretStr

    settings = lab_settings(db_url, feishu_app_id=SecretStr("cli"), feishu_app_secret=None)
    assert settings.local_enabled  # feishu incomplete: still local
    slack = lab_settings(
        db_url,
        slack_bot_token=SecretStr("xoxb"),
        slack_signing_secret=SecretStr("s"),
    )
    assert not slack.local_enabled
    forced = slack.model_copy(update={"local": slack.local.model_copy(update={"enabled": "on"})})
    assert forced.local_enabled
    assert load_settings(CONFIG).host == "127.0.0.1"


def test_healthz_reports_an_unreachable_database_with_503(lab: Lab) -> None:
    from sqlalchemy import create_engine

    assert lab.client.get("/healthz").status_code == 200
    store = lab.service.bot.store
    working = store.engine
    # A real connection failure: nothing listens on port 1.
    store.engine = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
    )
    try:
        response = lab.client.get("/healthz")
    finally:
        store.engine.dispose()
        store.engine = working
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and body["database"]["reachable"] is False
    assert body["catalog"]["items"] > 0
