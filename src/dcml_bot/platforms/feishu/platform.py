"""Feishu / Lark inbound side: webhook and long connection through lark-oapi's dispatcher."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import lark_oapi as lark  # type: ignore[import-untyped]
from starlette.routing import BaseRoute, Route

from dcml_bot.core.bot import Bot
from dcml_bot.core.metrics import Metrics
from dcml_bot.core.outbound import SendError
from dcml_bot.core.reply import Reply
from dcml_bot.platforms.common.runtime import Runtime
from dcml_bot.platforms.feishu.joins import P2P_ENTERED, USER_ADDED, USER_CREATED, FeishuJoins
from dcml_bot.platforms.feishu.long_connection import KnownEventsOnly, LongConnection
from dcml_bot.platforms.feishu.messenger import (
    PLATFORM,
    BotIdentity,
    FeishuMessenger,
    FeishuOptions,
    Target,
    attr,
    delivery_uuid,
)
from dcml_bot.platforms.feishu.presses import CARD_ACTION, CardPresses
from dcml_bot.platforms.feishu.webhook import PATH, Webhook, quiet_lark_rejections

log = logging.getLogger(__name__)

MESSAGE = "im.message.receive_v1"
MENU = "application.bot.menu_v6"
# Subscribed (or commonly subscribed) but not acted on: an unregistered type makes lark-oapi
# answer 500, and Feishu then retries it for hours.
IGNORED_EVENTS = (
    "im.chat.member.bot.added_v1",
    "im.chat.member.bot.deleted_v1",
    "im.chat.member.user.deleted_v1",
    "im.chat.member.user.withdrawn_v1",
    "im.chat.disbanded_v1",
    "im.chat.updated_v1",
    "im.message.message_read_v1",
    "im.message.recalled_v1",
    "im.message.reaction.created_v1",
    "im.message.reaction.deleted_v1",
    "contact.user.updated_v3",
    "contact.user.deleted_v3",
)
HANDLED_EVENTS = (MESSAGE, MENU, USER_ADDED, P2P_ENTERED, USER_CREATED, CARD_ACTION)
# Bot menu items (event_key, set in the developer console) -> command text.
MENU_COMMANDS = {
    "next": "next",
    "progress": "progress",
    "essential": "essential",
    "help": "help",
    "topics": "topics",
    "start": "start",
    "stop": "stop",
}
# Seconds between attempts to learn the bot's open_id: the first wait, doubling up to the last.
IDENTITY_RETRY = (2.0, 300.0)
_MENU_PREFIX = re.compile(r"^dcml[_:.\-]", re.IGNORECASE)
_MENTION = re.compile(r"@_(?:user_\d+|all)\b")


def command_text(content: str | None) -> str:
    """The typed text of a ``text`` message, without ``@_user_N`` mention placeholders."""
    try:
        data = json.loads(content or "")
    except ValueError:
        return ""
    line = data.get("text") if isinstance(data, dict) else None
    if not isinstance(line, str):
        return ""
    return " ".join(_MENTION.sub(" ", line).split())


def menu_command(event_key: str | None) -> str:
    """The command a bot menu item runs; unknown keys show the help."""
    key = _MENU_PREFIX.sub("", (event_key or "").strip()).lower()
    return MENU_COMMANDS.get(key, "help")


class FeishuPlatform(Runtime):
    """Feishu's inbound side: /feishu/events (or the long connection) into the core."""

    name = PLATFORM

    def __init__(
        self, bot: Bot, metrics: Metrics, messenger: FeishuMessenger, options: FeishuOptions
    ) -> None:
        # The first call learns who the bot is; the long connection opens once it has begun.
        super().__init__(PLATFORM, bot, metrics, messenger, retry=IDENTITY_RETRY)
        self.messenger = messenger
        self.options = options
        self.mode = options.mode
        # Who the bot is: learned in the background at start (bot info API), None until then.
        self.identity: BotIdentity | None = None
        self.connection: LongConnection | None = None
        self.joins = FeishuJoins(bot, metrics, self.inbox, self.event, options)
        self.presses = CardPresses(
            bot,
            metrics,
            messenger,
            self.background,
            self.replays,
            self.event,
            self._deliver,
            options.language,
        )
        key, token = options.encrypt_key, options.verification_token
        self.encrypted = key is not None and self.mode == "webhook"
        self.verified = token is not None
        if self.mode == "websocket":
            # The long connection is authenticated at the handshake; payloads arrive in plaintext.
            self.handler = self._build_handler("", "")
        else:
            self.handler = self._build_handler(key or "", token or "")
        self.webhook = Webhook(
            self.handler, metrics, encrypted=self.encrypted, on_unknown=self._on_unknown
        )
        # A forged or unknown-type request is not worth an ERROR traceback from the SDK.
        quiet_lark_rejections()
        self._unverified_warned = False
        self._warn_lock = threading.Lock()
        if self.mode == "websocket":
            self.connection = LongConnection(
                options.app_id,
                options.app_secret,
                KnownEventsOnly(self.handler, (*HANDLED_EVENTS, *IGNORED_EVENTS), self._on_unknown),
                options.domain.rstrip("/"),
            )

    def _build_handler(self, encrypt_key: str, verification_token: str) -> Any:
        builder = (
            lark.EventDispatcherHandler.builder(encrypt_key, verification_token)
            .register_p2_im_message_receive_v1(self._on_message)
            .register_p2_application_bot_menu_v6(self._on_menu)
            .register_p2_im_chat_member_user_added_v1(self.joins.on_user_added)
            .register_p2_im_chat_access_event_bot_p2p_chat_entered_v1(self.joins.on_p2p_entered)
            .register_p2_contact_user_created_v3(self.joins.on_user_created)
            .register_p2_card_action_trigger(self.presses.on_card)
        )
        for event_type in IGNORED_EVENTS:
            register = getattr(builder, "register_p2_" + event_type.replace(".", "_"))
            builder = register(self._ignorer(event_type))
        return builder.build()

    # --- lifecycle --------------------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        """``POST /feishu/events`` for events and card callbacks (webhook mode)."""
        if self.mode != "webhook":
            return []
        if not self.verified:
            log.error(
                "feishu: webhook mode needs FEISHU_VERIFICATION_TOKEN (and FEISHU_ENCRYPT_KEY); "
                "%s is not served",
                PATH,
            )
            return []
        if not self.encrypted:
            log.warning(
                "feishu: FEISHU_ENCRYPT_KEY is not set: requests are checked by token only, "
                "without signatures or a freshness window"
            )
        return [Route(PATH, self.webhook.endpoint, methods=["POST"])]

    def _listen(self) -> None:
        if self.connection is not None:
            self.connection.start()
            log.info("feishu: connecting over the long connection")

    def _disconnect(self) -> None:
        if self.connection is not None:
            self.connection.stop()

    def wait_identity(self, timeout: float) -> bool:
        """Whether the bot's open_id is known, waiting up to ``timeout`` seconds for it."""
        return self.first_call.wait(timeout)

    def _connect(self) -> None:
        """Ask the bot info API who the bot is (retried by ``first_call`` until it answers)."""
        try:
            identity = self.messenger.identity()
        except Exception:
            self.metrics.errors.labels("feishu.bot_info").inc()
            raise
        self.identity = identity
        log.info(
            "feishu: the bot is %s (%s); group messages are answered when they @-mention it",
            identity.open_id,
            identity.app_name or "no app name",
        )

    # --- dispatch (called by lark-oapi; must return quickly and never raise) -----------------

    def _ignorer(self, event_type: str) -> Callable[[Any], None]:
        def ignore(data: Any) -> None:
            self.event(event_type, "ignored")

        return ignore

    def _on_unknown(self, event_type: str | None) -> None:
        self.event(event_type or "unknown", "ignored")
        log.debug("feishu: ignored event of type %s", event_type)

    def _enqueue(self, kind: str, data: Any, work: Callable[[Any, str | None], None]) -> None:
        event_id = attr(data, "header", "event_id")
        try:
            self.submit(self._process, kind, str(event_id) if event_id else None, work, data)
        except RuntimeError:  # the pool is shut down: we are stopping
            self.event(kind, "dropped")
            log.warning("feishu: %s %s dropped during shutdown", kind, event_id)

    def _process(
        self, kind: str, event_id: str | None, work: Callable[[Any, str | None], None], data: Any
    ) -> None:
        """Dedupe on ``header.event_id`` (Feishu redelivers for hours), then do the work."""
        if event_id and not self.bot.store.record_event(PLATFORM, event_id, self.bot.clock()):
            self.event(kind, "duplicate")
            return
        work(data, event_id)

    def _on_message(self, data: Any) -> None:
        self._enqueue(MESSAGE, data, self._message)

    def _on_menu(self, data: Any) -> None:
        self._enqueue(MENU, data, self._menu)

    # --- commands ---------------------------------------------------------------------------

    def _message(self, data: Any, event_id: str | None) -> None:
        event = attr(data, "event")
        message = attr(event, "message")
        open_id = attr(event, "sender", "sender_id", "open_id")
        if attr(event, "sender", "sender_type") != "user" or not open_id or message is None:
            self.event(MESSAGE, "ignored")
            return
        if message.chat_type != "p2p":
            not_for_me = self._not_for_me(message.mentions)
            if not_for_me is not None:
                self.event(MESSAGE, not_for_me)
                return
        if message.message_type != "text":
            self.event(MESSAGE, "not-text")
            return
        line = command_text(message.content)
        reply = self._answer(str(open_id), line)
        if reply is None:
            return
        uuid = delivery_uuid(f"reply:{event_id or message.message_id}")
        self._deliver(
            Target("reply", str(message.message_id), str(message.chat_id or open_id)), reply, uuid
        )

    def _not_for_me(self, mentions: Any) -> str | None:
        """Why a group message is not for the bot (the event's outcome), or None if it is.

        A group message is for the bot only when one of its ``mentions`` is the bot's open_id: an
        app allowed to read every group message (``im:message.group_msg``) also gets messages
        that @-mention other people and bots.

        Until the bot info API has told the open_id, group messages are ignored (and a WARNING
        says so once). Matching a mention's ``name`` against the app name instead is no
        fallback: the app name comes from the same call that failed, and a member's display
        name can equal it. DMs are answered meanwhile, and the retries usually succeed soon.
        """
        if not mentions:
            return "not-mentioned"
        identity = self.identity
        if identity is None:
            with self._warn_lock:
                warn, self._unverified_warned = not self._unverified_warned, True
            if warn:
                log.warning(
                    "feishu: the bot's open_id is not known yet, so group @-mentions cannot be "
                    "checked: group messages are ignored until it is"
                )
            return "unverified"
        if any(attr(mention, "id", "open_id") == identity.open_id for mention in mentions):
            return None
        return "ignored"

    def _menu(self, data: Any, event_id: str | None) -> None:
        event = attr(data, "event")
        open_id = attr(event, "operator", "operator_id", "open_id")
        if not open_id:
            self.event(MENU, "ignored")
            return
        name = attr(event, "operator", "operator_name")
        reply = self._answer(str(open_id), menu_command(attr(event, "event_key")), name)
        if reply is None:
            return
        uuid = delivery_uuid(f"menu:{event_id}") if event_id else None
        self._deliver(Target("open_id", str(open_id), str(open_id)), reply, uuid)

    def _answer(self, open_id: str, line: str, name: Any = None) -> Reply | None:
        started = time.perf_counter()
        try:
            member = self.bot.member(PLATFORM, open_id, display_name=str(name) if name else None)
            reply = self.bot.commands.handle(member, line)
        except Exception:
            self.command("error")
            log.exception("feishu: command from %s failed", open_id)
            return None
        self.command("ok", started)
        return reply

    def _deliver(self, target: Target, reply: Reply, uuid: str | None) -> None:
        try:
            self.messenger.send(target, reply, uuid=uuid)
        except SendError as exc:
            self.metrics.errors.labels("feishu.reply").inc()
            log.warning("feishu: reply to %s %s failed: %s", target.kind, target.id, exc)
