"""Feishu / Lark outgoing side: the lark-oapi client, send pacing, DMs as cards, bot info."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Importing lark_oapi costs ~2 s: this module is imported only from build_service's Feishu branch.
import lark_oapi as lark  # type: ignore[import-untyped]
from lark_oapi.api.im.v1 import (  # type: ignore[import-untyped]
    CreateMessageRequest,
    CreateMessageRequestBody,
    PatchMessageRequest,
    PatchMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)
from lark_oapi.core.token.manager import TokenManager  # type: ignore[import-untyped]

from dcml_bot.core.metrics import Metrics
from dcml_bot.core.outbound import SendError, Stopping
from dcml_bot.core.reply import Reply
from dcml_bot.platforms.common.pacing import Pacing, Throttled
from dcml_bot.platforms.feishu.cards import dumps, render_card, render_post, render_text

log = logging.getLogger(__name__)

PLATFORM = "feishu"
# Feishu's documented limits: 5 messages/s to one user or group (fixed spacing here); per app,
# 50 calls/s for any API and 1,000 a minute for sending messages. Sends start at the per-second
# figure, which is also their ceiling (a hard documented limit: past it there are only 429s).
# Under a per-minute quota a faster start costs nothing: the minute's calls go out sooner, and
# the pause until the window resets (x-ogw-ratelimit-reset) replaces the spacing.
PER_TARGET_INTERVAL = 0.2
SEND_RATE = (50.0, 50.0)
RATES = {
    "im.message.create": SEND_RATE,
    "im.message.reply": SEND_RATE,
    "im.message.patch": SEND_RATE,
}
DEFAULT_RETRY_AFTER = 10.0
APP_LIMITED = 99991400  # the gateway's per-app limit: pauses the whole method
CHAT_LIMITED = 230020  # one user's or chat's limit: pauses that target only
RATE_LIMITED = frozenset({APP_LIMITED, CHAT_LIMITED})
# The recipient cannot be reached by this app: no retry will change that.
UNREACHABLE = frozenset(
    {
        230013,  # the user is outside the app's availability range
        230002,  # the bot is not in the chat
        230006,  # the bot ability is not enabled
        230027,  # the app lacks the permission to send
    }
)
# The cached tenant_access_token was revoked or expired early: fetch a new one and try again.
STALE_TOKEN = frozenset({99991663, 99991668})
UUID_PREFIX = "dcml-"
# Feishu sends at most one message per uuid within an hour ("uuid ... 1 小时内至多成功发送一条");
# five minutes less, for clock skew and a send still in flight when its claim was taken.
UUID_WINDOW = dt.timedelta(minutes=55)
# The bot's own identity (open_id, app name); tenant_access_token, no extra permission.
BOT_INFO = "/open-apis/bot/v3/info"


def delivery_uuid(key: str) -> str:
    """Feishu's idempotency ``uuid`` (≤ 50 chars) for a once-only delivery key."""
    return UUID_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


@dataclass(frozen=True)
class FeishuOptions:
    """What the Feishu adapter is configured with (the app builds it from the settings)."""

    app_id: str = field(repr=False)
    app_secret: str = field(repr=False)
    verification_token: str | None = field(default=None, repr=False)
    encrypt_key: str | None = field(default=None, repr=False)
    domain: str = "https://open.feishu.cn"
    mode: str = "webhook"
    groups: tuple[str, ...] = ()
    # Chat id -> the directions (tracks) its new members read; these chats welcome too.
    track_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    language: str = "zh"
    welcome_new_users: bool = False


def feishu_pacing(**options: Any) -> Pacing:
    """Feishu's Pacing with the documented rates (``options``: Pacing's keywords)."""
    return Pacing(PLATFORM, RATES, per_target=PER_TARGET_INTERVAL, **options)


def make_client(options: FeishuOptions) -> Any:
    """A lark-oapi client for the configured app and API origin."""
    return (
        lark.Client.builder()
        .app_id(options.app_id)
        .app_secret(options.app_secret)
        # lark-oapi accepts an origin only: no path, not even a trailing "/".
        .domain(options.domain.rstrip("/"))
        .timeout(10)
        .log_level(lark.LogLevel.WARNING)
        .build()
    )


