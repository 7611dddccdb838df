"""Feishu crash recovery at the wire: a claim left by a crashed run is sent again under the same
``uuid`` only while Feishu still drops a repeat of it (one hour); later it is not repeated
blind but marked dead, and the admins are told once."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterator
from typing import Any

import pytest
from lark_oapi.core.cache import LocalCache
from lark_oapi.core.token.manager import TokenManager

from dcml_bot.core.delivery import weekly_key
from dcml_bot.core.reply import Reply
from dcml_bot.platforms.feishu.messenger import delivery_uuid
from fakes.feishu import MESSAGES, Feishu, serve_feishu
from support import WEEK


@pytest.fixture
def feishu(db_url: str) -> Iterator[Feishu]:
    saved, TokenManager.cache = TokenManager.cache, LocalCache()  # as test_feishu.py does
    try:
        with serve_feishu(db_url) as running_bot:
            first: dict[str, str] = {}
            send = running_bot.fake.routes[MESSAGES]

            def once_per_uuid(request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
                # Feishu within the hour: a repeated uuid is answered with the first message.
                uuid = request["body"].get("uuid")
                if uuid in first:
                    data = {"message_id": first[uuid]}
                    return 200, {"code": 0, "msg": "success", "data": data}, {}
                answer = send(request)
                if answer[0] == 200 and uuid:
                    first[uuid] = answer[1]["data"]["message_id"]
                return answer

            running_bot.fake.routes[MESSAGES] = once_per_uuid
            yield running_bot
    finally:
        TokenManager.cache = saved


def crashed_after_sending(feishu: Feishu, open_id: str, claimed_ago: dt.timedelta) -> str:
    """A run claimed ``open_id``'s weekly paper ``claimed_ago``, sent it, and died before
    recording it; returns the key. (Feishu answers the repeat of a uuid only within the hour:
    the fake does it always, so a resend it records is one Feishu would have delivered.)"""
    feishu.enrol(open_id)
    bot = feishu.service.bot
    member = bot.store.get_member("feishu", open_id)
    assert member is not None
    key, entry = weekly_key(member, WEEK), bot.library.catalog.entries[0]
    claim = bot.store.claim(
        key,
        member_id=member.id,
        kind="weekly",
        week=WEEK,
        item_id=entry.id,
        title=entry.title,
        worker="dead-process",
        now=feishu.clock() - claimed_ago,
    )
    assert claim is not None
    bot.messengers["feishu"].send_dm(open_id, Reply(header=entry.title), key=key)
    return key


def test_a_claim_recovered_within_the_hour_is_sent_again_under_its_uuid(feishu: Feishu) -> None:
    key = crashed_after_sending(feishu, "ou_soon", dt.timedelta(minutes=20))
    report = feishu.service.jobs.deliver()
    assert report is not None and report.count("sent") == 1
    attempts = [c for c in feishu.fake.sends() if c["body"].get("receive_id") == "ou_soon"]
    assert [c["body"]["uuid"] for c in attempts] == [delivery_uuid(key)] * 2
    assert len(feishu.fake.to("ou_soon")) == 1  # Feishu dropped the repeat
    row = feishu.service.bot.store.get_outbox(key)
    assert row is not None and row.status == "sent"
    assert feishu.fake.to("ou_admin") == []


def test_a_claim_recovered_after_the_hour_is_not_repeated_and_admins_are_told_once(
    feishu: Feishu,
) -> None:
    key = crashed_after_sending(feishu, "ou_late", dt.timedelta(hours=2))
    report = feishu.service.jobs.deliver()
    assert report is not None and report.count("failed") == 1
    assert len(feishu.fake.to("ou_late")) == 1  # only what the crashed run sent
    row = feishu.service.bot.store.get_outbox(key)
    assert row is not None and row.status == "dead"
    assert "not sent again" in (row.last_error or "")
    [notice] = feishu.fake.to("ou_admin")
    text = html.unescape(notice["body"]["content"])
    assert "feishu:ou_late" in text and key in text
    feishu.clock.advance(hours=1)
    again = feishu.service.jobs.deliver()
    assert again is not None and again.count("failed") == 0
    assert len(feishu.fake.to("ou_late")) == 1 and len(feishu.fake.to("ou_admin")) == 1
