"""Feishu at the wire: encrypted, signed events into the HTTP endpoint (or the long connection),
real lark-oapi dispatch and client, and a fake Open Platform recording what the bot sends."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dcml_bot.app import build_service
from dcml_bot.catalog.models import COMMON
from dcml_bot.core.delivery import weekly_key
from dcml_bot.core.i18n import text
from dcml_bot.core.plan import READ, in_scope
from dcml_bot.platforms.feishu import platform as feishu_events
from dcml_bot.platforms.feishu.cards import check_card, escape_markdown, safe_url
from dcml_bot.platforms.feishu.messenger import (
    BotIdentity,
    FeishuMessenger,
    delivery_uuid,
    feishu_pacing,
)
from dcml_bot.platforms.feishu.platform import FeishuPlatform, command_text, menu_command
from dcml_bot.settings import TrackSettings
from fakes.feishu import (
    BOT_INFO,
    BOT_NAME,
    BOT_OPEN_ID,
    DELIVERY_TIME,
    ENDPOINT,
    LAB_GROUP,
    MESSAGES,
    PAYLOADS,
    TOKEN_PATH,
    FakeFeishu,
    FakeLongConnection,
    Feishu,
    buttons,
    card_of,
    card_press,
    card_text,
    feishu_settings,
    fresh_token_cache,
    mention,
    message_event,
    payload,
    serve_feishu,
    track_values,
    user_added,
    v2,
)
from support import CONFIG, WEEK, Clock

__all__ = ["fresh_token_cache"]  # autouse: each test its own lark-oapi token cache


# --- the bot under test ----------------------------------------------------------------------


@pytest.fixture
def feishu(db_url: str) -> Iterator[Feishu]:
    """The bot on SQLite and on PostgreSQL (dedupe, onboarding, outbox)."""
    with serve_feishu(db_url) as running_bot:
        yield running_bot


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Feishu]:
    """The bot on SQLite only, for what does not depend on the database."""
    with serve_feishu(f"sqlite:///{tmp_path / 'store.sqlite3'}") as running_bot:
        yield running_bot


# --- commands ---------------------------------------------------------------------------------


def test_dm_commands_are_answered_with_card_replies(lite: Feishu) -> None:
    ids = {}
    for n, line in enumerate(["/dcml essential", "dcml essential", "essential"]):
        ids[line] = f"om_cmd_{n}"
        event = message_event(line, message_id=ids[line])
        assert lite.post(event).status_code == 200
    lite.platform.drain()
    catalog = lite.service.bot.library.catalog
    essentials = [e for e in catalog.entries if e.level and e.level.value == "essential"]
    contents = []
    for line, message_id in ids.items():
        replies = lite.fake.replies(message_id)
        assert len(replies) == 1, line
        card = card_of(replies[0])
        contents.append(json.dumps(card["body"], ensure_ascii=False))
        assert replies[0]["headers"]["Authorization"] == "Bearer t-fake"
        assert replies[0]["body"]["uuid"].startswith("dcml-")
        assert len(replies[0]["body"]["uuid"]) <= 50
    assert contents[0] == contents[1] == contents[2]
    assert essentials and all(e.url in contents[0] for e in essentials[:5] if e.url)
    assert len(lite.fake.requests(TOKEN_PATH)) == 1  # cached after the first send
    assert lite.member("ou_newbie") is not None
    metrics = httpx.get(lite.base + "/metrics").text
    assert 'dcml_commands_total{outcome="ok",platform="feishu"} 3.0' in metrics


def test_group_mention_placeholders_are_stripped(lite: Feishu) -> None:
    asked = message_event(
        "@_user_1 /dcml progress",
        chat_type="group",
        mentions=[mention(1, BOT_OPEN_ID, BOT_NAME)],
        message_id="om_g1",
    )
    chatter = message_event("progress", chat_type="group", message_id="om_g2")  # no mention
    assert lite.post(asked).status_code == 200
    assert lite.post(chatter).status_code == 200
    lite.platform.drain()
    [reply] = lite.fake.replies("om_g1")
    assert text("zh", "progress.header") in reply["body"]["content"]
    card_of(reply)
    assert lite.fake.replies("om_g2") == []
    assert command_text(json.dumps({"text": "@_user_1  dcml  next @_user_2"})) == "dcml next"
    assert command_text("not json") == ""


def events_metric(base: str, outcome: str) -> float:
    """``dcml_events_total`` of Feishu messages with one outcome (0 when never counted)."""
    metrics = httpx.get(base + "/metrics").text
    wanted = f'outcome="{outcome}",platform="feishu",type="im.message.receive_v1"}}'
    for line in metrics.splitlines():
        if line.startswith("dcml_events_total{") and wanted in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_group_messages_are_answered_only_when_they_mention_the_bot(feishu: Feishu) -> None:
    [info] = feishu.fake.requests(BOT_INFO)  # learned once, at start
    assert info["method"] == "GET" and info["headers"]["Authorization"] == "Bearer t-fake"
    assert feishu.platform.identity == BotIdentity(BOT_OPEN_ID, BOT_NAME)
    me = mention(1, BOT_OPEN_ID, BOT_NAME)
    events = {
        "om_me": message_event("@_user_1 progress", chat_type="group", mentions=[me]),
        "om_me_second": message_event(
            "@_user_1 @_user_2 progress",
            chat_type="group",
            mentions=[mention(1, "ou_colleague", "Colleague"), mention(2, BOT_OPEN_ID, BOT_NAME)],
        ),
        "om_colleague": message_event(
            "@_user_1 progress",
            open_id="ou_chatter",
            chat_type="group",
            mentions=[mention(1, "ou_colleague", "Colleague")],
        ),
        # Another bot, even one named like ours, is not the bot.
        "om_other_bot": message_event(
            "@_user_1 progress",
            open_id="ou_chatter",
            chat_type="group",
            mentions=[mention(1, "ou_other_bot", BOT_NAME)],
        ),
        "om_nobody": message_event("progress", open_id="ou_chatter", chat_type="group"),
        "om_dm": message_event("progress", open_id="ou_dm"),
    }
    for message_id, event in events.items():
        event["event"]["message"]["message_id"] = message_id
        assert feishu.post(event).status_code == 200, message_id
    feishu.platform.drain()
    answered = {message_id for message_id in events if feishu.fake.replies(message_id)}
    assert answered == {"om_me", "om_me_second", "om_dm"}
    for message_id in answered:
        [reply] = feishu.fake.replies(message_id)
        assert text("zh", "progress.header") in reply["body"]["content"]
    # No call at all for the others: no send, no refused send, no second bot info.
    assert len(feishu.fake.sends()) == 3
    assert [c["path"] for c in feishu.fake.calls if not c["path"].startswith(MESSAGES)] == [
        TOKEN_PATH,
        BOT_INFO,
    ]
    assert events_metric(feishu.base, "ignored") == 2.0
    assert events_metric(feishu.base, "not-mentioned") == 1.0
    # Only those who asked the bot became members.
    assert feishu.member("ou_newbie") is not None and feishu.member("ou_dm") is not None
    assert feishu.member("ou_chatter") is None


def test_bot_info_failing_at_start_is_retried_in_the_background(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(feishu_events, "IDENTITY_RETRY", (0.05, 0.2))
    caplog.set_level(logging.INFO, logger="dcml_bot.platforms.feishu.platform")
    caplog.set_level(logging.INFO, logger="dcml_bot.platforms.common.first_call")
    # Failing until told otherwise: the server starts and serves meanwhile.
    with serve_feishu(db_url, bot_info_failures=10**6) as bot:
        deadline = time.monotonic() + 10
        while len(bot.fake.requests(BOT_INFO)) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(bot.fake.requests(BOT_INFO)) >= 4
        assert bot.platform.identity is None
        health = bot.platform.health()
        assert health["state"] == "connecting" and health["attempts"] >= 4
        assert "500" in health["error"] and "system busy" in health["error"]
        me = [mention(1, BOT_OPEN_ID, BOT_NAME)]
        early = ["om_early_1", "om_early_2"]
        for message_id in early:
            event = message_event("@_user_1 progress", chat_type="group", mentions=me)
            event["event"]["message"]["message_id"] = message_id
            assert bot.post(event).status_code == 200
        assert bot.post(message_event("progress", message_id="om_early_dm")).status_code == 200
        bot.platform.drain()
        assert all(bot.fake.replies(message_id) == [] for message_id in early)
        assert len(bot.fake.replies("om_early_dm")) == 1  # DMs need no open_id
        assert events_metric(bot.base, "unverified") == 2.0
        unverified = [
            r
            for r in caplog.records
            if r.levelno == logging.WARNING and "group @-mentions cannot be checked" in r.message
        ]
        assert len(unverified) == 1  # once, however many messages wait
        failed = [r for r in caplog.records if "feishu: not reachable yet" in r.message]
        assert failed[0].levelno == logging.WARNING
        assert all(r.levelno == logging.INFO for r in failed[1:])

        with bot.fake.lock:
            bot.fake.bot_info_failures = 0
        assert bot.platform.wait_identity(10)
        assert bot.platform.identity == BotIdentity(BOT_OPEN_ID, BOT_NAME)
        assert bot.platform.health() == {"state": "connected"}
        calls = bot.fake.requests(BOT_INFO)
        metrics = httpx.get(bot.base + "/metrics").text
        assert f'dcml_errors_total{{where="feishu.bot_info"}} {len(calls) - 1}.0' in metrics
        stamps = [c["at"] for c in calls]
        gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
        # Backing off: 0.05 s, then doubling, at most 0.2 s (a wait can only be longer).
        assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and all(gap >= 0.2 for gap in gaps[2:])
        time.sleep(0.3)
        assert len(bot.fake.requests(BOT_INFO)) == len(calls)  # known: no more calls

        event = message_event("@_user_1 progress", chat_type="group", mentions=me)
        event["event"]["message"]["message_id"] = "om_late"
        assert bot.post(event).status_code == 200
        bot.platform.drain()
        [reply] = bot.fake.replies("om_late")
        assert text("zh", "progress.header") in reply["body"]["content"]


def test_bot_info_refuses_calls_without_the_tenant_token(lite: Feishu) -> None:
    url = lite.fake.base + BOT_INFO
    missing = httpx.get(url)
    wrong = httpx.get(url, headers={"Authorization": "Bearer t-stolen"})
    right = httpx.get(url, headers={"Authorization": "Bearer t-fake"})
    assert (missing.status_code, missing.json()["code"]) == (400, 99991661)
    assert (wrong.status_code, wrong.json()["code"]) == (400, 99991663)
    assert "bot" not in missing.json() and "bot" not in wrong.json()
    assert right.status_code == 200
    assert right.json()["code"] == 0 and right.json()["bot"]["open_id"] == BOT_OPEN_ID


def test_bot_menu_runs_the_mapped_command(lite: Feishu) -> None:
    for key, operator in [("progress", "ou_menu1"), ("no-such-item", "ou_menu2")]:
        event = payload("application.bot.menu_v6")
        event["header"]["event_id"] = uuid.uuid4().hex
        event["event"]["event_key"] = key
        event["event"]["operator"]["operator_id"]["open_id"] = operator
        assert lite.post(event).status_code == 200
    lite.platform.drain()
    [progress] = lite.fake.to("ou_menu1")
    [helped] = lite.fake.to("ou_menu2")
    assert text("zh", "progress.header") in progress["body"]["content"]
    assert text("zh", "help.header") in helped["body"]["content"]
    card_of(progress)
    assert menu_command("dcml_next") == "next" and menu_command(None) == "help"


def test_url_verification_plain_and_encrypted(lite: Feishu) -> None:
    challenge = payload("url_verification")
    plain = lite.post(challenge, encrypted=False, signed=False)
    assert plain.status_code == 200 and plain.json() == {"challenge": challenge["challenge"]}
    encrypted = lite.post(challenge, signed=False)
    assert encrypted.status_code == 200
    assert encrypted.json() == {"challenge": challenge["challenge"]}
    forged = lite.post({**challenge, "token": "wrong"}, signed=False)
    assert forged.status_code == 401


def test_forged_stale_and_broken_requests_have_no_effects(lite: Feishu) -> None:
    cases: list[tuple[str, dict[str, Any], dict[str, Any], int]] = []

    def case(name: str, expected: int, **kw: Any) -> None:
        event = message_event("essential", open_id=f"ou_{name}")
        if name == "token":
            event["header"]["token"] = "not-the-token"
        cases.append((name, event, kw, expected))

    case("signature", 401, sign_key="another-key")
    case("token", 401)
    case("undecryptable", 400, key="another-key")
    case("stale", 401, skew=-305)
    case("future", 401, skew=305)
    case("unsigned", 401, signed=False)
    case("plaintext", 401, encrypted=False, sign_key="another-key")
    for name, event, kw, expected in cases:
        skew = kw.pop("skew", None)
        if skew is not None:
            kw["timestamp"] = int(time.time()) + skew
        response = lite.post(event, **kw)
        assert response.status_code == expected, (name, response.text)
        assert "Traceback" not in response.text
    captured = json.loads(
        (PAYLOADS / "feishu_im.message.receive_v1.encrypted_request.json").read_text()
    )
    old = httpx.post(
        lite.base + "/feishu/events",
        content=json.dumps(captured["body"]),
        headers=captured["headers"],  # correctly signed, long ago
    )
    assert old.status_code == 401
    for body in [b"{not json", b"\xff\xfe\x00", b"[1, 2]", b"", b'{"encrypt": "%%%"}']:
        response = lite.post(body)
        assert 400 <= response.status_code < 500, (body, response.status_code)
    assert lite.post(b"{" + b" " * (300 * 1024) + b"}").status_code == 413
    lite.platform.drain()
    store = lite.service.bot.store
    assert [c["path"] for c in lite.fake.calls] == [TOKEN_PATH, BOT_INFO]  # start-up only
    for name, event, _, _ in cases:
        assert lite.member(f"ou_{name}") is None, name
        # Not recorded: a genuine redelivery of the same id would still be handled.
        assert store.record_event("feishu", event["header"]["event_id"], lite.clock()), name
    metrics = httpx.get(lite.base + "/metrics").text
    assert 'dcml_rejected_requests_total{platform="feishu",reason="stale"} 3.0' in metrics
    assert 'dcml_rejected_requests_total{platform="feishu",reason="signature"} 2.0' in metrics


def test_unhandled_event_types_are_acknowledged_and_ignored(lite: Feishu) -> None:
    events = [
        payload("im.chat.member.bot.added_v1"),
        v2("im.message.reaction.created_v1", {"message_id": "om_x"}),
        v2("x.never.heard_of_v9", {"anything": True}),
    ]
    for event in events:
        response = lite.post(event)
        assert response.status_code == 200, response.text
    lite.platform.drain()
    assert [c["path"] for c in lite.fake.calls] == [TOKEN_PATH, BOT_INFO]  # start-up only
    metrics = httpx.get(lite.base + "/metrics").text
    assert 'type="im.chat.member.bot.added_v1"} 1.0' in metrics
    assert 'type="x.never.heard_of_v9"} 1.0' in metrics


# --- dedupe and onboarding ----------------------------------------------------------------------


def test_same_event_delivered_five_times_has_one_effect(feishu: Feishu) -> None:
    command = message_event("next", message_id="om_once", event_id="ev_cmd_1")
    joined = user_added(LAB_GROUP, "ou_twice", event_id="ev_join_1")
    results: list[int] = []

    def deliver(event: dict[str, Any]) -> None:
        results.append(feishu.post(event).status_code)

    threads = [
        threading.Thread(target=deliver, args=(event,))
        for event in (command, joined)
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 10
    feishu.platform.drain()
    assert len(feishu.fake.replies("om_once")) == 1
    assert len(feishu.fake.to("ou_twice")) == 1
    assert not feishu.service.bot.store.record_event("feishu", "ev_cmd_1", feishu.clock())


def test_lab_group_additions_welcome_each_user_once(feishu: Feishu) -> None:
    assert feishu.post(user_added(LAB_GROUP, "ou_new1", "ou_new2")).status_code == 200
    assert feishu.post(user_added("oc_other_group", "ou_new3")).status_code == 200
    assert feishu.post(user_added(LAB_GROUP, "ou_guest", tenant="other-tenant")).status_code == 200
    # Removed and added again later: still one welcome each.
    assert feishu.post(user_added(LAB_GROUP, "ou_new1")).status_code == 200
    feishu.platform.drain()
    for open_id in ("ou_new1", "ou_new2"):
        [welcome] = feishu.fake.to(open_id)
        assert welcome["body"]["uuid"] == delivery_uuid(f"welcome:feishu:{open_id}")
        card_of(welcome)
        member = feishu.member(open_id)
        assert member is not None and member.enrolled and member.display_name == f"Name {open_id}"
    assert feishu.fake.to("ou_new3") == [] and feishu.fake.to("ou_guest") == []
    assert feishu.member("ou_new3") is None


def test_opening_the_bot_chat_welcomes_once(feishu: Feishu) -> None:
    for _ in range(2):
        event = payload("im.chat.access_event.bot_p2p_chat_entered_v1")
        event["header"]["event_id"] = uuid.uuid4().hex
        event["event"]["operator_id"]["open_id"] = "ou_opener"
        assert feishu.post(event).status_code == 200
    feishu.platform.drain()
    assert len(feishu.fake.to("ou_opener")) == 1


def test_new_tenant_users_are_welcomed_only_when_configured(tmp_path: Path) -> None:
    event = payload("contact.user.created_v3")
    event["event"]["object"]["time_zone"] = "Europe/Berlin"
    for enabled, name in [(False, "off"), (True, "on")]:
        url = f"sqlite:///{tmp_path / name}.sqlite3"
        with serve_feishu(url, welcome_new_users=enabled) as bot:
            event["header"]["event_id"] = uuid.uuid4().hex
            assert bot.post(event).status_code == 200
            bot.platform.drain()
            welcomes = bot.fake.to("ou_newbie_1")
            assert len(welcomes) == int(enabled)
            if enabled:
                member = bot.member("ou_newbie_1")
                assert member.timezone == "Europe/Berlin" and member.display_name == "Newbie"


# --- weekly delivery, buttons and sending failures ----------------------------------------------


def test_weekly_cards_and_a_button_press(feishu: Feishu) -> None:
    users = ["ou_w1", "ou_w2", "ou_w3"]
    feishu.enrol(*users)
    first = feishu.service.jobs.deliver()
    again = feishu.service.jobs.deliver()
    assert first is not None and first.count("sent") == 3
    assert again is not None and again.count("sent") == 0
    for open_id in users:
        [dm] = feishu.fake.to(open_id)
        member = feishu.member(open_id)
        assert dm["query"] == {"receive_id_type": "open_id"}
        assert dm["body"]["uuid"] == delivery_uuid(weekly_key(member, WEEK))
        assert len(dm["body"]["uuid"]) <= 50
        card = card_of(dm)
        assert len(buttons(card)) == 3
    card = card_of(feishu.fake.to(users[0])[0])
    done = buttons(card)[0]["behaviors"][0]["value"]
    assert done["action"] == "done"
    press = payload("card.action.trigger")
    press["header"]["event_id"] = uuid.uuid4().hex
    press["event"]["operator"]["open_id"] = users[0]
    press["event"]["action"]["value"] = done
    press["event"]["context"]["open_message_id"] = "om_sent_1"
    response = feishu.post(press)
    assert response.status_code == 200
    answer = response.json()
    assert answer["toast"]["type"] == "success" and answer["toast"]["content"]
    assert answer["card"]["type"] == "raw"
    assert check_card(answer["card"]["data"]) == []
    # The paper's buttons are gone; the one left submits the note form (test_notes_feishu.py).
    assert [b.get("form_action_type") for b in buttons(answer["card"]["data"])] == ["submit"]
    member = feishu.member(users[0])
    progress = feishu.service.bot.store.progress_for(member.id)
    assert progress[done["value"].split("|")[0]].state == READ
    assert len(feishu.fake.sends()) == 3  # the callback's answer is the update


def test_refused_card_falls_back_to_post_then_text(lite: Feishu) -> None:
    lite.enrol("ou_old_client")
    lite.fake.refuse["interactive"] = 230099
    report = lite.service.jobs.deliver()
    assert report is not None and report.count("sent") == 1
    [dm] = lite.fake.to("ou_old_client")
    assert dm["body"]["msg_type"] == "post"
    post = json.loads(dm["body"]["content"])
    assert post["zh_cn"]["content"]
    assert dm["body"]["uuid"] != delivery_uuid(weekly_key(lite.member("ou_old_client"), WEEK))
    lite.fake.refuse["post"] = 230001
    assert lite.post(message_event("help", message_id="om_plain")).status_code == 200
    lite.platform.drain()
    [reply] = lite.fake.replies("om_plain")
    assert reply["body"]["msg_type"] == "text"
    assert text("zh", "help.header") in json.loads(reply["body"]["content"])["text"]
    types = [c["body"]["msg_type"] for c in lite.fake.sends()]
    assert types == ["interactive", "post", "interactive", "post", "text"]


def test_revoked_token_is_fetched_again_once(lite: Feishu) -> None:
    assert lite.post(message_event("next", message_id="om_warm")).status_code == 200
    lite.platform.drain()
    lite.fake.revoked = 1
    assert lite.post(message_event("next", message_id="om_after")).status_code == 200
    lite.platform.drain()
    assert len(lite.fake.replies("om_after")) == 1
    assert len(lite.fake.requests(TOKEN_PATH)) == 2
    assert [c["body"]["msg_type"] for c in lite.fake.sends()] == ["interactive"] * 3


def test_rate_limit_reschedules_after_the_reset_header(feishu: Feishu) -> None:
    feishu.enrol("ou_busy")
    feishu.fake.throttle, feishu.fake.reset = 1, "600"
    report = feishu.service.jobs.deliver()
    assert report is not None and report.count("failed") == 1
    member = feishu.member("ou_busy")
    row = feishu.service.bot.store.get_outbox(weekly_key(member, WEEK))
    assert row is not None and row.status == "failed" and row.retry_at is not None
    assert row.retry_at >= feishu.clock() + dt.timedelta(seconds=600)
    assert "99991400" in (row.last_error or "")
    feishu.clock.advance(minutes=5)  # past the outbox's own backoff, not past the reset
    feishu.service.jobs.deliver()
    assert feishu.fake.to("ou_busy") == []
    feishu.clock.advance(minutes=6)
    messenger = feishu.service.bot.messengers["feishu"]
    assert isinstance(messenger, FeishuMessenger)
    pause = messenger.pacing.rate("im.message.create")
    assert pause.paused_until > time.monotonic() + 590  # every send waits out the reset
    pause.paused_until = pause.next_at = 0.0  # as if those 10 minutes had passed for it too
    report = feishu.service.jobs.deliver()
    assert report is not None and report.count("sent") == 1
    assert len(feishu.fake.to("ou_busy")) == 1
    assert len(feishu.fake.sends()) == 2  # no fallback formats for a throttled send


def test_user_outside_availability_is_dead_not_retried(feishu: Feishu) -> None:
    feishu.enrol("ou_gone")
    feishu.fake.unreachable.add("ou_gone")
    feishu.service.jobs.deliver()
    feishu.clock.advance(hours=1)
    feishu.service.jobs.deliver()
    receivers = [c["body"]["receive_id"] for c in feishu.fake.sends()]
    assert receivers == ["ou_gone", "ou_admin"]  # tried once; the admin is told once
    notice = feishu.fake.sends()[1]["body"]["content"]
    assert "feishu:ou" in notice and "gone" in notice and "230013" in notice
    row = feishu.service.bot.store.get_outbox(weekly_key(feishu.member("ou_gone"), WEEK))
    assert row is not None and row.status == "dead" and "230013" in (row.last_error or "")
    metrics = httpx.get(feishu.base + "/metrics").text
    assert 'dcml_errors_total{where="feishu.unreachable"} 1.0' in metrics


def test_pacing_spaces_sends_per_target_and_per_app() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(round(seconds, 3))
        now[0] += seconds

    pacing = feishu_pacing(clock=lambda: now[0], sleep=sleep)
    for user in ("ou_a", "ou_b", "ou_a"):
        pacing.call("im.message.create", lambda: None, target=user)
    # Another user: the app's 1/50 s; the same user again: 1/5 s after its first send.
    assert waits == [0.02, 0.18]
    assert pacing.rate("im.message.create").per_second == 50.0


# --- directions (tracks) ----------------------------------------------------------------------

STARTER = Path(__file__).parent / "data" / "starter-guide" / "Readme.md"
DIRECTIONS = ["systems", "autoML", "dcml", "graphs"]
SYSTEMS_GROUP = "oc_systems_group"
ML_GROUP = "oc_ml_group"  # mapped by two directions
# A Markdown link as a card's markdown element has it: [text](target).
CARD_LINK = re.compile(r"\[[^\[\]]*\]\(([^()\s]*)\)")


@pytest.fixture
def directions(db_url: str) -> Iterator[Feishu]:
    """The bot on the starter guide (an index of four directions), with direction groups."""
    tracks = {
        "systems": TrackSettings(groups=[SYSTEMS_GROUP]),
        "autoML": TrackSettings(groups=[ML_GROUP]),
        "dcml": TrackSettings(groups=[ML_GROUP]),
    }
    with serve_feishu(db_url, update={"catalog": str(STARTER), "tracks": tracks}) as running_bot:
        yield running_bot


def test_a_newcomer_picks_a_direction_on_the_welcome_card(directions: Feishu) -> None:
    bot = directions
    assert bot.post(user_added(LAB_GROUP, "ou_pick")).status_code == 200
    bot.platform.drain()
    [welcome] = bot.fake.to("ou_pick")
    card = card_of(welcome)
    values = track_values(card)
    assert [v["value"] for v in values] == DIRECTIONS
    labels = [b["text"]["content"] for b in buttons(card) if b["behaviors"][0]["value"] in values]
    assert labels[0].startswith("AI系统方向") and labels[3].startswith("Graph方向")
    assert escape_markdown(text("zh", "welcome.pick")) in card_text(card)
    assert bot.member("ou_pick").tracks is None

    response = bot.post(card_press("ou_pick", values[0], welcome["message_id"]))
    assert response.status_code == 200
    answer = response.json()
    chosen = text("zh", "track.ok", names="systems")
    assert answer["toast"] == {"type": "success", "content": chosen[:200]}
    assert "card" not in answer  # the welcome card stays: its first paper keeps its buttons
    assert bot.member("ou_pick").tracks == ("systems",)
    assert len(bot.fake.sends()) == 1

    assert (
        bot.post(message_event("/dcml essential", open_id="ou_pick", message_id="om_e")).status_code
        == 200
    )
    bot.platform.drain()
    [reply] = bot.fake.replies("om_e")
    shown = set(CARD_LINK.findall(card_text(card_of(reply))))
    catalog = bot.service.bot.library.catalog

    def urls(tracks: set[str]) -> set[str]:
        return {safe_url(e.url) or "" for e in catalog.entries if e.url and in_scope(e, tracks)}

    mine = urls({COMMON, "systems"})
    systems_only = urls({"systems"}) - urls({COMMON})
    dcml_only = urls({"dcml"}) - mine
    assert systems_only and dcml_only  # both directions have papers of their own
    assert shown and shown <= mine
    assert shown & systems_only
    assert not shown & dcml_only


def test_a_direction_group_sets_the_direction_without_a_picker(directions: Feishu) -> None:
    bot = directions
    assert bot.platform.options.track_groups == {
        SYSTEMS_GROUP: ("systems",),
        ML_GROUP: ("autoML", "dcml"),
    }
    assert bot.post(user_added(ML_GROUP, "ou_ml")).status_code == 200
    assert bot.post(user_added(SYSTEMS_GROUP, "ou_sys")).status_code == 200
    assert bot.post(user_added(LAB_GROUP, "ou_old")).status_code == 200
    bot.platform.drain()
    assert bot.member("ou_ml").tracks == ("autoML", "dcml")
    assert bot.member("ou_sys").tracks == ("systems",)
    for open_id, titles in [("ou_ml", "AutoML方向, Data-Centric ML方向"), ("ou_sys", "AI系统方向")]:
        [welcome] = bot.fake.to(open_id)
        card = card_of(welcome)
        assert track_values(card) == [], open_id
        content = card_text(card)
        assert escape_markdown(text("zh", "welcome.track", names=titles)) in content
        assert escape_markdown(text("zh", "welcome.pick")) not in content
        assert bot.member(open_id).enrolled
    # Already welcomed (with a picker): a direction group adds its directions, no second welcome.
    [first] = bot.fake.to("ou_old")
    assert len(track_values(card_of(first))) == 4
    assert bot.post(user_added(SYSTEMS_GROUP, "ou_old")).status_code == 200
    bot.platform.drain()
    assert bot.member("ou_old").tracks == ("systems",)
    assert bot.post(user_added(ML_GROUP, "ou_old", "ou_sys")).status_code == 200
    bot.platform.drain()
    assert bot.member("ou_old").tracks == ("systems", "autoML", "dcml")
    assert bot.member("ou_sys").tracks == ("systems", "autoML", "dcml")
    assert len(bot.fake.to("ou_old")) == 1 and len(bot.fake.to("ou_sys")) == 1
    assert len(bot.fake.sends()) == 3


def test_a_press_naming_no_direction_changes_nothing(directions: Feishu) -> None:
    bot = directions
    assert bot.post(user_added(SYSTEMS_GROUP, "ou_typo")).status_code == 200
    bot.platform.drain()
    [welcome] = bot.fake.to("ou_typo")
    names = ", ".join(DIRECTIONS)
    for word in ("astrology", "common"):
        value = {"action": "track", "value": word}
        response = bot.post(card_press("ou_typo", value, welcome["message_id"]))
        assert response.status_code == 200
        answer = response.json()
        unknown = text("zh", "track.unknown", word=word, names=names)
        assert unknown.startswith("没有叫")
        assert answer["toast"]["content"] == unknown
        assert "card" not in answer
        assert bot.member("ou_typo").tracks == ("systems",)
    assert len(bot.fake.sends()) == 1


# --- long connection --------------------------------------------------------------------------


def test_long_connection_delivers_events_without_a_public_url(tmp_path: Path) -> None:
    command = message_event("essential", open_id="ou_ws", message_id="om_ws")
    command["header"]["token"] = ""
    socket = FakeLongConnection([command, v2("x.never.heard_of_v9", {})])
    fake = FakeFeishu()
    fake.routes[ENDPOINT] = lambda r: (
        200,
        {
            "code": 0,
            "msg": "ok",
            "data": {
                "URL": f"ws://127.0.0.1:{socket.port}/ws?device_id=dev-1&service_id=1",
                "ClientConfig": {
                    "ReconnectCount": -1,
                    "ReconnectInterval": 120,
                    "ReconnectNonce": 30,
                    "PingInterval": 120,
                },
            },
        },
        {},
    )
    fake.start()
    settings = feishu_settings(
        f"sqlite:///{tmp_path / 'ws.sqlite3'}",
        fake,
        mode="websocket",
    ).model_copy(update={"feishu_encrypt_key": None, "feishu_verification_token": None})
    service = build_service(settings, clock=Clock(DELIVERY_TIME), schedule=False)
    platform = service.platforms[0]
    assert isinstance(platform, FeishuPlatform)
    try:
        assert platform.routes() == []  # no public URL needed
        started = time.monotonic()
        service.start()
        assert time.monotonic() - started < 1.0  # start() does not block
        assert socket.done.wait(15)
        platform.drain()
        assert [answer["code"] for answer in socket.answers] == [200, 200]
        [reply] = fake.replies("om_ws")
        card_of(reply)
        discovery = fake.requests(ENDPOINT)[0]
        assert discovery["body"]["AppID"].startswith("cli_")
        assert socket.path is not None and "device_id=dev-1" in socket.path
    finally:
        started = time.monotonic()
        service.stop()
        assert time.monotonic() - started < 3.0
        assert platform.connection is not None and not platform.connection.is_alive()
        fake.stop()


# --- start-up cost ----------------------------------------------------------------------------


def test_lark_oapi_is_imported_only_for_feishu(tmp_path: Path) -> None:
    importtime = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-c",
            "import dcml_bot.app, dcml_bot.server, dcml_bot.platforms.slack.platform",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "dcml_bot.server" in importtime.stderr and "lark_oapi" not in importtime.stderr
    database = f"sqlite:///{tmp_path / 'local.sqlite3'}"
    script = f"""
