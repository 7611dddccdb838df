"""Tracks on Slack at the wire: the picker in the welcome, a press, channel → track, queries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from dcml_bot.app import build_service, slack_options
from dcml_bot.catalog import Entry, Level
from dcml_bot.platforms.slack.blocks import check_message, check_view, escape
from dcml_bot.server import build_http_app
from dcml_bot.settings import TrackSettings
from fakes.api import running
from fakes.slack import DELIVERY_TIME, PAYLOADS, FakeSlack, Slack, slack_settings
from support import Clock

STARTER = Path(__file__).parent / "data" / "starter-guide" / "Readme.md"
PICKED = ["systems", "autoML", "dcml", "graphs"]  # the index's directions, in its order


def track_settings(db_url: str, fake: FakeSlack) -> Any:
    """The Slack test settings on the starter guide, with channels for two directions."""
    tracks = {
        "systems": TrackSettings(channels=["#sys-reading"]),
        "dcml": TrackSettings(channels=["C0DCML", "#ml-reading"]),
        "graphs": TrackSettings(channels=["ml-reading"]),
    }
    return slack_settings(db_url, fake, catalog=str(STARTER), tracks=tracks)


@pytest.fixture
def slack(db_url: str) -> Iterator[Slack]:
    fake = FakeSlack().start()
    fake.channel_names.update({"C0SYS": "sys-reading", "C0ML": "ml-reading", "C0DCML": "data"})
    clock = Clock(DELIVERY_TIME)
    service = build_service(track_settings(db_url, fake), clock=clock, schedule=False)
    try:
        with running(build_http_app(service)) as base:
            yield Slack(service, base, fake, clock)
    finally:
        fake.stop()


def press(
    slack: Slack, action_id: str, value: str, user: str, *, home: bool = False
) -> httpx.Response:
    """A signed block_actions press, on a DM message or (home) on the App Home view."""
    payload = json.loads((PAYLOADS / "slack_block_actions.json").read_text())
    payload["user"]["id"] = user
    payload["response_url"] = f"{slack.fake.base}/respond/action-{user}"
    payload["actions"][0].update(action_id=action_id, value=value)
    if home:
        payload["container"] = {"type": "view", "view_id": "V0HOME"}
        payload["view"] = {"id": "V0HOME", "type": "home", "blocks": []}
        for key in ("channel", "message"):
            payload.pop(key)
    else:
        dm = slack.fake.dms(user)[0]
        payload["channel"]["id"] = payload["container"]["channel_id"] = "D" + user
        payload["container"]["message_ts"] = payload["message"]["ts"] = dm["ts"]
    body = urlencode({"payload": json.dumps(payload)})
    return slack.post(body, "application/x-www-form-urlencoded")


def rewrites(slack: Slack, user: str) -> list[dict[str, Any]]:
    """What the bot posted to a press's response_url."""
    return [c["body"] for c in slack.fake.calls if c["path"] == f"/respond/action-{user}"]


