"""Feishu joins (added to a group, a DM opened, a new user): kept in the inbox, then onboarded."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import lark_oapi as lark  # type: ignore[import-untyped]
from lark_oapi.api.contact.v3 import P2ContactUserCreatedV3  # type: ignore[import-untyped]
from lark_oapi.api.im.v1 import (  # type: ignore[import-untyped]
    P2ImChatAccessEventBotP2pChatEnteredV1,
    P2ImChatMemberUserAddedV1,
)

from dcml_bot.core.bot import Bot
from dcml_bot.core.metrics import Metrics
from dcml_bot.platforms.common.inbox import Inbox
from dcml_bot.platforms.feishu.messenger import PLATFORM, FeishuOptions, attr

log = logging.getLogger(__name__)

USER_ADDED = "im.chat.member.user.added_v1"
P2P_ENTERED = "im.chat.access_event.bot_p2p_chat_entered_v1"
USER_CREATED = "contact.user.created_v3"


def _timezone(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return value


def _joiners(payload: str) -> list[str]:
    """The open_ids a kept join is about (users added, the chat opener, or the new user)."""
    event = json.loads(payload).get("event") or {}
    found = [(user.get("user_id") or {}).get("open_id") for user in event.get("users") or []]
    found += [(event.get(key) or {}).get("open_id") for key in ("operator_id", "object")]
    return [str(open_id) for open_id in found if open_id]


def _from_payload(model: Any, work: Callable[[Any], None], payload: str) -> None:
    """Run ``work`` on an event kept as JSON, read back into its lark-oapi type."""
    work(lark.JSON.unmarshal(payload, model))


class FeishuJoins:
    """Welcomes a member added to a watched group, opening a DM, or new in the tenant."""

    def __init__(
        self,
        bot: Bot,
        metrics: Metrics,
        inbox: Inbox,
        event: Callable[[str, str], None],
        options: FeishuOptions,
    ) -> None:
        self.bot = bot
        self.metrics = metrics
        self.inbox = inbox
        self.event = event
        self.options = options
        # Chats whose new members are welcomed: the lab's groups and every direction's groups.
        self.track_groups = {chat: tuple(names) for chat, names in options.track_groups.items()}
        self.groups = {g for g in options.groups if g} | set(self.track_groups)
        for kind, model, work in (
            (USER_ADDED, P2ImChatMemberUserAddedV1, self._user_added),
            (P2P_ENTERED, P2ImChatAccessEventBotP2pChatEnteredV1, self._p2p_entered),
            (USER_CREATED, P2ContactUserCreatedV3, self._user_created),
        ):
            self.inbox.register(kind, functools.partial(_from_payload, model, work), _joiners)

    def _keep(self, kind: str, data: Any) -> None:
        """Queue a join through the inbox: kept until handled (a redelivery is only counted)."""
        self.inbox.accept(kind, attr(data, "header", "event_id"), lark.JSON.marshal(data))

    def on_user_added(self, data: Any) -> None:
        """Members added to a group: kept for onboarding."""
        self._keep(USER_ADDED, data)

    def on_p2p_entered(self, data: Any) -> None:
        """A DM with the bot opened: kept for onboarding."""
        self._keep(P2P_ENTERED, data)

    def on_user_created(self, data: Any) -> None:
        """A new user in the tenant: kept, if new users are welcomed."""
        if not self.options.welcome_new_users:
            self.event(USER_CREATED, "ignored")
            return
        self._keep(USER_CREATED, data)

    def _user_added(self, data: Any) -> None:
        event = attr(data, "event")
        chat_id = attr(event, "chat_id")
        if chat_id not in self.groups:
            self.event(USER_ADDED, "other-group")
            return
        tenant = attr(data, "header", "tenant_key")
        tracks = self.track_groups.get(str(chat_id), ())
        for user in attr(event, "users") or []:
            open_id = attr(user, "user_id", "open_id")
            if not open_id:
                continue
            if tenant and user.tenant_key and user.tenant_key != tenant:
                self.event(USER_ADDED, "external")
                continue
            self._join(USER_ADDED, str(open_id), attr(user, "name"), None, tracks)

    def _p2p_entered(self, data: Any) -> None:
        open_id = attr(data, "event", "operator_id", "open_id")
        if not open_id:
            self.event(P2P_ENTERED, "ignored")
            return
        self._join(P2P_ENTERED, str(open_id), None, None)

    def _user_created(self, data: Any) -> None:
        user = attr(data, "event", "object")
        status = attr(user, "status")
        open_id = attr(user, "open_id")
        if not open_id or any(
            attr(status, flag) for flag in ("is_frozen", "is_resigned", "is_exited")
        ):
            self.event(USER_CREATED, "ignored")
            return
        self._join(USER_CREATED, str(open_id), attr(user, "name"), attr(user, "time_zone"))

    def _join(
        self, kind: str, open_id: str, name: Any, timezone: Any, tracks: Sequence[str] = ()
    ) -> None:
        """Welcome a member once; ``tracks``: the directions of the group they were added to."""
        # The event id was recorded on arrival (the inbox): a redelivery never gets here.
        try:
            outcome = self.bot.onboarding.joined(
                PLATFORM,
                open_id,
                self.bot.clock(),
                display_name=str(name) if name else None,
                timezone=_timezone(timezone),
                tracks=tracks,
            )
        except Exception:
            # Raised on: the event stays in the inbox, which tries it again with back-off.
            self.metrics.errors.labels(f"feishu.{kind}").inc()
            raise
        self.event(kind, outcome)
        log.info("feishu: %s for %s: %s", kind, open_id, outcome)
