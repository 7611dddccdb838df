"""Feishu / Lark inbound side: webhook and long connection through lark-oapi's dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import lark_oapi as lark  # type: ignore[import-untyped]
import lark_oapi.ws.client as lark_ws_client  # type: ignore[import-untyped]
from lark_oapi.api.contact.v3 import P2ContactUserCreatedV3  # type: ignore[import-untyped]
from lark_oapi.api.im.v1 import (  # type: ignore[import-untyped]
    P2ImChatAccessEventBotP2pChatEnteredV1,
    P2ImChatMemberUserAddedV1,
)
from lark_oapi.core.model import RawRequest  # type: ignore[import-untyped]
from lark_oapi.event.callback.model.p2_card_action_trigger import (  # type: ignore[import-untyped]
    P2CardActionTriggerResponse,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dcml_bot.catalog import entry_ref
from dcml_bot.core.bot import Bot
from dcml_bot.core.commands import Submitted
from dcml_bot.core.i18n import text
from dcml_bot.core.messages import Reply, TextBlock
from dcml_bot.core.metrics import Metrics
from dcml_bot.core.outbound import SendError
from dcml_bot.platforms.background import Background
from dcml_bot.platforms.feishu import (
    PLATFORM,
    BotIdentity,
    FeishuMessenger,
    FeishuOptions,
    Target,
    delivery_uuid,
)
from dcml_bot.platforms.feishu_cards import action_of, render_card
from dcml_bot.platforms.feishu_forms import form_of, form_ref
from dcml_bot.platforms.first_call import FirstCall
from dcml_bot.platforms.inbox import Inbox
from dcml_bot.platforms.replay import REPLAYED, Replayed, ReplayGuard

log = logging.getLogger(__name__)

PATH = "/feishu/events"
MAX_BODY = 256 * 1024
# lark-oapi enforces no replay window; Slack's 5 minutes is the model.
FRESHNESS = 300
TIMESTAMP, NONCE, SIGNATURE = (
    "X-Lark-Request-Timestamp",
    "X-Lark-Request-Nonce",
    "X-Lark-Signature",
)
# lark-oapi looks these up case-sensitively; ASGI servers hand them over in lower case.
CANONICAL_HEADERS = {
    name.lower(): name
    for name in (TIMESTAMP, NONCE, SIGNATURE, "X-Request-Id", "X-Tt-Logid", "Content-Type")
}
AUTH_FAILURES = {
    "signature verification failed": "signature",
    "invalid verification_token": "token",
    "encrypt_key not found": "undecryptable",
    "webhook credentials provider failed": "token",
}
MESSAGE = "im.message.receive_v1"
MENU = "application.bot.menu_v6"
USER_ADDED = "im.chat.member.user.added_v1"
P2P_ENTERED = "im.chat.access_event.bot_p2p_chat_entered_v1"
USER_CREATED = "contact.user.created_v3"
CARD_ACTION = "card.action.trigger"
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
CONNECT_WAIT = 3.0  # seconds start() waits for the bot info API before serving without it
_MENU_PREFIX = re.compile(r"^dcml[_:.\-]", re.IGNORECASE)
_MENTION = re.compile(r"@_(?:user_\d+|all)\b")
_UNREGISTERED = re.compile(r"processor not found, type: ([\w.\-]+)")


class QuietRejections(logging.Filter):
    """Drops lark-oapi's ERROR traceback for requests it refuses: we count and log them."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the dispatcher's "handle event failed" records."""
        return not str(record.msg).startswith("handle event failed")


def quiet_lark_rejections() -> None:
    """Install QuietRejections on lark-oapi's logger once per process."""
    logger = logging.getLogger("Lark")
    if not any(isinstance(f, QuietRejections) for f in logger.filters):
        logger.addFilter(QuietRejections())


def _attr(value: Any, *names: str) -> Any:
    """``value.a.b…``, or None as soon as a link is missing (SDK models leave fields None)."""
    for name in names:
        if value is None:
            return None
        value = getattr(value, name, None)
    return value


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


