"""A long lab chat history: the page shows the latest entries with an "older" link, and is rendered
off the event loop so /healthz answers meanwhile (issue 16 item 8; figures in
bench_hostile_input.py --part lab)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import insert

from dcml_bot.app import build_service
from dcml_bot.core.bot import Bot
from dcml_bot.core.reply import Reply
from dcml_bot.platforms.common.preview import Previewer, Rendering
from dcml_bot.platforms.local import web
from dcml_bot.platforms.local.web import CHAT_PAGE
from dcml_bot.server import build_http_app
from dcml_bot.store.database import writer
from dcml_bot.store.schema import LocalMessage
from fakes.api import running
from support import MONDAY_SLOT, Clock, lab_settings

HISTORY = 10_000
SAID = re.compile(r'<div class="said">&gt; /dcml search n(\d+)</div>')
OLDER = re.compile(r'<a href="/\?as=alice&amp;before=(\d+)#chat" id="older">')


def seed_chat(bot: Bot, count: int) -> list[int]:
    """Alice, with ``count`` chat entries "search n0" … (each a real answer); their ids."""
    member = bot.member("local", "alice", display_name="Alice")
    reply = bot.commands.handle(member, "essential").model_dump(mode="json")
    now = MONDAY_SLOT
    rows = [
        {
            "user_id": "alice",
            "channel": "chat",
            "reply": json.dumps({"said": f"/dcml search n{n}", "reply": reply}),
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    with writer(bot.store.engine).begin() as connection:
        connection.execute(insert(LocalMessage), rows)
    return [m.id for m in bot.store.local_messages("alice", channel="chat")]


def shown(page: str) -> list[int]:
    """The numbers of the chat entries on a page, top (newest) first."""
    return [int(n) for n in SAID.findall(page)]


@contextmanager
def lab_with(db_url: str, history: int) -> Iterator[tuple[Bot, httpx.Client, list[int]]]:
    """The lab served over HTTP, alice having ``history`` chat entries."""
    service = build_service(lab_settings(db_url), clock=Clock(MONDAY_SLOT), schedule=False)
    ids = seed_chat(service.bot, history)
    with running(build_http_app(service)) as base, httpx.Client(base_url=base) as client:
        yield service.bot, client, ids


@pytest.fixture
def lab(db_url: str) -> Iterator[tuple[Bot, httpx.Client, list[int]]]:
    with lab_with(db_url, HISTORY) as served:
        yield served


def test_a_ten_thousand_entry_history_pages_back_from_the_newest(
    lab: tuple[Bot, httpx.Client, list[int]],
) -> None:
    bot, client, ids = lab
    first = client.get("/?as=alice")
    assert first.status_code == 200
    assert len(first.content) < 1024 * 1024, len(first.content)
    newest = list(range(HISTORY - 1, HISTORY - 1 - CHAT_PAGE, -1))
    assert shown(first.text) == newest
    assert 'id="newest"' not in first.text

    older = OLDER.search(first.text)
    assert older is not None and int(older.group(1)) == ids[HISTORY - CHAT_PAGE]
    second = client.get(f"/?as=alice&before={older.group(1)}")
    assert shown(second.text) == [n - CHAT_PAGE for n in newest]
    assert 'id="newest"' in second.text and OLDER.search(second.text)

    # The far end: the two oldest entries, and no link further back.
    last = client.get(f"/?as=alice&before={ids[2]}")
    assert shown(last.text) == [1, 0]
    assert OLDER.search(last.text) is None and 'id="newest"' in last.text

    # A command's reply still shows at the top.
    headers = {"Origin": str(client.base_url), "Sec-Fetch-Site": "same-origin"}
    csrf = re.search(r'name="csrf" value="([^"]+)"', first.text)
    assert csrf is not None
    form = {"csrf": csrf.group(1), "as": "alice", "text": "/dcml search n10000"}
    assert client.post("/local/command", data=form, headers=headers).status_code == 303
    assert shown(client.get("/?as=alice").text)[:2] == [10_000, HISTORY - 1]
    assert len(bot.store.local_messages("alice", channel="chat")) == HISTORY + 1


def test_a_bad_before_is_a_clear_400_that_changes_nothing(db_url: str) -> None:
    with lab_with(db_url, 3) as (bot, client, _):
        for before in ["abc", "-1", "1e9", "１２", "9" * 40]:
            response = client.get("/?as=alice", params={"before": before})
            assert response.status_code == 400, before
            assert "?before= takes a chat entry&#39;s number" in response.text
            assert shown(response.text) == [2, 1, 0]  # the page, from the newest
        assert len(bot.store.local_messages("alice", channel="chat")) == 3


def test_healthz_answers_while_the_page_renders(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's rendering is held inside a preview until /healthz has answered: on the event
    loop it would hold /healthz too, and this test would time out."""
    rendering, release = threading.Event(), threading.Event()
    real = web.preview

    def held(reply: Reply, previewers: Sequence[Previewer]) -> list[Rendering]:
        rendering.set()
        assert release.wait(30), "never released"
        return real(reply, previewers)

    monkeypatch.setattr(web, "preview", held)
    service = build_service(lab_settings(db_url), clock=Clock(MONDAY_SLOT), schedule=False)
    seed_chat(service.bot, 50)
    with (
        running(build_http_app(service)) as base,
        httpx.Client(base_url=base, timeout=30) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        page = pool.submit(client.get, "/?as=alice")
        assert rendering.wait(30)
        try:
            health = httpx.get(f"{base}/healthz", timeout=10)
            assert health.status_code == 200
            assert not page.done()  # the page was still rendering
        finally:
            release.set()
        assert page.result(30).status_code == 200
