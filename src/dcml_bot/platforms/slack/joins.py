"""Slack joins (``team_join``, ``member_joined_channel``): kept in the inbox, then onboarded."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from slack_bolt import App

from dcml_bot.core.bot import Bot
from dcml_bot.platforms.common.inbox import Inbox
from dcml_bot.platforms.slack.messenger import PLATFORM, SlackMessenger, SlackOptions

log = logging.getLogger(__name__)

_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{6,}$")


def _joiner(payload: str) -> list[str]:
    """The user a kept join is about: a ``team_join`` user object, or ``{"user", "channel"}``."""
    data = json.loads(payload)
    user = data.get("id") or data.get("user")
    return [str(user)] if user else []


def is_person(user: dict[str, Any]) -> bool:
    """Full members only: no bots, guests (restricted), deleted users or Slackbot."""
    return not (
        user.get("is_bot")
        or user.get("is_app_user")
        or user.get("is_restricted")
        or user.get("is_ultra_restricted")
        or user.get("deleted")
        or user.get("id") == "USLACKBOT"
    )


def display_name(user: dict[str, Any]) -> str | None:
    """The name people see, falling back to the real name and the handle."""
    profile = user.get("profile") or {}
    for name in (profile.get("display_name"), profile.get("real_name"), user.get("real_name")):
        if name:
            return str(name)
    name = user.get("name")
    return str(name) if name else None


class SlackJoins:
    """Welcomes a person who joins the workspace or a configured channel (tracks by channel)."""

    def __init__(
        self,
        bot: Bot,
        messenger: SlackMessenger,
        inbox: Inbox,
        event: Callable[[str, str], None],
        options: SlackOptions,
    ) -> None:
        self.bot = bot
        self.messenger = messenger
        self.inbox = inbox
        self.event = event
        self.channels = {c for c in options.channels if c}
        self.track_channels = {c: tuple(t) for c, t in options.track_channels.items() if c and t}
        self._channel_names: dict[str, str] = {}

    def register(self, app: App) -> None:
        """The join events' listeners on ``app``, and their handlers on the inbox."""
        self.inbox.register("team_join", self._team_join, _joiner)
        self.inbox.register("member_joined_channel", self._channel_joined, _joiner)
        app.event("team_join")(self._on_team_join)
        app.event("member_joined_channel")(self._on_member_joined_channel)

    def _on_team_join(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        user = event.get("user") or {}
        if not isinstance(user, dict) or not user.get("id") or not is_person(user):
            self.event("team_join", "ignored")
            return
        self.inbox.accept("team_join", body.get("event_id"), json.dumps(user))

    def _team_join(self, payload: str) -> None:
        user = json.loads(payload)
        self._join("team_join", str(user["id"]), display_name(user), user.get("tz"))

    def _on_member_joined_channel(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        user_id, channel = event.get("user"), event.get("channel")
        if not user_id or not channel:
            self.event("member_joined_channel", "ignored")
            return
        joined = {"user": user_id, "channel": channel}
        self.inbox.accept("member_joined_channel", body.get("event_id"), json.dumps(joined))

    def _channel_joined(self, payload: str) -> None:
        joined = json.loads(payload)
        self._channel_join(str(joined["user"]), str(joined["channel"]))

    def _channel_join(self, user_id: str, channel: str) -> None:
        tracks = self._channel_tracks(channel)
        if not tracks and not self._matching(channel, self.channels):
            self.event("member_joined_channel", "other-channel")
            return
        user = self.messenger.profile(user_id)
        if not is_person(user):
            self.event("member_joined_channel", "ignored")
            return
        self._join(
            "member_joined_channel", user_id, display_name(user), user.get("tz"), tracks=tracks
        )

    def _channel_tracks(self, channel: str) -> list[str]:
        """The tracks of every ``[tracks.X] channels`` entry naming this channel, in order."""
        found = self._matching(channel, self.track_channels)
        return list(dict.fromkeys(t for entry in found for t in self.track_channels[entry]))

    def _matching(self, channel: str, configured: Iterable[str]) -> list[str]:
        """The configured entries (channel ids, or names with or without "#") naming channel.

        Slack is asked a channel's name (once per channel) only when some entry is a name.
        """
        entries = list(configured)
        found = [c for c in entries if c == channel]
        names = [c for c in entries if c != channel and not _CHANNEL_ID.match(c)]
        if names:
            name = self._channel_name(channel)
            found += [c for c in names if c.lstrip("#") == name]
        return found

    def _channel_name(self, channel: str) -> str:
        name = self._channel_names.get(channel)
        if name is None:
            client = self.messenger.client
            info = self.messenger.call(
                "conversations.info", lambda: client.conversations_info(channel=channel)
            )
            name = str(info["channel"].get("name") or "")
            self._channel_names[channel] = name
        return name

    def _join(
        self,
        kind: str,
        user_id: str,
        name: str | None,
        timezone: Any,
        *,
        tracks: Sequence[str] = (),
    ) -> None:
        # The event id was recorded on arrival (the inbox): a redelivery never gets here.
        outcome = self.bot.onboarding.joined(
            PLATFORM,
            user_id,
            self.bot.clock(),
            display_name=name,
            timezone=timezone if isinstance(timezone, str) else None,
            tracks=tracks,
        )
        self.event(kind, outcome)
        log.info("slack: %s for %s: %s", kind, user_id, outcome)