import sys
from pathlib import Path
from dcml_bot.app import build_service
from dcml_bot.server import build_http_app
from dcml_bot.settings import load_settings
settings = load_settings(Path({str(CONFIG)!r})).model_copy(update={{
    "database_url": {database!r},
    "slack_bot_token": None, "feishu_app_id": None, "feishu_app_secret": None,
}})
service = build_service(settings, schedule=False)
build_http_app(service)
service.bot.close()
assert sorted(service.bot.messengers) == ["local"], service.bot.messengers
assert not any(name.startswith("lark_oapi") for name in sys.modules), "lark_oapi imported"
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEISHU_", "SLACK_"))}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60)


def test_stop_ends_a_long_connection_that_is_still_retrying(tmp_path: Path) -> None:
    fake = FakeFeishu()
    fake.routes[ENDPOINT] = lambda r: (500, {"code": 1, "msg": "system busy"}, {})
    fake.start()
    settings = feishu_settings(f"sqlite:///{tmp_path / 'ws.sqlite3'}", fake, mode="websocket")
    service = build_service(settings, clock=Clock(DELIVERY_TIME), schedule=False)
    platform = service.platforms[0]
    assert isinstance(platform, FeishuPlatform) and platform.connection is not None
    try:
        service.start()
        deadline = time.monotonic() + 10
        while not fake.requests(ENDPOINT) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fake.requests(ENDPOINT)  # tried, failed, now waiting to reconnect
    finally:
        started = time.monotonic()
        service.stop()
        assert time.monotonic() - started < 3.0
        assert not platform.connection.is_alive()
        fake.stop()