def track_buttons(message: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The elements of each actions block holding direction buttons."""
    return [
        block["elements"]
        for block in message["blocks"]
        if block["type"] == "actions"
        and any(e["action_id"].startswith("dcml:track") for e in block["elements"])
    ]


def tracks_of(slack: Slack, user: str) -> tuple[str, ...] | None:
    member = slack.service.bot.store.get_member("slack", user)
    assert member is not None
    return member.tracks


def shown(entry: Entry, rendered: str) -> bool:
    """Whether an item's address appears in rendered Slack payloads."""
    assert entry.url
    return escape(entry.url) in rendered


def test_slack_options_map_each_channel_to_its_tracks(db_url: str) -> None:
    fake = FakeSlack()
    options = slack_options(track_settings(db_url, fake))
    assert dict(options.track_channels) == {
        "#sys-reading": ("systems",),
        "C0DCML": ("dcml",),
        "#ml-reading": ("dcml",),
        "ml-reading": ("graphs",),
    }


def test_newcomer_picks_a_direction_and_queries_read_it(slack: Slack) -> None:
    assert slack.event("team_join").status_code == 200
    slack.platform.drain()
    [welcome] = slack.fake.dms("U0NEWBIE")
    assert check_message({"text": welcome["text"], "blocks": welcome["blocks"]}) == []
    [picker] = track_buttons(welcome)
    assert [e["value"] for e in picker] == PICKED
    assert [e["action_id"] for e in picker] == [
        "dcml:track",
        "dcml:track:2",
        "dcml:track:3",
        "dcml:track:4",
    ]
    assert "AI系统方向" in picker[0]["text"]["text"]
    assert tracks_of(slack, "U0NEWBIE") is None

    systems = next(e for e in picker if e["value"] == "systems")
    assert press(slack, systems["action_id"], "systems", "U0NEWBIE").status_code == 200
    slack.platform.drain()
    assert tracks_of(slack, "U0NEWBIE") == ("systems",)
    [answer] = rewrites(slack, "U0NEWBIE")
    # Said beside the welcome, which keeps its first paper and buttons.
    assert answer["replace_original"] is False
    assert "You now read systems" in json.dumps(answer["blocks"], ensure_ascii=False)
    assert track_buttons(answer) == []
    assert check_message(answer) == []

    response = slack.command("essential")
    assert response.status_code == 200
    slack.platform.drain()
    pages = [response.json(), *slack.fake.responses()]
    assert all(check_message(page) == [] for page in pages)
    rendered = json.dumps([page["blocks"] for page in pages], ensure_ascii=False)
    catalog = slack.service.bot.library.catalog
    mine = {"common", "systems"}
    essentials = [e for e in catalog.entries if e.level_in(mine) is Level.ESSENTIAL and e.url]
    in_scope_urls = {e.url for e in catalog.entries if mine & set(e.tracks)}
    systems_only = [e for e in essentials if set(e.tracks) == {"systems"}]
    dcml_only = [
        e
        for e in catalog.entries
        if set(e.tracks) == {"dcml"} and e.url and e.url not in in_scope_urls
    ]
    assert systems_only and dcml_only
    assert any(shown(e, rendered) for e in systems_only)
    assert any(shown(e, rendered) for e in essentials if "common" in e.tracks)
    assert not [e.title for e in dcml_only if shown(e, rendered)]


def test_joining_a_track_channel_sets_the_track_and_welcomes_without_a_picker(
    slack: Slack,
) -> None:
    joins = [
        ("U0SYS", "C0SYS", "EvJ1"),  # "#sys-reading" by name
        ("U0DCML", "C0DCML", "EvJ2"),  # by id
        ("U0ML", "C0ML", "EvJ3"),  # "#ml-reading" and "ml-reading": two directions
        ("U0ELSE", "C0GENERAL", "EvJ4"),  # no direction, not a lab channel
    ]
    for user, channel, event_id in joins:
        response = slack.event(
            "member_joined_channel", user=user, channel=channel, event_id=event_id
        )
        assert response.status_code == 200
    slack.platform.drain()
    assert tracks_of(slack, "U0SYS") == ("systems",)
    assert tracks_of(slack, "U0DCML") == ("dcml",)
    assert tracks_of(slack, "U0ML") == ("dcml", "graphs")
    assert slack.fake.dms("U0ELSE") == []
    assert slack.service.bot.store.get_member("slack", "U0ELSE") is None
    for user in ("U0SYS", "U0DCML", "U0ML"):
        [welcome] = slack.fake.dms(user)
        assert check_message({"text": welcome["text"], "blocks": welcome["blocks"]}) == []
        assert track_buttons(welcome) == []
        assert "Your direction" in json.dumps(welcome["blocks"], ensure_ascii=False)


def test_a_welcomed_member_joining_a_track_channel_gets_the_track_not_a_second_welcome(
    slack: Slack,
) -> None:
    slack.event("team_join")
    slack.platform.drain()
    assert len(slack.fake.dms("U0NEWBIE")) == 1
    slack.event("member_joined_channel", user="U0NEWBIE", channel="C0SYS", event_id="EvJ5")
    slack.platform.drain()
    assert tracks_of(slack, "U0NEWBIE") == ("systems",)
    slack.event("member_joined_channel", user="U0NEWBIE", channel="C0DCML", event_id="EvJ6")
    slack.platform.drain()
    assert tracks_of(slack, "U0NEWBIE") == ("systems", "dcml")
    assert len(slack.fake.dms("U0NEWBIE")) == 1
    assert len(slack.fake.requests("/api/conversations.info")) == 2  # once per channel


def test_a_press_naming_no_direction_changes_nothing(slack: Slack) -> None:
    slack.event("member_joined_channel", user="U0SYS", channel="C0SYS", event_id="EvJ7")
    slack.platform.drain()
    assert tracks_of(slack, "U0SYS") == ("systems",)
    assert press(slack, "dcml:track:3", "no-such-direction", "U0SYS").status_code == 200
    slack.platform.drain()
    assert tracks_of(slack, "U0SYS") == ("systems",)
    [rewrite] = rewrites(slack, "U0SYS")
    answer = json.dumps(rewrite["blocks"], ensure_ascii=False)
    assert "No direction is called" in answer and "no-such-direction" in answer
    assert check_message(rewrite) == []


def test_a_numbered_press_on_app_home_sets_the_track_and_republishes_home(slack: Slack) -> None:
    response = slack.command("tracks", user="U0HOME")
    assert response.status_code == 200
    [picker] = track_buttons(response.json())
    assert check_message(response.json()) == []
    graphs = next(e for e in picker if e["value"] == "graphs")
    assert graphs["action_id"] == "dcml:track:4"
    slack.platform.drain()
    assert press(slack, graphs["action_id"], "graphs", "U0HOME", home=True).status_code == 200
    slack.platform.drain()
    assert tracks_of(slack, "U0HOME") == ("graphs",)
    assert rewrites(slack, "U0HOME") == []  # Home is published again, no message to replace
    [published] = slack.fake.requests("/api/views.publish")
    assert published["body"]["user_id"] == "U0HOME"
    view = published["body"]["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["type"] == "home" and check_view(view) == []
