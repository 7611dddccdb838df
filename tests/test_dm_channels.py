"""DM channels are kept with the members: a fan-out opens a Slack DM only for a new member.

Slack's ``conversations.open`` is Tier 3 (about 50 calls a minute); a weekly fan-out that opened
every DM again in every process spent most of its time in 429s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dcml_bot.app import build_service
from dcml_bot.core.outbound import SendError
from dcml_bot.core.reply import Reply
from dcml_bot.store import Store
from fakes.slack import DELIVERY_TIME, FakeSlack, slack_settings
from support import Clock

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "dcml-bot"
NEXT_WEEK = "2026-W50"
USERS = [f"U0DM{i:02d}" for i in range(5)]


def test_the_store_keeps_one_channel_per_member(store: Store) -> None:
    member = store.upsert_member("slack", "U1", now=DELIVERY_TIME)
    book = store.dm_channels("slack")
    assert book.get("U1") is None
    book.put("U1", "D0001")
    assert book.get("U1") == "D0001"
    assert store.dm_channels("feishu").get("U1") is None  # per platform
    assert store.get_member_by_id(member.id) is not None
    book.put("U1", None)
    assert book.get("U1") is None
    assert store.set_dm_channel("slack", "U-nobody", "D9") is False
    assert book.get("U-nobody") is None


def opens(fake: FakeSlack) -> list[str]:
    return [str(FakeSlack.args(c)["users"]) for c in fake.requests("/api/conversations.open")]


def test_no_process_opens_a_dm_channel_twice(db_url: str, tmp_path: Path) -> None:
    fake = FakeSlack().start()
    try:
        service = build_service(slack_settings(db_url, fake), clock=Clock(DELIVERY_TIME))
        try:
            store = service.bot.store
            for user in USERS:
                member = store.upsert_member("slack", user, display_name=user, now=DELIVERY_TIME)
                store.set_enrolled(member.id, True, DELIVERY_TIME)
            report = service.jobs.deliver()
            assert report is not None and report.count("sent") == len(USERS)
        finally:
            service.stop()
        assert sorted(opens(fake)) == USERS  # one open per member, this week

        # Next week, another process (a fresh `dcml-bot remind`): no DM is opened again.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.upper().startswith(("DCML_BOT_", "SLACK_", "FEISHU_"))
        }
        env.update(
            DCML_BOT_DATABASE_URL=db_url,
            DCML_BOT_SLACK_API_URL=fake.base + "/api/",
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET="test-signing-secret",
            NO_PROXY="127.0.0.1",
        )
        result = subprocess.run(
            [str(SCRIPT), "remind", "--week", NEXT_WEEK],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert sorted(opens(fake)) == USERS  # still one each
        for user in USERS:
            keys = [m["metadata"]["event_payload"]["key"] for m in fake.dms(user)]
            assert keys[-1] == f"weekly:slack:{user}:{NEXT_WEEK}" and len(keys) == 2
    finally:
        fake.stop()


def test_a_channel_slack_no_longer_knows_is_opened_again(db_url: str) -> None:
    fake = FakeSlack().start()
    try:
        service = build_service(slack_settings(db_url, fake), clock=Clock(DELIVERY_TIME))
        try:
            store = service.bot.store
            store.upsert_member("slack", "U0GONE", now=DELIVERY_TIME)
            store.set_dm_channel("slack", "U0GONE", "D0STALE")
            messenger = service.bot.messengers["slack"]
            fake.fail_post, fake.fail_channel = "channel_not_found", "D0STALE"
            with pytest.raises(SendError):
                messenger.send_dm("U0GONE", Reply(header="paper"), key="k1")
            assert store.dm_channels("slack").get("U0GONE") is None
            messenger.send_dm("U0GONE", Reply(header="paper"), key="k2")
            assert opens(fake) == ["U0GONE"]
            assert store.dm_channels("slack").get("U0GONE") == "DU0GONE"
            assert [m["metadata"]["event_payload"]["key"] for m in fake.dms("U0GONE")] == ["k2"]
        finally:
            service.stop()
    finally:
        fake.stop()
