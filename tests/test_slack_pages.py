"""A DM longer than one Block Kit page: each page has its own once-only key, so a retry after a
failed second page never posts the first one again."""

from __future__ import annotations

from typing import Any

import pytest

from dcml_bot.app import build_service
from dcml_bot.core.outbound import SendError
from dcml_bot.core.reply import Reply, TextBlock
from dcml_bot.platforms.slack.blocks import render_message
from fakes.slack import DELIVERY_TIME, FakeSlack, slack_settings
from support import Clock

KEY = "welcome:slack:U0LONG"


class FlakySlack(FakeSlack):
    """Answers the ``fail_at``-th chat.postMessage (1-based) with a server error, once."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.posts = 0

    def _post(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.posts += 1
            failing = self.posts == self.fail_at
        if failing:
            return 200, {"ok": False, "error": "internal_error"}, {}
        return super()._post(request)


def long_reply() -> Reply:
    """Three Block Kit pages of text."""
    return Reply(blocks=tuple(TextBlock(text=f"paragraph {n}") for n in range(120)))


def keys(fake: FakeSlack, user: str) -> list[str]:
    return [m["metadata"]["event_payload"]["key"] for m in fake.dms(user)]


def test_a_retry_sends_only_the_pages_that_did_not_go_out(db_url: str) -> None:
    assert len(render_message(long_reply())) == 3
    fake = FlakySlack(fail_at=2).start()
    try:
        service = build_service(slack_settings(db_url, fake), clock=Clock(DELIVERY_TIME))
        try:
            messenger = service.bot.messengers["slack"]
            with pytest.raises(SendError):
                messenger.send_dm("U0LONG", long_reply(), key=KEY)
            assert keys(fake, "U0LONG") == [f"{KEY}#1"]
            assert messenger.find_sent("U0LONG", KEY) is None  # not all of it went out

            first = messenger.send_dm("U0LONG", long_reply(), key=KEY)
            assert keys(fake, "U0LONG") == [f"{KEY}#1", f"{KEY}#2", KEY]  # page 1 once
            assert first == f"DU0LONG/{fake.dms('U0LONG')[0]['ts']}"
            assert messenger.find_sent("U0LONG", KEY) is not None

            # A one-page DM reads no history before posting.
            before = len(fake.requests("/api/conversations.history"))
            messenger.send_dm("U0LONG", Reply(header="short"), key="weekly:short")
            assert len(fake.requests("/api/conversations.history")) == before
            assert keys(fake, "U0LONG")[-1] == "weekly:short"
        finally:
            service.stop()
    finally:
        fake.stop()