def canonical_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request headers with the names lark-oapi expects (it reads them case-sensitively)."""
    return {CANONICAL_HEADERS.get(name.lower(), name): value for name, value in headers}


def is_fresh(stamp: str, now: float) -> bool:
    """Whether a request timestamp (unix seconds) is within FRESHNESS of now."""
    try:
        value = int(stamp.strip())
    except ValueError:
        return False
    return abs(now - value) <= FRESHNESS


def event_type_of(payload: Mapping[str, Any]) -> str | None:
    """The type of a v2 event (``header.event_type``) or v1 event (``event.type``)."""
    header = payload.get("header")
    if isinstance(header, dict) and isinstance(header.get("event_type"), str):
        return str(header["event_type"])
    event = payload.get("event")
    if isinstance(event, dict) and isinstance(event.get("type"), str):
        return "p1:" + str(event["type"])
    return None


def _timezone(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return value


def _toast(reply: Reply) -> str:
    for block in reply.blocks:
        if isinstance(block, TextBlock) and block.text.strip():
            return block.text.strip()[:200]
    return reply.header or "✓"


class KnownEventsOnly:
    """What the long connection dispatches to: events of types nobody registered are acked."""

    def __init__(
        self, handler: Any, known: Iterable[str], on_unknown: Callable[[str | None], None]
    ) -> None:
        self.handler = handler
        self.known = frozenset(known)
        self.on_unknown = on_unknown

    def _do_without_validation(self, payload: bytes) -> Any:
        """lark-oapi's entry point for long-connection frames (plaintext, already authenticated)."""
        try:
            data = json.loads(payload)
        except ValueError:
            data = None
        event_type = event_type_of(data) if isinstance(data, dict) else None
        if event_type not in self.known:
            self.on_unknown(event_type)
            return None
        return self.handler._do_without_validation(payload)