@dataclass(frozen=True)
class Failure:
    """One failed API call, as far as deciding what to do next is concerned."""

    code: int | None
    message: str
    status: int | None = None
    retry_after: float | None = None

    @property
    def rate_limited(self) -> bool:
        """Throttled by the gateway or the per-chat limit."""
        return self.status == 429 or self.code in RATE_LIMITED

    @property
    def unreachable(self) -> bool:
        """The recipient cannot be reached by this app."""
        return self.code in UNREACHABLE

    @property
    def transient(self) -> bool:
        """A network or server problem: the content is not to blame."""
        return self.code is None or (self.status is not None and self.status >= 500)

    def error(self) -> SendError:
        """This failure as the core's SendError."""
        text = f"feishu: {self.code if self.code is not None else 'error'} {self.message}".strip()
        if self.rate_limited:
            return SendError(text, retry_after=self.retry_after or DEFAULT_RETRY_AFTER)
        return SendError(text, permanent=self.unreachable)


class RateLimited(Throttled):
    """A throttled Feishu call, keeping its Failure for when the pacing gives up waiting."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(
            f"feishu: {failure.code} {failure.message}",
            retry_after=failure.retry_after,
            target_only=failure.code == CHAT_LIMITED,
        )
        self.failure = failure


def attr(value: Any, *names: str) -> Any:
    """``value.a.b…``, or None as soon as a link is missing (SDK models leave fields None)."""
    for name in names:
        if value is None:
            return None
        value = getattr(value, name, None)
    return value


def _header(headers: dict[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def _failure(response: Any) -> Failure:
    raw = getattr(response, "raw", None)
    status = getattr(raw, "status_code", None)
    reset = _header(getattr(raw, "headers", None), "x-ogw-ratelimit-reset")
    try:
        retry_after = float(reset) if reset else None
    except ValueError:
        retry_after = None
    code = getattr(response, "code", None)
    return Failure(
        code=int(code) if isinstance(code, int) else -1,
        message=str(getattr(response, "msg", "") or ""),
        status=status if isinstance(status, int) else None,
        retry_after=retry_after,
    )


@dataclass(frozen=True)
class BotIdentity:
    """Who the bot is on Feishu: its ``open_id`` (what group @-mentions carry) and app name."""

    open_id: str
    app_name: str = ""


class BotInfoError(Exception):
    """The bot info API did not tell the bot's open_id (network, server, token or permission)."""


def identity_of(content: bytes | None) -> BotIdentity:
    """The BotIdentity in a bot info answer, ``{"code": 0, "bot": {"open_id", "app_name"}}``."""
    try:
        body = json.loads(content or b"")
    except ValueError as exc:  # UnicodeDecodeError included
        raise BotInfoError("feishu: bot info: the answer is not JSON") from exc
    bot = body.get("bot") if isinstance(body, dict) else None
    # The documented answer has "bot" at the top level; accept a "data" envelope too.
    if bot is None and isinstance(body, dict) and isinstance(body.get("data"), dict):
        bot = body["data"].get("bot")
    open_id = bot.get("open_id") if isinstance(bot, dict) else None
    if not isinstance(open_id, str) or not open_id:
        raise BotInfoError("feishu: bot info: the answer carries no bot.open_id")
    name = bot.get("app_name") if isinstance(bot, dict) else None
    return BotIdentity(open_id, name if isinstance(name, str) else "")


@dataclass(frozen=True)
class Target:
    """Where a message goes: a new message to a user or chat, or a reply to a message."""

    kind: str  # "open_id" or "chat_id" (create), "reply", or "thread" (a reply in its thread)
    id: str
    pace_key: str


