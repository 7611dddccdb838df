"""Replayed requests at the wire: a captured, correctly signed Slack command or button press, or
Feishu card press, sent again within the 5-minute window is answered and has no effect."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from lark_oapi.core.cache import LocalCache
from lark_oapi.core.token.manager import TokenManager

from dcml_bot.core.jobs import REQUEST_MEMORY, Jobs
from dcml_bot.core.metrics import Metrics
from dcml_bot.core.plan import READ, SNOOZED
from dcml_bot.platforms.common.replay import ReplayGuard
from dcml_bot.store.events import REQUEST
from fakes.feishu import (
    ENCRYPT_KEY,
    Feishu,
    buttons,
    card_of,
    card_press,
    encrypt,
    serve_feishu,
    sign,
)
from fakes.slack import PAYLOADS, Slack, enrol, serve_slack, trigger_id
from support import MONDAY_SLOT, Clock, Recorder, make_bot

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def slack(db_url: str) -> Iterator[Slack]:
    with serve_slack(db_url) as running_bot:
        yield running_bot


@pytest.fixture
def feishu(db_url: str) -> Iterator[Feishu]:
    saved, TokenManager.cache = TokenManager.cache, LocalCache()  # as test_feishu.py does
    try:
        with serve_feishu(db_url) as running_bot:
            yield running_bot
    finally:
        TokenManager.cache = saved


def metric(base: str, needle: str) -> str:
    return next(
        (line for line in httpx.get(base + "/metrics").text.splitlines() if needle in line), ""
    )


def replay_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "replayed" in r.getMessage()
    ]


# --- Slack ----------------------------------------------------------------------------------


def command_body(slack: Slack, line: str, user: str) -> str:
    fields = json.loads((PAYLOADS / "slack_slash_command.fields.json").read_text())
    fields.update(
        command="/dcml",
        text=line,
        user_id=user,
        response_url=f"{slack.fake.base}/respond/{user}",
        trigger_id=trigger_id(),
    )
    return urlencode(fields)


def press_body(slack: Slack, action_id: str, value: str, user: str, message_ts: str) -> str:
    payload = json.loads((PAYLOADS / "slack_block_actions.json").read_text())
    payload["user"]["id"] = user
    payload["channel"]["id"] = payload["container"]["channel_id"] = "D" + user
    payload["container"]["message_ts"] = payload["message"]["ts"] = message_ts
    payload["response_url"] = f"{slack.fake.base}/respond/action-{user}"
    payload["actions"][0].update(action_id=action_id, value=value)
    payload["trigger_id"] = trigger_id()
    return urlencode({"payload": json.dumps(payload)})


def test_a_replayed_stop_does_not_opt_the_member_out_again(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    enrol(slack, "U0REPLAY")
    store = slack.service.bot.store
    stop, captured_at = command_body(slack, "stop", "U0REPLAY"), int(time.time())
    first = slack.post(stop, FORM, timestamp=captured_at)
    assert first.status_code == 200 and "off" in first.json()["text"]
    member = store.get_member("slack", "U0REPLAY")
    assert member is not None and not member.enrolled
    assert slack.command("start", user="U0REPLAY").status_code == 200
    assert store.get_member("slack", "U0REPLAY").enrolled  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING):
        # The captured request again, byte for byte: same body, timestamp and signature.
        replay = slack.post(stop, FORM, timestamp=captured_at)
    assert replay.status_code == 200 and replay.text == ""  # the empty ack
    assert store.get_member("slack", "U0REPLAY").enrolled  # type: ignore[union-attr]
    assert replay_warnings(caplog) == [
        "slack: a replayed slash command was answered without effect"
    ]
    assert metric(slack.base, 'reason="replay"').endswith(" 1.0")
    # The member's own next "stop" is a new request: it works.
    assert "off" in slack.command("stop", user="U0REPLAY").json()["text"]
    assert not store.get_member("slack", "U0REPLAY").enrolled  # type: ignore[union-attr]


def test_a_replayed_query_is_answered_again_and_nothing_is_recorded(slack: Slack) -> None:
    # Only commands that change something are guarded: a query costs no write.
    progress, captured_at = command_body(slack, "progress", "U0QUERY"), int(time.time())
    first = slack.post(progress, FORM, timestamp=captured_at)
    again = slack.post(progress, FORM, timestamp=captured_at)
    assert first.status_code == again.status_code == 200
    assert first.json()["text"] and again.json() == first.json()
    far = slack.clock() + dt.timedelta(days=1)
    assert slack.service.bot.store.prune_events(far, kind=REQUEST) == 0
    stop = command_body(slack, "stop", "U0QUERY")
    assert slack.post(stop, FORM).status_code == 200
    assert slack.service.bot.store.prune_events(far, kind=REQUEST) == 1


def test_a_replayed_later_press_does_not_undo_done(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    enrol(slack, "U0PRESS")
    report = slack.service.jobs.deliver()
    assert report is not None and report.count("sent") == 1
    [dm] = slack.fake.dms("U0PRESS")
    by_id = {
        b["action_id"]: b
        for blk in dm["blocks"]
        if blk["type"] == "actions"
        for b in blk["elements"]
    }
    item_id = by_id["dcml:done"]["value"].split("|")[0]
    store = slack.service.bot.store
    member = store.get_member("slack", "U0PRESS")
    assert member is not None
    later = press_body(slack, "dcml:later", by_id["dcml:later"]["value"], "U0PRESS", dm["ts"])
    captured_at = int(time.time())
    assert slack.post(later, FORM, timestamp=captured_at).status_code == 200
    slack.platform.drain()
    assert store.progress_for(member.id)[item_id].state == SNOOZED
    assert (
        slack.press("dcml:done", by_id["dcml:done"]["value"], "U0PRESS", dm["ts"]).status_code
        == 200
    )
    slack.platform.drain()
    assert store.progress_for(member.id)[item_id].state == READ
    answered = len(slack.fake.requests("/respond/action-U0PRESS"))
    with caplog.at_level(logging.WARNING):
        replay = slack.post(later, FORM, timestamp=captured_at)
        slack.platform.drain()
    assert replay.status_code == 200 and replay.text == ""
    assert store.progress_for(member.id)[item_id].state == READ
    assert len(slack.fake.requests("/respond/action-U0PRESS")) == answered  # nothing rewritten
    assert replay_warnings(caplog) == ["slack: a replayed button press was answered without effect"]


# --- Feishu ---------------------------------------------------------------------------------


def signed_request(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """What Feishu sends for ``event``: the encrypted body and its signed headers (capturable)."""
    body = json.dumps({"encrypt": encrypt(json.dumps(event, ensure_ascii=False))}).encode()
    stamp, nonce = str(int(time.time())), uuid.uuid4().hex[:16]
    headers = {
        "Content-Type": "application/json",
        "X-Lark-Request-Timestamp": stamp,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": sign(stamp, nonce, body, ENCRYPT_KEY),
    }
    return body, headers


def test_a_replayed_later_card_press_does_not_undo_done(
    feishu: Feishu, caplog: pytest.LogCaptureFixture
) -> None:
    feishu.enrol("ou_press")
    report = feishu.service.jobs.deliver()
    assert report is not None and report.count("sent") == 1
    [dm] = feishu.fake.to("ou_press")
    values = {
        b["behaviors"][0]["value"]["action"]: b["behaviors"][0]["value"]
        for b in buttons(card_of(dm))
    }
    item_id = values["done"]["value"].split("|")[0]
    member = feishu.member("ou_press")
    store = feishu.service.bot.store
    url = feishu.base + "/feishu/events"
    later = signed_request(card_press("ou_press", values["later"], dm["message_id"]))
    first = httpx.post(url, content=later[0], headers=later[1])
    assert first.status_code == 200 and first.json()["toast"]["type"] == "success"
    assert store.progress_for(member.id)[item_id].state == SNOOZED
    done = feishu.post(card_press("ou_press", values["done"], dm["message_id"]))
    assert done.status_code == 200 and done.json()["toast"]["type"] == "success"
    assert store.progress_for(member.id)[item_id].state == READ
    with caplog.at_level(logging.WARNING):
        replay = httpx.post(url, content=later[0], headers=later[1])
    assert replay.status_code == 200 and replay.json() == {}  # the plain answer: card unchanged
    assert store.progress_for(member.id)[item_id].state == READ
    assert replay_warnings(caplog) == [
        "feishu: a replayed card press (later) was answered without effect"
    ]
    assert metric(feishu.base, 'platform="feishu",reason="replay"').endswith(" 1.0")
    assert metric(feishu.base, 'outcome="replayed"').endswith(" 1.0")


# --- keeping the identities only for the window ---------------------------------------------


def test_request_identities_are_kept_for_the_window_then_pruned(db_url: str) -> None:
    clock = Clock(MONDAY_SLOT)
    bot = make_bot(db_url, Recorder(), clock)
    try:
        guard = ReplayGuard("slack", bot.store, clock, Metrics())
        assert guard.first("1700000000:v0=old", "slash command")
        assert bot.store.record_event("slack", "Ev-join", clock())  # an event id: kept 7 days
        clock.advance(minutes=10)
        assert guard.first("1700000600:v0=new", "slash command")
        assert not guard.first("1700000000:v0=old", "slash command")  # still inside: a replay
        clock.advance(seconds=(REQUEST_MEMORY - dt.timedelta(minutes=10)).total_seconds() + 1)
        assert Jobs(bot).prune() == 1  # the first request's identity only
        assert not guard.first("1700000600:v0=new", "slash command")
        assert not bot.store.record_event("slack", "Ev-join", clock())
        # Its signature is long stale by now (Bolt answers 401 before the guard is asked).
        assert guard.first("1700000000:v0=old", "slash command")
    finally:
        bot.close()
