"""Slack at the wire: signed requests into `serve`'s HTTP endpoint, real Bolt, a fake Web API."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from dcml_bot.app import build_service
from dcml_bot.core.delivery import weekly_key
from dcml_bot.core.reply import Reply
from dcml_bot.platforms.slack.blocks import check_message, check_view
from dcml_bot.platforms.slack.platform import SlackPlatform
from dcml_bot.server import build_http_app
from fakes.api import running
from fakes.slack import (
    DELIVERY_TIME,
    PAYLOADS,
    SECRET,
    FakeSlack,
    Slack,
    enrol,
    serve_slack,
    slack_settings,
)
from support import CONFIG, WEEK, Clock


@pytest.fixture
def slack(db_url: str) -> Iterator[Slack]:
    with serve_slack(db_url) as running_bot:
        yield running_bot


# --- commands ---------------------------------------------------------------------------------


def test_command_is_answered_in_the_ack_with_valid_block_kit(slack: Slack) -> None:
    response = slack.command("essential")
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert check_message(body) == []
    rendered = json.dumps(body["blocks"], ensure_ascii=False)
    catalog = slack.service.bot.library.catalog
    essentials = [e for e in catalog.entries if e.level and e.level.value == "essential"]
    assert essentials and all(e.url in rendered for e in essentials[:10] if e.url)
    assert slack.service.bot.store.get_member("slack", "U0NEWBIE") is not None


def test_first_command_learns_name_and_time_zone_from_users_info(slack: Slack) -> None:
    slack.fake.users["U0TZ"] = {
        "id": "U0TZ",
        "name": "tz",
        "tz": "America/Los_Angeles",
        "profile": {"display_name": "Tee Zed"},
    }
    assert slack.command("help", user="U0TZ").status_code == 200
    slack.command("help", user="U0TZ")
    slack.platform.drain()
    member = slack.service.bot.store.get_member("slack", "U0TZ")
    assert member is not None
    assert (member.timezone, member.display_name) == ("America/Los_Angeles", "Tee Zed")
    assert len(slack.fake.requests("/api/users.info")) == 1  # only on first contact


def test_echoed_user_text_is_escaped(slack: Slack) -> None:
    response = slack.command("search <!channel> & <@U123|bob>")
    assert response.status_code == 200
    raw = response.text
    assert "<!channel>" not in raw and "<@U123" not in raw
    assert "&lt;!channel&gt;" in raw


def test_admin_command_and_unknown_words_get_specific_replies(slack: Slack) -> None:
    denied = slack.command("lab", user="U0NEWBIE").json()
    allowed = slack.command("lab", user="U0ADMIN").json()
    assert "lab" in json.dumps(denied) and denied != allowed
    assert check_message(allowed) == []
    unknown = slack.command("xyzzy-not-a-topic").json()
    assert "xyzzy-not-a-topic" in json.dumps(unknown)


def test_forged_stale_and_unsigned_requests_are_refused_without_effects(slack: Slack) -> None:
    forged = slack.command("essential", user="U0FORGED", secret="wrong-secret")
    stale = slack.command("essential", user="U0STALE", timestamp=int(time.time()) - 305)
    future = slack.command("essential", user="U0FUTURE", timestamp=int(time.time()) + 305)
    unsigned = httpx.post(
        slack.base + "/slack/events",
        content="command=%2Fdcml&text=essential&user_id=U0NOSIG",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert [r.status_code for r in (forged, stale, future, unsigned)] == [401] * 4
    store = slack.service.bot.store
    assert all(store.get_member("slack", u) is None for u in ("U0FORGED", "U0STALE", "U0NOSIG"))
    replay = slack.event("team_join", event_id="Ev0FORGED", user={"id": "U0EVIL"})
    assert replay.status_code == 200  # correctly signed: control
    bad = slack.post(
        json.dumps({"type": "event_callback", "event": {"type": "team_join"}}),
        "application/json",
        secret="nope",
    )
    assert bad.status_code == 401
    metrics = httpx.get(slack.base + "/metrics").text
    assert 'dcml_rejected_requests_total{platform="slack",reason="signature"} 5.0' in metrics


def test_malformed_bodies_get_4xx_never_500(slack: Slack) -> None:
    cases = [
        ("{not json", "application/json"),
        ("payload=%7Bbroken", "application/x-www-form-urlencoded"),
        ("\xff\xfe", "application/json"),
        ("", "application/json"),
        (json.dumps({"type": "something_else"}), "application/json"),
    ]
    for body, ctype in cases:
        response = slack.post(body, ctype)
        assert 400 <= response.status_code < 500, (body, response.status_code, response.text)
        assert "Traceback" not in response.text
    binary = httpx.post(
        slack.base + "/slack/events",
        content=b"\xff\xfe\x00garbage",
        headers={"Content-Type": "application/json"},
    )
    assert binary.status_code == 400
    huge = slack.post("x" * (300 * 1024), "application/json")
    assert huge.status_code == 413


def test_slow_database_still_acks_within_three_seconds(slack: Slack, db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        blocker = create_engine(db_url)
        lock_sql = "LOCK TABLE members IN ACCESS EXCLUSIVE MODE"
    else:
        blocker = create_engine(db_url, connect_args={"timeout": 30})
        lock_sql = "SELECT 1"
    connection = blocker.connect()
    try:
        if db_url.startswith("sqlite"):
            connection.exec_driver_sql("BEGIN EXCLUSIVE")
        connection.execute(text(lock_sql))
        started = time.monotonic()
        response = slack.command("progress", user="U0SLOW")
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert elapsed < 3.0
        assert "moment" in response.text  # the "working on it" ack
        assert slack.fake.responses() == []
    finally:
        connection.rollback()
        connection.close()
        blocker.dispose()
    slack.platform.drain(timeout=30)
    late = slack.fake.responses()
    assert len(late) == 1 and late[0]["response_type"] == "ephemeral"
    assert check_message(late[0]) == []


# --- onboarding ---------------------------------------------------------------------------


def test_team_join_redelivered_three_times_sends_one_welcome(slack: Slack) -> None:
    for attempt in range(3):
        retry = {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_timeout"}
        response = slack.event("team_join", headers=retry if attempt else None)
        assert response.status_code == 200
    # The same person again under a new event id (e.g. re-invited): still one welcome.
    assert slack.event("team_join", event_id="Ev0SECOND").status_code == 200
    slack.platform.drain()
    dms = slack.fake.dms("U0NEWBIE")
    assert len(dms) == 1
    assert dms[0]["metadata"]["event_payload"]["key"] == "welcome:slack:U0NEWBIE"
    assert check_message({"text": dms[0]["text"], "blocks": dms[0]["blocks"]}) == []
    member = slack.service.bot.store.get_member("slack", "U0NEWBIE")
    assert member is not None and member.enrolled and member.timezone == "Europe/Berlin"
    assert member.display_name == "New Bie"


@pytest.mark.parametrize(
    "flag", ["is_bot", "is_restricted", "is_ultra_restricted", "deleted", "is_app_user"]
)
def test_team_join_skips_bots_and_guests(slack: Slack, flag: str) -> None:
    user = {"id": "U0GUEST", flag: True}
    assert slack.event("team_join", user=user, event_id=f"Ev{flag}").status_code == 200
    slack.platform.drain()
    assert slack.fake.dms("U0GUEST") == []
    assert slack.service.bot.store.get_member("slack", "U0GUEST") is None


def test_member_joined_channel_welcomes_only_in_lab_channels(slack: Slack) -> None:
    slack.fake.users["U0BOTTY"] = {"id": "U0BOTTY", "is_bot": True}
    cases = [
        ("U0BYID", "C0LAB", "Ev1"),  # configured by id
        ("U0BYNAME", "C0NAMED", "Ev2"),  # configured by name: #reading-group
        ("U0ELSE", "C0GENERAL", "Ev3"),  # not a lab channel
        ("U0BOTTY", "C0LAB", "Ev4"),  # a bot
    ]
    slack.fake.channel_names["C0NAMED"] = "reading-group"
    for user, channel, event_id in cases:
        response = slack.event(
            "member_joined_channel", user=user, channel=channel, event_id=event_id
        )
        assert response.status_code == 200
    slack.platform.drain()
    assert len(slack.fake.dms("U0BYID")) == 1
    assert len(slack.fake.dms("U0BYNAME")) == 1
    assert slack.fake.dms("U0ELSE") == [] and slack.fake.dms("U0BOTTY") == []


def test_app_home_shows_progress_and_admins_see_the_lab(slack: Slack) -> None:
    slack.event("app_home_opened", user="U0NEWBIE", event_id="EvH1")
    slack.event("app_home_opened", user="U0ADMIN", event_id="EvH2")
    slack.platform.drain()
    published = {
        c["body"]["user_id"]: c["body"]["view"] for c in slack.fake.requests("/api/views.publish")
    }
    assert set(published) == {"U0NEWBIE", "U0ADMIN"}
    for view in published.values():
        view = json.loads(view) if isinstance(view, str) else view
        assert view["type"] == "home" and check_view(view) == []
    member_view = json.dumps(published["U0NEWBIE"], ensure_ascii=False)
    admin_view = json.dumps(published["U0ADMIN"], ensure_ascii=False)
    assert len(admin_view) > len(member_view)


# --- weekly delivery and buttons ------------------------------------------------------------


def test_weekly_delivery_sends_one_dm_each_and_buttons_work(slack: Slack) -> None:
    users = [f"U0M{i:03d}" for i in range(6)]
    enrol(slack, *users)
    first = slack.service.jobs.deliver()
    again = slack.service.jobs.deliver()
    assert first is not None and first.count("sent") == 6
    assert again is not None and again.count("sent") == 0 and again.count("already") == 6
    metrics = httpx.get(slack.base + "/metrics").text
    assert 'dcml_deliveries_total{outcome="sent"} 6.0' in metrics
    assert 'outcome="already"' not in metrics  # re-checked every tick: not counted
    for user in users:
        dms = slack.fake.dms(user)
        assert len(dms) == 1
        assert dms[0]["metadata"]["event_payload"]["key"] == f"weekly:slack:{user}:{WEEK}"
    dm = slack.fake.dms(users[0])[0]
    buttons = [e for b in dm["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["action_id"] for b in buttons] == ["dcml:done", "dcml:skip", "dcml:later"]
    item_id = buttons[0]["value"].split("|")[0]
    response = slack.press("dcml:done", buttons[0]["value"], users[0], dm["ts"])
    assert response.status_code == 200
    slack.platform.drain()
    member = slack.service.bot.store.get_member("slack", users[0])
    assert member is not None
    progress = slack.service.bot.store.progress_for(member.id)
    assert progress[item_id].state == "read"
    rewrite = [c["body"] for c in slack.fake.calls if c["path"] == f"/respond/action-{users[0]}"]
    assert len(rewrite) == 1 and rewrite[0]["replace_original"] is True
    # The paper's buttons are gone; the one left opens the note box (test_notes_slack.py).
    left = [e for b in rewrite[0]["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [e["action_id"] for e in left] == ["dcml-input:note"]


def test_unknown_action_is_acknowledged_and_ignored(slack: Slack) -> None:
    enrol(slack, "U0X")
    response = slack.press("start_onboarding", "go", "U0X", "1.2")
    assert response.status_code == 200
    slack.platform.drain()
    assert [c for c in slack.fake.calls if c["path"].startswith("/respond/")] == []


def test_rate_limit_storm_still_delivers_each_dm_once(slack: Slack) -> None:
    users = [f"U0R{i:03d}" for i in range(8)]
    enrol(slack, *users)
    slack.fake.storm = 5  # the first DM exhausts its in-client retries, later ones do not
    rounds = 0
    while True:
        report = slack.service.jobs.deliver()
        assert report is not None
        rounds += 1
        if all(slack.fake.dms(u) for u in users) or rounds > 10:
            break
        slack.clock.advance(minutes=15)  # the next catch-up tick, after Retry-After
    assert slack.fake.storm == 0
    assert [len(slack.fake.dms(u)) for u in users] == [1] * len(users)
    stats = slack.service.bot.store.outbox_stats(WEEK)
    assert stats["sent"] == len(users)


def test_api_error_is_recorded_and_retried_later(slack: Slack) -> None:
    enrol(slack, "U0ERR")
    slack.fake.fail_post = "internal_error"
    report = slack.service.jobs.deliver()
    assert report is not None and report.count("failed") == 1
    member = slack.service.bot.store.get_member("slack", "U0ERR")
    assert member is not None
    row = slack.service.bot.store.get_outbox(weekly_key(member, WEEK))
    assert row is not None and row.status == "failed" and "internal_error" in (row.last_error or "")
    slack.fake.fail_post = None
    slack.clock.advance(minutes=15)
    report = slack.service.jobs.deliver()
    assert report is not None and report.count("sent") == 1
    assert len(slack.fake.dms("U0ERR")) == 1


def test_unreachable_user_is_not_retried_forever_and_admins_are_told(slack: Slack) -> None:
    enrol(slack, "U0GONE")
    slack.fake.fail_post, slack.fake.fail_channel = "account_inactive", "DU0GONE"
    slack.service.jobs.deliver()
    slack.clock.advance(hours=1)
    slack.service.jobs.deliver()
    posts = [c for c in slack.fake.requests("/api/chat.postMessage")]
    assert [p["body"]["channel"] for p in posts] == ["DU0GONE", "DU0ADMIN"]
    member = slack.service.bot.store.get_member("slack", "U0GONE")
    assert member is not None
    row = slack.service.bot.store.get_outbox(weekly_key(member, WEEK))
    assert row is not None and row.status == "dead"
    notice = json.dumps(slack.fake.dms("U0ADMIN")[0]["blocks"])
    assert "slack:U0GONE" in notice and "account_inactive" in notice


def test_crash_after_sending_is_reconciled_from_message_metadata(slack: Slack) -> None:
    enrol(slack, "U0CRASH")
    bot = slack.service.bot
    member = bot.store.get_member("slack", "U0CRASH")
    assert member is not None
    key = weekly_key(member, WEEK)
    entry = bot.library.catalog.entries[0]
    # A previous process claimed, sent, and died before recording it.
    claim = bot.store.claim(
        key,
        member_id=member.id,
        kind="weekly",
        week=WEEK,
        item_id=entry.id,
        title=entry.title,
        worker="dead-process",
        now=slack.clock() - dt.timedelta(hours=1),
    )
    assert claim is not None
    slack.service.bot.messengers["slack"].send_dm("U0CRASH", Reply(header="paper"), key=key)
    report = slack.service.jobs.deliver()
    assert report is not None and report.count("recovered") == 1
    assert len(slack.fake.dms("U0CRASH")) == 1
    row = bot.store.get_outbox(key)
    assert row is not None and row.status == "sent"


# --- service endpoints ---------------------------------------------------------------------


def test_healthz_and_metrics(slack: Slack) -> None:
    slack.command("essential")
    health = httpx.get(slack.base + "/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["platforms"] == ["slack"]
    assert body["database"]["reachable"] is True
    assert body["catalog"]["items"] == len(slack.service.bot.library.catalog.entries)
    metrics = httpx.get(slack.base + "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'dcml_commands_total{outcome="ok",platform="slack"} 1.0' in metrics.text
    assert 'dcml_command_seconds_count{platform="slack"} 1.0' in metrics.text


def test_url_verification_and_ssl_check(slack: Slack) -> None:
    body = (PAYLOADS / "slack_url_verification.json").read_text()
    response = slack.post(body, "application/json")
    assert response.status_code == 200
    assert response.json()["challenge"] == json.loads(body)["challenge"]
    check = httpx.post(
        slack.base + "/slack/events",
        content="ssl_check=1&token=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert check.status_code == 200


def test_app_rate_limited_is_acknowledged_with_a_warning_naming_the_minute(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    body = (PAYLOADS / "slack_app_rate_limited.json").read_text()
    with caplog.at_level("WARNING", logger="dcml_bot.platforms.slack.platform"):
        assert slack.post(body, "application/json").status_code == 200
        forged = slack.post(body, "application/json", secret="not-the-secret")
    assert forged.status_code == 401
    warnings = [r.getMessage() for r in caplog.records if "dropping" in r.getMessage()]
    assert warnings == [
        "slack: Slack is dropping this app's events for team T123456 since 2018-02-12 20:37 UTC "
        "(over 30,000 events an hour); they are not redelivered"
    ]
    metrics = httpx.get(slack.base + "/metrics").text
    assert 'outcome="acknowledged",platform="slack",type="app_rate_limited"} 1.0' in metrics


UNUSED_INTERACTIONS = {
    "shortcut": {"type": "shortcut", "callback_id": "someone_elses", "trigger_id": "1.2.x"},
    "message_action": {
        "type": "message_action",
        "callback_id": "quote",
        "trigger_id": "1.2.x",
        "message": {"ts": "1.2", "text": "hi"},
        "channel": {"id": "C0LAB"},
    },
    "view_submission": {
        "type": "view_submission",
        "view": {"id": "V1", "type": "modal", "callback_id": "form"},
    },
    "view_closed": {
        "type": "view_closed",
        "view": {"id": "V1", "type": "modal", "callback_id": "form"},
    },
    "block_suggestion": {
        "type": "block_suggestion",
        "action_id": "pick",
        "block_id": "b1",
        "value": "dee",
    },
}


@pytest.mark.parametrize("kind", sorted(UNUSED_INTERACTIONS))
def test_interactions_the_bot_does_not_offer_get_200_and_are_counted(
    slack: Slack, kind: str
) -> None:
    payload = {
        **UNUSED_INTERACTIONS[kind],
        "team": {"id": "T0001"},
        "user": {"id": "U0NEWBIE"},
        "api_app_id": "A0APP",
        "token": "deprecated",
    }
    body = urlencode({"payload": json.dumps(payload)})
    assert slack.post(body, "application/x-www-form-urlencoded").status_code == 200
    metrics = httpx.get(slack.base + "/metrics").text
    assert f'outcome="ignored",platform="slack",type="{kind}"}} 1.0' in metrics


def test_an_event_type_the_bot_does_not_use_gets_200(slack: Slack) -> None:
    envelope = json.loads((PAYLOADS / "slack_event_team_join.json").read_text())
    envelope["event"] = {"type": "reaction_added", "user": "U0NEWBIE", "reaction": "eyes"}
    envelope["event_id"] = "Ev0REACTION"
    assert slack.post(json.dumps(envelope), "application/json").status_code == 200
    metrics = httpx.get(slack.base + "/metrics").text
    assert 'outcome="ignored",platform="slack",type="reaction_added"} 1.0' in metrics


def test_concurrent_commands_all_answered(slack: Slack) -> None:
    results: list[int] = []

    def worker(n: int) -> None:
        results.append(slack.command("topics", user=f"U0C{n:02d}").status_code)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 16
    assert len(slack.service.bot.store.list_members(platform="slack")) == 16


# --- Socket Mode ------------------------------------------------------------------------------


class FakeSocket:
    """A fake Socket Mode WebSocket endpoint: sends envelopes, collects the acks."""

    def __init__(self, envelopes: list[dict[str, Any]]) -> None:
        self.envelopes = envelopes
        self.acks: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.port: int | None = None
        self._ready = threading.Event()
        self._loop: Any = None
        threading.Thread(target=self._serve, daemon=True).start()
        assert self._ready.wait(10)

    def _serve(self) -> None:
        import asyncio

        import websockets

        async def handler(connection: Any) -> None:
            await connection.send(
                json.dumps({"type": "hello", "num_connections": 1, "debug_info": {}})
            )
            for envelope in self.envelopes:
                await connection.send(json.dumps(envelope))
            while len(self.acks) < len(self.envelopes):
                self.acks.append(json.loads(await connection.recv()))
            self.done.set()
            await asyncio.sleep(3600)

        async def main() -> None:
            async with websockets.serve(handler, "127.0.0.1", 0) as server:
                self.port = server.sockets[0].getsockname()[1]
                self._loop = asyncio.get_running_loop()
                self._ready.set()
                await asyncio.Future()

        asyncio.run(main())


def test_socket_mode_commands_and_events(db_url: str) -> None:
    slash = json.loads((PAYLOADS / "slack_slash_command.fields.json").read_text())
    slash.update(command="/dcml", text="essential")
    joined = json.loads((PAYLOADS / "slack_event_team_join.json").read_text())
    socket = FakeSocket(
        [
            {
                "envelope_id": "env-1",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": slash,
            },
            *(
                {
                    "envelope_id": f"env-ev-{n}",
                    "type": "events_api",
                    "accepts_response_payload": False,
                    "retry_attempt": n,
                    "retry_reason": "timeout" if n else "",
                    "payload": joined,
                }
                for n in range(3)
            ),
        ]
    )
    fake = FakeSlack()
    fake.routes["/api/apps.connections.open"] = lambda r: (
        200,
        {"ok": True, "url": f"ws://127.0.0.1:{socket.port}/link/?ticket=t"},
        {},
    )
    fake.start()
    settings = slack_settings(
        db_url, fake, slack_signing_secret=None, slack_app_token=SecretStr("xapp-1-test")
    )
    service = build_service(settings, clock=Clock(DELIVERY_TIME), schedule=False)
    try:
        assert service.platforms[0].routes() == []  # no public URL needed
        service.start()
        assert socket.done.wait(15)
        platform = service.platforms[0]
        assert isinstance(platform, SlackPlatform)
        platform.drain()
        by_id = {ack["envelope_id"]: ack for ack in socket.acks}
        assert set(by_id) == {"env-1", "env-ev-0", "env-ev-1", "env-ev-2"}
        command_ack = by_id["env-1"]["payload"]
        assert command_ack["response_type"] == "ephemeral"
        assert check_message(command_ack) == []
        assert len(fake.dms("U0NEWBIE")) == 1
        opened = fake.requests("/api/apps.connections.open")[0]
        assert opened["headers"]["Authorization"] == "Bearer xapp-1-test"
    finally:
        service.stop()
        fake.stop()


def test_manifest_grants_what_the_bot_uses() -> None:
    import yaml

    from dcml_bot.platforms.slack.platform import BOT_EVENTS, BOT_SCOPES, COMMAND

    manifest = yaml.safe_load((CONFIG.parent / "slack-manifest.yaml").read_text())
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [COMMAND]
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)
    settings = manifest["settings"]
    assert sorted(settings["event_subscriptions"]["bot_events"]) == sorted(BOT_EVENTS)
    assert settings["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    urls = {
        manifest["features"]["slash_commands"][0]["url"],
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    }
    assert urls == {"https://YOUR-HOST/slack/events"}
    assert len(manifest["display_information"]["name"]) <= 35
    assert len(manifest["display_information"]["description"]) <= 140


def test_a_500_entry_catalog_gives_valid_block_kit_at_the_wire(db_url: str, tmp_path: Path) -> None:
    from support import synthetic_guide

    guide = synthetic_guide(tmp_path / "big.md")
    fake = FakeSlack().start()
    settings = slack_settings(db_url, fake, catalog=str(guide))
    service = build_service(settings, clock=Clock(DELIVERY_TIME), schedule=False)
    try:
        with running(build_http_app(service)) as base:
            slack = Slack(service, base, fake, Clock(DELIVERY_TIME))
            assert len(service.bot.library.catalog.entries) == 500
            for line in ("essential", "advanced", "search zebra3", "topic07", "topics", "next"):
                response = slack.command(line, user="U0BIG")
                assert response.status_code == 200, line
                assert check_message(response.json()) == [], line
                assert "<!channel>" not in response.text
            slack.platform.drain()
            for page in fake.responses():  # pages after the first, via response_url
                assert check_message(page) == []
    finally:
        fake.stop()


def test_remind_from_the_command_line_reaches_slack_members(db_url: str) -> None:
    import os
    import subprocess
    import sys

    from dcml_bot.store import open_store

    fake = FakeSlack().start()
    store = open_store(db_url)
    try:
        now = dt.datetime.now(dt.UTC)
        for user in ("U0CLI1", "U0CLI2"):
            member = store.upsert_member("slack", user, now=now)
            store.set_enrolled(member.id, True, now)
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "FEISHU_", "DCML"))
        }
        env.update(
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET=SECRET,
            DCML_BOT_SLACK_API_URL=fake.base + "/api/",
            DCML_BOT_DATABASE_URL=db_url,
        )
        command = [str(Path(sys.executable).parent / "dcml-bot"), "remind", "--week", WEEK]
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        assert "sent: 2" in first.stdout and "already: 2" in again.stdout
        assert [len(fake.dms(u)) for u in ("U0CLI1", "U0CLI2")] == [1, 1]
    finally:
        store.dispose()
        fake.stop()