class FeishuMessenger:
    """Sends cards (falling back to rich text, then text) by open_id or as message replies."""

    platform = PLATFORM
    # A resend with the key's uuid is dropped by Feishu only this long after the first.
    resend_window: dt.timedelta | None = UUID_WINDOW

    def __init__(
        self,
        client: Any,
        *,
        metrics: Metrics | None = None,
        pacing: Pacing | None = None,
        language: str = "zh",
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.pacing = pacing or feishu_pacing(
            on_limited=lambda method: self._count(f"feishu.rate_limited:{method}")
        )
        self.locale = "zh_cn" if language == "zh" else "en_us"

    def close(self) -> None:
        """Wake sends waiting for their turn or a pause: they raise Stopping (shutdown)."""
        self.pacing.close()

    # --- the core's Messenger protocol ------------------------------------------------------

    def send_dm(self, user_id: str, reply: Reply, *, key: str) -> str:
        """DM a user by open_id; ``uuid`` from ``key`` lets Feishu drop a resend within 1 h."""
        return self.send(Target("open_id", user_id, user_id), reply, uuid=delivery_uuid(key))

    def find_sent(self, user_id: str, key: str) -> str | None:
        """Feishu cannot look messages up by key: the message list API returns no ``uuid`` and
        nothing else of the key, so a resend is safe only within ``resend_window``."""
        return None

    def post(self, channel: str, reply: Reply, *, key: str, thread: str | None = None) -> str:
        """Post in a group by chat_id (``thread``: a reply in the thread of that message); the
        bot not in the group (230002) is a permanent failure."""
        target = (
            Target("thread", thread, channel) if thread else Target("chat_id", channel, channel)
        )
        return self.send(target, reply, uuid=delivery_uuid(key))

    def find_posted(self, channel: str, key: str, *, thread: str | None = None) -> str | None:
        """As ``find_sent``: a resend with the same ``uuid`` is dropped by Feishu instead."""
        return None

    # --- who the bot is ---------------------------------------------------------------------

    def identity(self) -> BotIdentity:
        """The bot's open_id and app name (``GET /open-apis/bot/v3/info``); BotInfoError if not.

        lark-oapi has no typed bot v3 resource: its raw ``client.request`` fetches and caches the
        tenant token as for any other call, and ``_call`` refetches a revoked one.
        """
        request = (
            lark.BaseRequest.builder()
            .http_method(lark.HttpMethod.GET)
            .uri(BOT_INFO)
            .token_types({lark.AccessTokenType.TENANT})
            .build()
        )
        try:
            response = self._call(lambda: self.client.request(request))
        except SendError as exc:
            raise BotInfoError(str(exc)) from exc
        if not response.success():
            failure = _failure(response)
            status = f"HTTP {failure.status}, " if failure.status is not None else ""
            raise BotInfoError(f"feishu: bot info: {status}code {failure.code} {failure.message}")
        return identity_of(getattr(getattr(response, "raw", None), "content", None))

    # --- replies ----------------------------------------------------------------------------

    def reply_to(self, message_id: str, chat_id: str, reply: Reply, *, uuid: str | None) -> str:
        """Answer a message in its chat (DM or group)."""
        return self.send(Target("reply", message_id, chat_id or message_id), reply, uuid=uuid)

    def update_card(self, message_id: str, card: dict[str, Any]) -> None:
        """Replace a card the bot sent (used when a button's answer missed the callback)."""
        request = (
            PatchMessageRequest.builder()
            .message_id(message_id)
            .request_body(PatchMessageRequestBody.builder().content(dumps(card)).build())
            .build()
        )
        result = self._paced("im.message.patch", lambda: self.client.im.v1.message.patch(request))
        if isinstance(result, Failure):
            raise result.error()

    def send(self, target: Target, reply: Reply, *, uuid: str | None) -> str:
        """Send the reply as a card; if the card is refused, as ``post``, then as text."""
        formats: tuple[tuple[str, Callable[[], str], str | None], ...] = (
            ("interactive", lambda: dumps(render_card(reply)), uuid),
            ("post", lambda: dumps(render_post(reply, self.locale)), _variant(uuid, "post")),
            ("text", lambda: json.dumps({"text": render_text(reply)}), _variant(uuid, "text")),
        )
        failure: Failure | None = None
        for msg_type, content, message_uuid in formats:
            result = self._attempt(target, msg_type, content(), message_uuid)
            if isinstance(result, str):
                return result
            failure = result
            if failure.rate_limited or failure.unreachable or failure.transient:
                break
            log.info(
                "feishu: %s to %s refused (%s %s); trying the next format",
                msg_type,
                target.kind,
                failure.code,
                failure.message,
            )
            self._count(f"feishu.{msg_type}_refused")
        assert failure is not None
        if failure.unreachable:
            self._count("feishu.unreachable")
            log.warning(
                "feishu: %s %s cannot be reached by this app (code %s: %s); an admin must add "
                "them to the app's availability range or the bot to the chat",
                target.kind,
                target.id,
                failure.code,
                failure.message,
            )
        elif failure.rate_limited:
            self._count("feishu.rate_limited")
        raise failure.error()

    def _attempt(
        self, target: Target, msg_type: str, content: str, uuid: str | None
    ) -> str | Failure:
        """One API call; the message id, or the Failure."""
        if target.kind in ("reply", "thread"):
            body = ReplyMessageRequestBody.builder().msg_type(msg_type).content(content)
            if uuid:
                body = body.uuid(uuid)
            if target.kind == "thread":
                body = body.reply_in_thread(True)
            request = (
                ReplyMessageRequest.builder()
                .message_id(target.id)
                .request_body(body.build())
                .build()
            )
            method = "im.message.reply"
            call: Callable[[], Any] = lambda: self.client.im.v1.message.reply(request)  # noqa: E731
        else:
            body = (
                CreateMessageRequestBody.builder()
                .receive_id(target.id)
                .msg_type(msg_type)
                .content(content)
            )
            if uuid:
                body = body.uuid(uuid)
            request = (
                CreateMessageRequest.builder()
                .receive_id_type(target.kind)
                .request_body(body.build())
                .build()
            )
            method = "im.message.create"
            call = lambda: self.client.im.v1.message.create(request)  # noqa: E731
        result = self._paced(method, call, target=target.pace_key)
        if isinstance(result, Failure):
            return result
        return str(getattr(getattr(result, "data", None), "message_id", None) or "")

    def _paced(
        self, method: str, call: Callable[[], Any], *, target: str | None = None
    ) -> Any | Failure:
        """One API call through the pacing (a throttled call waits and is made again); the
        successful response, or the Failure. Raises Stopping when the bot is shutting down."""

        def attempt() -> Any:
            response = self._call(call)
            if not response.success():
                failure = _failure(response)
                if failure.rate_limited:
                    raise RateLimited(failure)
            return response

        try:
            response = self.pacing.call(method, attempt, target=target)
        except Stopping:
            raise
        except RateLimited as exc:  # throttled for longer than the pacing waits
            return exc.failure
        except Throttled as exc:  # paused (by an earlier call) for longer than it waits
            return Failure(code=None, message=str(exc), status=429, retry_after=exc.retry_after)
        except SendError as exc:
            return Failure(code=None, message=str(exc))
        return response if response.success() else _failure(response)

    def _call(self, call: Callable[[], Any]) -> Any:
        """Run an SDK call; a stale token is dropped and the call made once more."""
        for attempt in range(2):
            try:
                response = call()
            except Exception as exc:  # network errors, token fetch failures: all retryable
                raise SendError(f"feishu: {exc.__class__.__name__}: {exc}") from exc
            if attempt == 0 and getattr(response, "code", None) in STALE_TOKEN:
                self._forget_token()
                continue
            return response
        return response

    def _forget_token(self) -> None:
        app_id = self.client._config.app_id
        # lark-oapi caches tenant tokens process-wide by app id; an expired entry is refetched.
        TokenManager.cache.set(f"self_tenant_token:{app_id}", "", 0)
        log.info("feishu: tenant access token rejected; fetching a new one")

    def _count(self, where: str) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(where).inc()


def _variant(uuid: str | None, suffix: str) -> str | None:
    """A distinct, still deterministic uuid for a fallback format of the same message."""
    if uuid is None:
        return None
    return UUID_PREFIX + hashlib.sha256(f"{uuid}:{suffix}".encode()).hexdigest()[:40]
