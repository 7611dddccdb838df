"""A join whose handling fails is tried again while the bot runs, and given up after a day with
one WARNING and one notice per admin: Slack's users.info at the wire, a Feishu join whose
database write fails."""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lark_oapi.core.cache import LocalCache
from lark_oapi.core.token.manager import TokenManager
from sqlalchemy.exc import OperationalError

from dcml_bot.core.once import Retry
from dcml_bot.platforms.common.inbox import GIVE_UP
from dcml_bot.platforms.feishu.messenger import delivery_uuid
from fakes.feishu import LAB_GROUP, Feishu, serve_feishu, user_added
from fakes.slack import Slack, serve_slack

# Seconds instead of the 30 s … 30 min of production: the back-off itself is what is tested.
FAST = Retry(first=dt.timedelta(seconds=0.2), factor=2, cap=dt.timedelta(seconds=1))
USERS_INFO = "/api/users.info"


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (the retries run on their own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


@pytest.fixture
def slack(db_url: str) -> Iterator[Slack]:
    with serve_slack(db_url) as running_bot:
        running_bot.platform.inbox.retry = FAST
        yield running_bot


@pytest.fixture
def feishu(db_url: str) -> Iterator[Feishu]:
    saved, TokenManager.cache = TokenManager.cache, LocalCache()  # as test_feishu.py does
    try:
        with serve_feishu(db_url) as running_bot:
            running_bot.platform.inbox.retry = FAST
            yield running_bot
    finally:
        TokenManager.cache = saved


def failing_users_info(slack: Slack, failures: int | None, status: int = 500) -> None:
    """users.info answers ``failures`` times with ``status`` (None: always), then as before."""
    real = slack.fake.routes[USERS_INFO]
    left = [failures]

    def answer(request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        with slack.fake.lock:
            if left[0] is not None and left[0] <= 0:
                return real(request)
            if left[0] is not None:
                left[0] -= 1
        if status >= 500:
            return status, {"ok": False, "error": "internal_error"}, {}
        return 200, {"ok": False, "error": "fatal_error"}, {}

    slack.fake.routes[USERS_INFO] = answer


def test_a_welcome_whose_users_info_fails_three_times_is_sent_while_running(slack: Slack) -> None:
    # One lookup is three calls (slack_sdk retries a 500 twice): the first lookup fails whole.
    failing_users_info(slack, failures=3)
    response = slack.event("member_joined_channel", user="U0LATE", channel="C0LAB", event_id="Ev1")
    assert response.status_code == 200
    [dm] = eventually(lambda: slack.fake.dms("U0LATE"))
    assert dm["metadata"]["event_payload"]["key"] == "welcome:slack:U0LATE"
    assert len(slack.fake.requests(USERS_INFO)) == 4
    eventually(lambda: not slack.service.bot.store.pending_events("slack"))
    member = slack.service.bot.store.get_member("slack", "U0LATE")
    assert member is not None and member.onboarded_at is not None


def test_a_join_failing_for_a_day_is_given_up_and_the_admins_told_once(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    failing_users_info(slack, failures=None, status=200)
    store = slack.service.bot.store
    with caplog.at_level(logging.WARNING, logger="dcml_bot.platforms.common.inbox"):
        event = slack.event("member_joined_channel", user="U0GONE", channel="C0LAB", event_id="Ev2")
        assert event.status_code == 200
        eventually(lambda: len(slack.fake.requests(USERS_INFO)) >= 3)  # tried again, and again
        assert [e.event_id for e in store.pending_events("slack")] == ["Ev2"]
        slack.clock.advance(seconds=GIVE_UP.total_seconds() + 60)
        [notice] = eventually(lambda: slack.fake.dms("U0ADMIN"))
        eventually(lambda: not store.pending_events("slack"))
    calls = len(slack.fake.requests(USERS_INFO))
    time.sleep(1.5)  # longer than the back-off's cap: no attempt after giving up
    assert len(slack.fake.requests(USERS_INFO)) == calls
    text = json.dumps(notice["blocks"])
    assert "slack:U0GONE" in text and "fatal_error" in text
    given_up = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert len(given_up) == 1 and "member_joined_channel Ev2" in given_up[0]
    assert slack.fake.dms("U0GONE") == [] and len(slack.fake.dms("U0ADMIN")) == 1
    # Slack redelivering the same event changes nothing: its id is still remembered.
    slack.event("member_joined_channel", user="U0GONE", channel="C0LAB", event_id="Ev2")
    slack.platform.drain()
    assert len(slack.fake.requests(USERS_INFO)) == calls


def failing_writes(
    monkeypatch: pytest.MonkeyPatch, feishu: Feishu, failures: int | None
) -> list[int]:
    """The member write of a join fails ``failures`` times (None: always), as a dropped
    database connection would; returns the list the attempts are counted in."""
    store = feishu.service.bot.store
    real = store.upsert_member
    attempts: list[int] = []

    def upsert(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        if failures is None or len(attempts) <= failures:
            raise OperationalError("INSERT INTO members …", {}, Exception("connection lost"))
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "upsert_member", upsert)
    return attempts


def test_a_feishu_join_that_fails_is_welcomed_while_running(
    feishu: Feishu, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = failing_writes(monkeypatch, feishu, failures=2)
    assert feishu.post(user_added(LAB_GROUP, "ou_flaky", event_id="ev_flaky")).status_code == 200
    [welcome] = eventually(lambda: feishu.fake.to("ou_flaky"))
    assert welcome["body"]["uuid"] == delivery_uuid("welcome:feishu:ou_flaky")
    assert len(attempts) == 3
    eventually(lambda: not feishu.service.bot.store.pending_events("feishu"))
    assert feishu.member("ou_flaky").onboarded_at is not None


def test_a_feishu_join_failing_for_a_day_tells_the_admins_who(
    feishu: Feishu, monkeypatch: pytest.MonkeyPatch
) -> None:
    feishu.enrol("ou_admin")  # the notice's own member write must not be the one failing
    attempts = failing_writes(monkeypatch, feishu, failures=None)
    event = user_added(LAB_GROUP, "ou_lost1", "ou_lost2", event_id="ev_lost")
    assert feishu.post(event).status_code == 200
    eventually(lambda: len(attempts) >= 2)  # tried again while running (ou_lost1 fails first)
    feishu.clock.advance(seconds=GIVE_UP.total_seconds() + 60)
    notices = eventually(
        lambda: len(feishu.fake.to("ou_admin")) == 2 and feishu.fake.to("ou_admin")
    )
    text = html.unescape(" ".join(n["body"]["content"] for n in notices))
    assert "feishu:ou_lost1" in text and "feishu:ou_lost2" in text
    eventually(lambda: not feishu.service.bot.store.pending_events("feishu"))