class LongConnection:
    """lark-oapi's WebSocket client, on a daemon thread with an event loop of its own."""

    def __init__(self, app_id: str, app_secret: str, handler: Any, domain: str) -> None:
        self.app_id = app_id
        self._secret = app_secret
        self.handler = handler
        self.domain = domain
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._ready = threading.Event()
        self._stopping = threading.Event()

    def start(self) -> None:
        """Connect in the background; never blocks the caller."""
        self._thread = threading.Thread(target=self._run, name="feishu-ws", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # The SDK drives a module-level loop captured at import time (platforms.md §11): give it
        # this thread's, so it never touches a loop someone else is running.
        lark_ws_client.loop = loop
        self._loop = loop
        try:
            self._client = lark.ws.Client(
                self.app_id,
                self._secret,
                event_handler=self.handler,
                domain=self.domain,
                log_level=lark.LogLevel.WARNING,
            )
            self._ready.set()
            if not self._stopping.is_set():
                self._client.start()
        except Exception:
            if not self._stopping.is_set():
                log.exception("feishu: the long connection ended")
        finally:
            self._ready.set()
            self._close(loop)

    def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        client = self._client
        try:
            # Cancel the receive and ping loops first: closing under a live receive loop makes
            # the SDK log the close as an error and leave a failed task behind.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            gathered = asyncio.gather(*tasks, return_exceptions=True)
            loop.run_until_complete(asyncio.wait_for(gathered, 2))
            if client is not None:
                loop.run_until_complete(asyncio.wait_for(client._disconnect(), 2))
        except Exception as exc:
            log.debug("feishu: closing the long connection: %s", exc)
        finally:
            loop.close()

    def is_alive(self) -> bool:
        """Whether the connection's thread is still running."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """End the connection; gives up waiting after ``timeout`` (the thread is a daemon)."""
        self._stopping.set()
        if self._thread is None:
            return
        self._ready.wait(timeout)
        if self._client is not None:
            self._client._auto_reconnect = False
        loop = self._loop
        if loop is not None:
            # Already closed means the thread is finishing anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("feishu: the long connection did not stop within %.0f s", timeout)


class FeishuPlatform:
    """Feishu's inbound side: /feishu/events (or the long connection) into the core."""

    name = PLATFORM

    def __init__(
        self,
        bot: Bot,
        metrics: Metrics,
        messenger: FeishuMessenger,
        options: FeishuOptions,
        *,
        workers: int = 8,
    ) -> None:
        self.options = options
        self.bot = bot
        self.metrics = metrics
        self.messenger = messenger
        self.mode = options.mode
        # Chats whose new members are welcomed: the lab's groups and every direction's groups.
        self.track_groups = {chat: tuple(names) for chat, names in options.track_groups.items()}
        self.groups = {g for g in options.groups if g} | set(self.track_groups)
        self.background = Background("feishu", metrics, workers)
        # Joins are kept from arrival until handled: a restart replays what shutdown left.
        self.inbox = Inbox(
            PLATFORM,
            bot.store,
            self.background,
            bot.clock,
            metrics,
            on_give_up=functools.partial(bot.notices.welcome_lost, PLATFORM),
        )
        for kind, model, work in (
            (USER_ADDED, P2ImChatMemberUserAddedV1, self._user_added),
            (P2P_ENTERED, P2ImChatAccessEventBotP2pChatEnteredV1, self._p2p_entered),
            (USER_CREATED, P2ContactUserCreatedV3, self._user_created),
        ):
            self.inbox.register(kind, functools.partial(_from_payload, model, work), _joiners)
        # A card press sent again within the 5-minute window: answered, without effect.
        self.replays = ReplayGuard(PLATFORM, bot.store, bot.clock, metrics)
        key, token = options.encrypt_key, options.verification_token
        self.encrypted = key is not None and self.mode == "webhook"
        self.verified = token is not None
        if self.mode == "websocket":
            # The long connection is authenticated at the handshake; payloads arrive in plaintext.
            self.handler = self._build_handler("", "")
        else:
            self.handler = self._build_handler(key or "", token or "")
        # A forged or unknown-type request is not worth an ERROR traceback from the SDK.
        quiet_lark_rejections()
        # Who the bot is: learned in the background at start (bot info API), None until then.
        self.identity: BotIdentity | None = None
        first_wait, longest = IDENTITY_RETRY
        self.first_call = FirstCall(
            PLATFORM, self._identify, first_wait=first_wait, max_wait=longest
        )
        self._unverified_warned = False
        self._warn_lock = threading.Lock()
        self.connection: LongConnection | None = None
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
            .register_p2_im_chat_member_user_added_v1(self._on_user_added)
            .register_p2_im_chat_access_event_bot_p2p_chat_entered_v1(self._on_p2p_entered)
            .register_p2_contact_user_created_v3(self._on_user_created)
            .register_p2_card_action_trigger(self._on_card)
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
        return [Route(PATH, self.endpoint, methods=["POST"])]

    def start(self) -> None:
        """Learn the bot's open_id (in the background until the bot info API answers; a moment
        is waited for it); open the long connection in websocket mode. Until the open_id is
        known, group messages are ignored."""
        if not self.first_call.start(wait=CONNECT_WAIT):
            log.warning("feishu: the bot info API has not answered yet; retrying in the background")
        if self.connection is not None:
            self.connection.start()
            log.info("feishu: connecting over the long connection")
        self.inbox.replay()

    def stop(self, grace: float = 10.0) -> None:
        """Stop learning the bot's open_id, close the long connection, interrupt waits for
        Feishu and give work under way ``grace`` seconds; queued joins are left to the next
        start (the inbox)."""
        self.first_call.stop()
        if self.connection is not None:
            self.connection.stop()
        self.messenger.close()
        self.inbox.close()
        self.background.shutdown(grace)

    def wait_identity(self, timeout: float) -> bool:
        """Whether the bot's open_id is known, waiting up to ``timeout`` seconds for it."""
        return self.first_call.wait(timeout)

    def health(self) -> dict[str, Any]:
        """``{"state": "connected"}`` once the bot knows its open_id (its first API call)."""
        return self.first_call.health()

    def _identify(self) -> None:
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

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until background work queued so far has finished (tests and shutdown)."""
        self.background.drain(timeout)

    def _submit(self, work: Callable[..., Any], *args: Any) -> Future[Any]:
        return self.background.submit(work, *args)

    # --- HTTP -------------------------------------------------------------------------------

    def _reject(self, reason: str, status: int, message: str) -> Response:
        self.metrics.rejected.labels(PLATFORM, reason).inc()
        log.info("feishu: request refused (%s)", reason)
        return JSONResponse({"msg": message}, status_code=status)

    async def endpoint(self, request: Request) -> Response:
        """Check size, JSON and freshness; lark-oapi decrypts and verifies; answer in time."""
        body = await request.body()
        if len(body) > MAX_BODY:
            return self._reject("too_large", 413, "request body too large")
        try:
            parsed = json.loads(body)
        except ValueError:  # UnicodeDecodeError included
            return self._reject("malformed", 400, "malformed request")
        if not isinstance(parsed, dict):
            return self._reject("malformed", 400, "malformed request")
        headers = canonical_headers(request.headers.items())
        signed = all(headers.get(name) for name in (TIMESTAMP, NONCE, SIGNATURE))
        stamp = headers.get(TIMESTAMP)
        if stamp is not None and not is_fresh(stamp, time.time()):
            return self._reject("stale", 401, "stale request")
        raw = RawRequest()
        raw.uri = PATH
        raw.body = body
        raw.headers = headers
        answer = await run_in_threadpool(self.handler.do, raw)
        return self._translate(answer, signed=signed)

    def _translate(self, answer: Any, *, signed: bool) -> Response:
        """lark-oapi answers every failure with 500; tell the sender's faults apart."""
        content = bytes(answer.content or b"")
        if answer.status_code == 200:
            return Response(content, status_code=200, media_type="application/json")
        message = content.decode("utf-8", "replace")
        # Only reached after the token and signature checks passed.
        found = _UNREGISTERED.search(message)
        if found:
            self._on_unknown(found.group(1))
            return JSONResponse({"msg": "ignored"})
        if self.encrypted and not signed:
            return self._reject("unsigned", 401, "missing signature")
        for needle, reason in AUTH_FAILURES.items():
            if needle in message:
                return self._reject(reason, 401, "unauthorized")
        return self._reject("undecryptable", 400, "undecryptable request")

    # --- dispatch (called by lark-oapi; must return quickly and never raise) -----------------

    def _event(self, kind: str, outcome: str) -> None:
        self.metrics.events.labels(PLATFORM, kind, outcome).inc()

    def _ignorer(self, event_type: str) -> Callable[[Any], None]:
        def ignore(data: Any) -> None:
            self._event(event_type, "ignored")

        return ignore

    def _on_unknown(self, event_type: str | None) -> None:
        self._event(event_type or "unknown", "ignored")
        log.debug("feishu: ignored event of type %s", event_type)

    def _enqueue(self, kind: str, data: Any, work: Callable[[Any, str | None], None]) -> None:
        event_id = _attr(data, "header", "event_id")
        try:
            self._submit(self._process, kind, str(event_id) if event_id else None, work, data)
        except RuntimeError:  # the pool is shut down: we are stopping
            self._event(kind, "dropped")
            log.warning("feishu: %s %s dropped during shutdown", kind, event_id)

    def _process(
        self, kind: str, event_id: str | None, work: Callable[[Any, str | None], None], data: Any
    ) -> None:
        """Dedupe on ``header.event_id`` (Feishu redelivers for hours), then do the work."""
        if event_id and not self.bot.store.record_event(PLATFORM, event_id, self.bot.clock()):
            self._event(kind, "duplicate")
            return
        work(data, event_id)

    def _on_message(self, data: Any) -> None:
        self._enqueue(MESSAGE, data, self._message)

    def _on_menu(self, data: Any) -> None:
        self._enqueue(MENU, data, self._menu)

    def _keep(self, kind: str, data: Any) -> None:
        """Queue a join through the inbox: kept until handled (a redelivery is only counted)."""
        self.inbox.accept(kind, _attr(data, "header", "event_id"), lark.JSON.marshal(data))

    def _on_user_added(self, data: Any) -> None:
        self._keep(USER_ADDED, data)

    def _on_p2p_entered(self, data: Any) -> None:
        self._keep(P2P_ENTERED, data)

    def _on_user_created(self, data: Any) -> None:
        if not self.options.welcome_new_users:
            self._event(USER_CREATED, "ignored")
            return
        self._keep(USER_CREATED, data)

    # --- commands ---------------------------------------------------------------------------

    def _message(self, data: Any, event_id: str | None) -> None:
        event = _attr(data, "event")
        message = _attr(event, "message")
        open_id = _attr(event, "sender", "sender_id", "open_id")
        if _attr(event, "sender", "sender_type") != "user" or not open_id or message is None:
            self._event(MESSAGE, "ignored")
            return
        if message.chat_type != "p2p":
            not_for_me = self._not_for_me(message.mentions)
            if not_for_me is not None:
                self._event(MESSAGE, not_for_me)
                return
        if message.message_type != "text":
            self._event(MESSAGE, "not-text")
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
        if any(_attr(mention, "id", "open_id") == identity.open_id for mention in mentions):
            return None
        return "ignored"

    def _menu(self, data: Any, event_id: str | None) -> None:
        event = _attr(data, "event")
        open_id = _attr(event, "operator", "operator_id", "open_id")
        if not open_id:
            self._event(MENU, "ignored")
            return
        name = _attr(event, "operator", "operator_name")
        reply = self._answer(str(open_id), menu_command(_attr(event, "event_key")), name)
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
            self.metrics.commands.labels(PLATFORM, "error").inc()
            log.exception("feishu: command from %s failed", open_id)
            return None
        self.metrics.commands.labels(PLATFORM, "ok").inc()
        self.metrics.command_seconds.labels(PLATFORM).observe(time.perf_counter() - started)
        return reply

    def _deliver(self, target: Target, reply: Reply, uuid: str | None) -> None:
        try:
            self.messenger.send(target, reply, uuid=uuid)
        except SendError as exc:
            self.metrics.errors.labels("feishu.reply").inc()
            log.warning("feishu: reply to %s %s failed: %s", target.kind, target.id, exc)

    # --- onboarding -------------------------------------------------------------------------

    def _user_added(self, data: Any) -> None:
        event = _attr(data, "event")
        chat_id = _attr(event, "chat_id")
        if chat_id not in self.groups:
            self._event(USER_ADDED, "other-group")
            return
        tenant = _attr(data, "header", "tenant_key")
        tracks = self.track_groups.get(str(chat_id), ())
        for user in _attr(event, "users") or []:
            open_id = _attr(user, "user_id", "open_id")
            if not open_id:
                continue
            if tenant and user.tenant_key and user.tenant_key != tenant:
                self._event(USER_ADDED, "external")
                continue
            self._join(USER_ADDED, str(open_id), _attr(user, "name"), None, tracks)

    def _p2p_entered(self, data: Any) -> None:
        open_id = _attr(data, "event", "operator_id", "open_id")
        if not open_id:
            self._event(P2P_ENTERED, "ignored")
            return
        self._join(P2P_ENTERED, str(open_id), None, None)

    def _user_created(self, data: Any) -> None:
        user = _attr(data, "event", "object")
        status = _attr(user, "status")
        open_id = _attr(user, "open_id")
        if not open_id or any(
            _attr(status, flag) for flag in ("is_frozen", "is_resigned", "is_exited")
        ):
            self._event(USER_CREATED, "ignored")
            return
        self._join(USER_CREATED, str(open_id), _attr(user, "name"), _attr(user, "time_zone"))

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
        self._event(kind, outcome)
        log.info("feishu: %s for %s: %s", kind, open_id, outcome)

    # --- card buttons -----------------------------------------------------------------------

    def _on_card(self, data: Any) -> Any:
        """Record the press and answer with the updated card (the answer is the update)."""
        lang = self.options.language
        try:
            return self._card_answer(data, lang)
        except Exception:
            self.metrics.errors.labels("feishu.card").inc()
            log.exception("feishu: card action failed")
            return P2CardActionTriggerResponse(
                {"toast": {"type": "error", "content": text(lang, "failed")}}
            )

    def _card_answer(self, data: Any, lang: str) -> Any:
        event = _attr(data, "event")
        open_id = _attr(event, "operator", "open_id")
        form = form_of(_attr(event, "action", "name"), _attr(event, "action", "form_value"))
        if open_id and form is not None:
            return self._form_answer(data, str(open_id), form, lang)
        parsed = action_of(_attr(event, "action", "value"))
        if not open_id or parsed is None:
            self._event(CARD_ACTION, "unknown")
            return P2CardActionTriggerResponse({})
        action, value = parsed
        # Each press has its own event id (and card action token); a replay carries the same.
        press = _attr(data, "header", "event_id") or _attr(event, "token")
        message_id = _attr(event, "context", "open_message_id")
        reply = self.background.answer(
            functools.partial(self._update_late, message_id=message_id),
            self._press,
            str(open_id),
            action,
            value,
            str(press) if press else None,
        )
        if isinstance(reply, Replayed):
            self._event(CARD_ACTION, "replayed")
            return P2CardActionTriggerResponse({})
        if reply is None:
            self._event(CARD_ACTION, "late")
            return P2CardActionTriggerResponse(
                {"toast": {"type": "info", "content": text(lang, "busy")}}
            )
        self._event(CARD_ACTION, action)
        answer: dict[str, Any] = {"toast": {"type": "success", "content": _toast(reply)}}
        if reply.replaces:
            answer["card"] = {"type": "raw", "data": render_card(reply)}
        return P2CardActionTriggerResponse(answer)

    def _press(
        self, open_id: str, action: str, value: str, press: str | None = None
    ) -> Reply | Replayed:
        # Checked here, on the pool, so a slow database still lets the answer go within 3 s.
        if press is not None and not self.replays.first(f"card:{press}", f"card press ({action})"):
            return REPLAYED
        member = self.bot.member(PLATFORM, open_id)
        return self.bot.commands.press(member, action, value)

    # --- card forms (a note on a paper) --------------------------------------------------------

    def _form_answer(self, data: Any, open_id: str, form: tuple[str, str, str], lang: str) -> Any:
        """A text box submitted: saved once (a redelivery is ignored); a refusal is a toast and
        leaves the card, and the text typed, as they were; success replaces the card."""
        action, ref, typed = form
        event_id = _attr(data, "header", "event_id")
        store = self.bot.store
        if event_id and not store.record_event(PLATFORM, str(event_id), self.bot.clock()):
            self._event(CARD_ACTION, "duplicate")
            return P2CardActionTriggerResponse({})
        message_id = _attr(data, "event", "context", "open_message_id")
        submitted = self.background.answer(
            functools.partial(self._form_late, open_id=open_id, message_id=message_id),
            self._submit_form,
            open_id,
            action,
            self._form_value(ref),
            typed,
        )
        if submitted is None:
            self._event(CARD_ACTION, "late")
            return P2CardActionTriggerResponse(
                {"toast": {"type": "info", "content": text(lang, "busy")}}
            )
        if submitted.error is not None:
            self._event(CARD_ACTION, f"{action}-refused")
            return P2CardActionTriggerResponse(
                {"toast": {"type": "error", "content": submitted.error[:200]}}
            )
        self._event(CARD_ACTION, action)
        reply = submitted.reply
        return P2CardActionTriggerResponse(
            {
                "toast": {"type": "success", "content": _toast(reply)},
                "card": {"type": "raw", "data": render_card(reply)},
            }
        )

    def _form_value(self, ref: str) -> str:
        """The paper a form's button name stands for (``form_ref`` of its reference), or ""."""
        catalog = self.bot.library.catalog
        refs = catalog.memo(
            "feishu.form-refs",
            lambda: {form_ref(entry_ref(e.id)): entry_ref(e.id) for e in catalog.entries},
        )
        return refs.get(ref, "")

    def _submit_form(self, open_id: str, action: str, value: str, typed: str) -> Submitted:
        member = self.bot.member(PLATFORM, open_id)
        return self.bot.commands.submit(member, action, value, typed)

    def _form_late(self, future: Future[Any], *, open_id: str, message_id: Any) -> None:
        submitted: Submitted = future.result()
        if submitted.error is None and message_id:
            self.messenger.update_card(str(message_id), render_card(submitted.reply))
        else:
            self._deliver(Target("open_id", open_id, open_id), submitted.reply, None)

    def _update_late(self, future: Future[Any], *, message_id: Any) -> None:
        reply = future.result()
        if message_id and not isinstance(reply, Replayed) and reply.replaces:
            self.messenger.update_card(str(message_id), render_card(reply))


def _joiners(payload: str) -> list[str]:
    """The open_ids a kept join is about (users added, the chat opener, or the new user)."""
    event = json.loads(payload).get("event") or {}
    found = [(user.get("user_id") or {}).get("open_id") for user in event.get("users") or []]
    found += [(event.get(key) or {}).get("open_id") for key in ("operator_id", "object")]
    return [str(open_id) for open_id in found if open_id]


def _from_payload(model: Any, work: Callable[[Any], None], payload: str) -> None:
    """Run ``work`` on an event kept as JSON, read back into its lark-oapi type."""
    work(lark.JSON.unmarshal(payload, model))
