"""Slack: the Bolt app (HTTP and Socket Mode), DMs through slack_sdk, and the App Home tab."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.context.ack import Ack
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.web import SlackResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from dcml_bot.core.bot import Bot
from dcml_bot.core.home import home_reply
from dcml_bot.core.i18n import text
from dcml_bot.core.messages import Reply
from dcml_bot.core.metrics import Metrics
from dcml_bot.core.outbound import ChannelBook, SendError
from dcml_bot.platforms.background import Background
from dcml_bot.platforms.first_call import FirstCall
from dcml_bot.platforms.inbox import Inbox
from dcml_bot.platforms.pacing import Pacing, Throttled
from dcml_bot.platforms.replay import REPLAYED, Replayed, ReplayGuard, slack_identity
from dcml_bot.platforms.slack_blocks import (
    ACTION_PREFIX,
    action_name,
    render_home,
    render_message,
)
from dcml_bot.platforms.slack_inputs import SlackInputs
from dcml_bot.store import MemberRecord

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)

CONNECT_WAIT = 3.0  # seconds start() waits for Slack before serving without it (retrying)

PLATFORM = "slack"
COMMAND = "/dcml"
MAX_BODY = 256 * 1024
METADATA_EVENT = "dcml_message"
# Errors that no retry will fix: the user cannot be reached by this app.
PERMANENT_ERRORS = frozenset(
    {
        "user_not_found",
        "users_not_found",
        "user_disabled",
        "account_inactive",
        "cannot_dm_bot",
        "channel_not_found",
        "not_in_channel",  # the lab channel's digest: the bot must be invited first
        "is_archived",
        "messages_tab_disabled",
        "restricted_action",
        "not_allowed_token_type",
        "invalid_auth",
        "not_authed",
        "missing_scope",
        "invalid_blocks",
        "msg_too_long",
    }
)
# What config/slack-manifest.yaml must grant and subscribe to (a test keeps them in step).
BOT_EVENTS = ("team_join", "member_joined_channel", "app_home_opened")
BOT_SCOPES = (
    "commands",
    "chat:write",
    "im:write",
    "im:history",
    "users:read",
    "channels:read",
    "groups:read",
    "channels:history",
    "groups:history",
)
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{6,}$")
# Slack's limits (docs.slack.dev "Rate limits"; platforms.md §5) are per method and workspace.
# chat.postMessage: about 1 message/s per channel (kept as fixed spacing), under a workspace cap
# of "several hundred per minute" with bursts; tiers: Tier 3 50+/min, Tier 4 100+/min. Each
# method starts at its documented figure and learns the real one from 429s (pacing.py). The "+"
# and the unpublished workspace cap mean the ceiling cannot come from the docs: it only bounds
# how far slow start overshoots, above what one process sends (bench: ~100 calls/s reached).
PER_CHANNEL_INTERVAL = 1.0
CEILING = 200.0
RATES = {
    # Its workspace cap is not published ("several hundred per minute"): start at 50/s, since
    # a first 429 costs one Retry-After pause while climbing from 5/s would take seconds.
    "chat.postMessage": (50.0, CEILING),
    "conversations.open": (50 / 60, CEILING),  # Tier 3
    "conversations.history": (50 / 60, CEILING),  # Tier 3
    "conversations.replies": (50 / 60, CEILING),  # Tier 3
    "users.info": (100 / 60, CEILING),  # Tier 4
}


class QuietForgeries(logging.Filter):
    """Drops Bolt's line for a request with a bad signature, which carries the whole body."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for Bolt's "Invalid request signature detected" records."""
        return not str(record.msg).startswith("Invalid request signature")


def quiet_bolt_forgeries() -> None:
    """Install QuietForgeries on Bolt's request verification logger once per process."""
    logger = logging.getLogger("slack_bolt.RequestVerification")
    if not any(isinstance(f, QuietForgeries) for f in logger.filters):
        logger.addFilter(QuietForgeries())


@dataclass(frozen=True)
class SlackOptions:
    """What the Slack adapter is configured with (the app builds it from the settings)."""

    bot_token: str = field(repr=False)
    signing_secret: str | None = field(default=None, repr=False)
    app_token: str | None = field(default=None, repr=False)
    api_url: str = "https://slack.com/api/"
    channels: tuple[str, ...] = ()
    # Channel (id, or name with or without "#") → the tracks its joiners read.
    track_channels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    language: str = "en"


def make_client(options: SlackOptions) -> WebClient:
    """A Web API client that retries connection errors and 5xx; 429s are SlackMessenger's."""
    return WebClient(
        token=options.bot_token,
        base_url=options.api_url,
        timeout=10,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def slack_pacing(**options: Any) -> Pacing:
    """Slack's Pacing with the documented starting rates (``options``: Pacing's keywords)."""
    return Pacing(PLATFORM, RATES, per_target=PER_CHANNEL_INTERVAL, **options)


def rate_limited(exc: SlackApiError) -> bool:
    """Whether Slack refused the call for now (HTTP 429 or ``ratelimited``): nothing was done."""
    return bool(exc.response.status_code == 429 or exc.response.get("error") == "ratelimited")


def retry_after(exc: SlackApiError) -> float | None:
    """The seconds in a 429's ``Retry-After`` header, if any."""
    value = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
    return float(value) if isinstance(value, str) and value.isdigit() else None


def send_error(exc: SlackClientError) -> SendError:
    """A Slack failure as the core's SendError (permanent, or retryable after a delay)."""
    if isinstance(exc, SlackApiError):
        error = str(exc.response.get("error", "unknown_error"))
        if rate_limited(exc):
            return SendError(f"slack: {error}", retry_after=retry_after(exc) or 30.0)
        return SendError(f"slack: {error}", permanent=error in PERMANENT_ERRORS)
    return SendError(f"slack: {exc.__class__.__name__}: {exc}")


class SlackMessenger:
    """Sends DMs (``conversations.open`` + ``chat.postMessage``) tagged with their once-only key.

    Every Web API call it makes goes through ``pacing``: a rate per method learned from Slack's
    429s (all calls of a method pause for ``Retry-After``, and the refused call is made again),
    and one message per ``PER_CHANNEL_INTERVAL`` per channel.
    """

    platform = PLATFORM
    # find_sent reads the key back from the message's metadata: no window to keep to.
    resend_window: dt.timedelta | None = None

    def __init__(
        self,
        client: WebClient,
        *,
        pacing: Pacing | None = None,
        channels: ChannelBook | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.pacing = pacing or slack_pacing(on_limited=self._limited)
        self.book = channels
        self._channels: dict[str, str] = {}
        self._lock = threading.Lock()

    def call(
        self, method: str, call: Callable[[], SlackResponse], *, target: str | None = None
    ) -> SlackResponse:
        """A Web API call paced for ``method`` (and ``target``); a 429 is waited out and retried,
        up to the pacing's bound, then raised as SendError(retry_after)."""

        def attempt() -> SlackResponse:
            try:
                return call()
            except SlackApiError as exc:
                if rate_limited(exc):
                    raise Throttled(
                        f"slack: ratelimited ({method})", retry_after=retry_after(exc)
                    ) from exc
                raise

        return self.pacing.call(method, attempt, target=target)

    def close(self) -> None:
        """Wake calls waiting for their turn or a pause: they raise Stopping (shutdown)."""
        self.pacing.close()

    def _limited(self, method: str) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(f"slack.rate_limited:{method}").inc()

    def channel(self, user_id: str) -> str:
        """The DM channel with a user: from memory, else the book (any process opened it before),
        else ``conversations.open`` (Tier 3: about 50 a minute), remembered in both."""
        with self._lock:
            known = self._channels.get(user_id)
        if known is None and self.book is not None:
            known = self.book.get(user_id)
        if known is None:
            response = self.call(
                "conversations.open", lambda: self.client.conversations_open(users=user_id)
            )
            known = str(response["channel"]["id"])
            if self.book is not None:
                self.book.put(user_id, known)
        with self._lock:
            self._channels[user_id] = known
        return known

    def forget(self, user_id: str) -> None:
        """Drop a DM channel Slack no longer knows; the next send opens a new one."""
        with self._lock:
            self._channels.pop(user_id, None)
        if self.book is not None:
            self.book.put(user_id, None)

    def send_dm(self, user_id: str, reply: Reply, *, key: str) -> str:
        """Post the reply in the DM channel (see ``_pages``); ``channel/ts`` of its first page."""
        try:
            return self._pages(self.channel(user_id), reply, key)
        except SlackClientError as exc:
            if isinstance(exc, SlackApiError) and exc.response.get("error") == "channel_not_found":
                self.forget(user_id)
            raise send_error(exc) from exc

    def post(self, channel: str, reply: Reply, *, key: str, thread: str | None = None) -> str:
        """Post the reply in a channel the bot is in (``thread``: a ``channel/ts`` or ``ts`` to
        reply under); returns ``channel/ts`` of its first message. Not in the channel
        (``not_in_channel``), or no such channel: a permanent failure."""
        try:
            return self._pages(channel, reply, key, thread=_ts(thread))
        except SlackClientError as exc:
            raise send_error(exc) from exc

    def _pages(self, channel: str, reply: Reply, key: str, *, thread: str | None = None) -> str:
        """Post the reply (one message per Block Kit page); ``channel/ts`` of the first.

        Each page carries its own key (``key#1``, ``key#2`` …; the last page ``key`` itself, so
        ``find_sent(key)`` means "all of it went out"). A multi-page reply first reads back which
        pages an earlier, failed attempt posted and sends only the others.
        """
        pages = render_message(reply)
        keys = [f"{key}#{n}" for n in range(1, len(pages))] + [key]
        posted = self._posted(channel, thread) if len(pages) > 1 else {}
        sent: list[str] = []
        for message, page_key in zip(pages, keys, strict=True):
            if page_key in posted:
                sent.append(posted[page_key])
                continue
            response = self.call(
                "chat.postMessage",
                functools.partial(
                    self.client.chat_postMessage,
                    channel=channel,
                    text=message["text"],
                    blocks=message["blocks"],
                    thread_ts=thread,
                    # Slack keeps this with the message: find_sent reads it after a crash.
                    metadata={"event_type": METADATA_EVENT, "event_payload": {"key": page_key}},
                    unfurl_links=False,
                    unfurl_media=False,
                ),
                target=channel,
            )
            sent.append(f"{channel}/{response['ts']}")
        return sent[0]

    def find_sent(self, user_id: str, key: str) -> str | None:
        """Look for a message carrying ``key`` among the latest in the DM channel."""
        try:
            return self._posted(self.channel(user_id)).get(key)
        except SlackClientError as exc:
            raise send_error(exc) from exc

    def find_posted(self, channel: str, key: str, *, thread: str | None = None) -> str | None:
        """Look for a post carrying ``key`` among the latest in the channel (or the thread);
        without the history scopes the bot cannot tell, and says so (None)."""
        try:
            return self._posted(channel, _ts(thread)).get(key)
        except SlackApiError as exc:
            if exc.response.get("error") == "missing_scope":
                log.warning("slack: cannot read %s back (add channels:history)", channel)
                return None
            raise send_error(exc) from exc
        except SlackClientError as exc:
            raise send_error(exc) from exc

    def _posted(self, channel: str, thread: str | None = None) -> dict[str, str]:
        """The once-only keys of the latest 100 messages in a channel (or of a thread's
        replies), to ``channel/ts``."""
        if thread is None:
            response = self.call(
                "conversations.history",
                lambda: self.client.conversations_history(
                    channel=channel, include_all_metadata=True, limit=100
                ),
            )
        else:
            response = self.call(
                "conversations.replies",
                lambda: self.client.conversations_replies(
                    channel=channel, ts=thread, include_all_metadata=True, limit=100
                ),
            )
        posted: dict[str, str] = {}
        for message in response.get("messages") or []:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if isinstance(payload.get("key"), str):
                posted.setdefault(payload["key"], f"{channel}/{message['ts']}")
        return posted

    def profile(self, user_id: str) -> dict[str, Any]:
        """The user object from ``users.info``."""
        response = self.call("users.info", lambda: self.client.users_info(user=user_id))
        user: dict[str, Any] = response["user"]
        return user


def _ts(message: str | None) -> str | None:
    """The ``ts`` of a message id this messenger returned (``channel/ts``), or of a bare ts."""
    return None if message is None else message.rpartition("/")[2]


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


class SlackPlatform:
    """Slack's inbound side: /slack/events (or Socket Mode) into the core, replies back out."""

    name = PLATFORM

    def __init__(
        self,
        bot: Bot,
        metrics: Metrics,
        messenger: SlackMessenger,
        options: SlackOptions,
        *,
        workers: int = 8,
    ) -> None:
        self.options = options
        self.bot = bot
        self.metrics = metrics
        self.messenger = messenger
        # Replies are immutable and popular queries repeat: render each distinct one once.
        self.render = functools.lru_cache(maxsize=256)(render_message)
        self.channels = {c for c in options.channels if c}
        self.track_channels = {c: tuple(t) for c, t in options.track_channels.items() if c and t}
        self._channel_names: dict[str, str] = {}
        self.background = Background("slack", metrics, workers)
        # A join that fails (users.info down) is tried again while running, then given up.
        self.inbox = Inbox(
            PLATFORM,
            bot.store,
            self.background,
            bot.clock,
            metrics,
            on_give_up=functools.partial(bot.notices.welcome_lost, PLATFORM),
        )
        self.inbox.register("team_join", self._team_join, _joiner)
        self.inbox.register("member_joined_channel", self._channel_joined, _joiner)
        # A captured command or press sent again within its signature's 5 minutes: no effect.
        self.replays = ReplayGuard(PLATFORM, bot.store, bot.clock, metrics)
        secret = options.signing_secret
        self.app = App(
            # The name Bolt would derive from its caller's file; without it Bolt calls
            # inspect.stack(), which reads the source of every frame (≈ 30 ms at start-up).
            name="slack.py",
            client=messenger.client,
            signing_secret=secret,
            request_verification_enabled=secret is not None,
            # The listener answers inline (fast, and deterministic); slow work goes to the pool.
            process_before_response=True,
            logger=logging.getLogger("dcml_bot.platforms.slack.bolt"),
            # auth.test runs in start(), retried in the background: Slack down must not stop serve.
            token_verification_enabled=False,
        )
        # Bolt logs a forged request's whole body at INFO; endpoint() logs one line without it.
        quiet_bolt_forgeries()
        self.app.command(COMMAND)(self._on_command)
        self.app.event("team_join")(self._on_team_join)
        self.app.event("member_joined_channel")(self._on_member_joined_channel)
        self.app.event("app_home_opened")(self._on_home)
        # Text boxes (a note on a paper): their buttons open modals. Before the catch-alls.
        SlackInputs(
            bot, messenger, self.background, self._member, self._event, self.replays
        ).register(self.app)
        self.app.action(re.compile("^" + re.escape(ACTION_PREFIX)))(self._on_action)
        self.app.action(re.compile(".*"))(self._on_unknown_action)
        self.app.event(re.compile(".*"))(self._on_other_event)
        # Slack disables the event subscriptions of an app that fails 5 % of deliveries in an
        # hour: what the bot does not use is acknowledged too (a log line and a metric each).
        self.app.use(self._on_app_rate_limited)
        self.app.shortcut(re.compile(".*"))(self._on_unused)
        self.app.view(re.compile(".*"))(self._on_unused)
        self.app.view_closed(re.compile(".*"))(self._on_unused)
        self.app.options(re.compile(".*"))(self._on_unused)
        self.first_call = FirstCall(PLATFORM, self._connect)
        self.socket: SocketModeHandler | None = None
        if options.app_token is not None:
            # Imported only for Socket Mode: the websocket client costs ≈ 35 ms at start-up.
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            self.socket = SocketModeHandler(self.app, app_token=options.app_token)

    # --- lifecycle --------------------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        """``POST /slack/events`` for commands, events and interactivity (HTTP mode)."""
        if self.options.signing_secret is None:
            return []
        return [Route("/slack/events", self.endpoint, methods=["POST"])]

    def start(self) -> None:
        """Check the token (``auth.test``) and connect Socket Mode when an app token is set, in
        the background until Slack answers; wait a moment so a reachable Slack is ready at once."""
        if not self.first_call.start(wait=CONNECT_WAIT):
            log.warning("slack: not connected yet; serving, and retrying in the background")
        self.inbox.replay()

    def _connect(self) -> None:
        answer = self.messenger.client.auth_test()
        log.info("slack: connected as %s in %s", answer.get("user_id"), answer.get("team_id"))
        if self.socket is not None:
            self.socket.connect()  # type: ignore[no-untyped-call]
            log.info("slack: connected over Socket Mode")

    def health(self) -> dict[str, Any]:
        """Whether the first call (auth.test, Socket Mode) has answered."""
        return self.first_call.health()

    def stop(self, grace: float = 10.0) -> None:
        """Stop connecting, close Socket Mode, interrupt waits for Slack, and give work under
        way ``grace`` seconds; queued joins are left to the next start (the inbox)."""
        self.first_call.stop()
        if self.socket is not None and self.first_call.connected.is_set():
            self.socket.close()  # type: ignore[no-untyped-call]
        self.messenger.close()
        self.inbox.close()
        self.background.shutdown(grace)

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until background work queued so far has finished (tests and shutdown)."""
        self.background.drain(timeout)

    def _submit(self, work: Callable[..., Any], *args: Any) -> Future[Any]:
        return self.background.submit(work, *args)

    # --- HTTP -------------------------------------------------------------------------------

    async def endpoint(self, request: Request) -> Response:
        """Translate the HTTP request for Bolt and Bolt's answer back (raw body: signatures)."""
        body = await request.body()
        if len(body) > MAX_BODY:
            self.metrics.rejected.labels(PLATFORM, "too_large").inc()
            return PlainTextResponse("request body too large", status_code=413)
        try:
            bolt_request = BoltRequest(
                body=body.decode("utf-8"),
                query=request.url.query,
                headers={key: value for key, value in request.headers.items()},
            )
        except Exception as exc:  # undecodable or unparsable body: the sender's fault
            self.metrics.rejected.labels(PLATFORM, "malformed").inc()
            log.info("slack: malformed request refused: %s", exc.__class__.__name__)
            return PlainTextResponse("malformed request", status_code=400)
        response = await run_in_threadpool(self.app.dispatch, bolt_request)
        if response.status == 401:
            self.metrics.rejected.labels(PLATFORM, "signature").inc()
            log.info(
                "slack: refused POST %r with 401: bad or stale signature (%d bytes)",
                request.url.path,
                len(body),
            )
        headers = {
            k: v for k, v in response.first_headers().items() if k.lower() != "content-length"
        }
        return Response(content=response.body, status_code=response.status, headers=headers)

    # --- commands ---------------------------------------------------------------------------

    def _answer(self, user_id: str, line: str, identity: str | None = None) -> Reply | Replayed:
        # Checked here, on the pool, so a slow database still lets the ack go within 3 s;
        # only commands that change something are (a replayed query is only answered again).
        if identity is not None and not self.replays.first(identity, "slash command"):
            return REPLAYED
        member = self._member(user_id)
        return self.bot.commands.handle(member, line)

    def _member(self, user_id: str) -> MemberRecord:
        """The member for a Slack user; on first contact, their name and time zone follow."""
        known = self.bot.store.get_member(PLATFORM, user_id)
        if known is not None:
            return known
        member = self.bot.store.upsert_member(PLATFORM, user_id, now=self.bot.clock())
        self._submit(self._learn_profile, user_id)
        return member

    def _learn_profile(self, user_id: str) -> None:
        user = self.messenger.profile(user_id)
        tz = user.get("tz")
        self.bot.store.upsert_member(
            PLATFORM,
            user_id,
            display_name=display_name(user),
            timezone=tz if isinstance(tz, str) else None,
            now=self.bot.clock(),
        )

    def _on_command(
        self, ack: Ack, body: dict[str, Any], respond: Respond, req: BoltRequest
    ) -> None:
        started = time.perf_counter()
        user_id = str(body.get("user_id") or "")
        lang = self.options.language
        if not user_id:
            ack(text=text(lang, "failed"))
            return
        line = str(body.get("text") or "")
        changes = self.bot.commands.changes(line)
        try:
            reply = self.background.answer(
                functools.partial(self._respond_late, respond, lang=lang),
                self._answer,
                user_id,
                line,
                slack_identity(req.headers, body) if changes else None,
            )
        except Exception:
            ack(text=text(lang, "failed"), response_type="ephemeral")
            self.metrics.commands.labels(PLATFORM, "error").inc()
            return
        if reply is None:
            ack(text=text(lang, "busy"), response_type="ephemeral")
            self.metrics.commands.labels(PLATFORM, "late").inc()
            return
        if isinstance(reply, Replayed):
            ack()
            return
        pages = self.render(reply)
        first = pages[0]
        ack(text=first["text"], blocks=first["blocks"], response_type="ephemeral")
        if len(pages) > 1:
            self._submit(self._respond_pages, respond, pages[1:])
        self.metrics.commands.labels(PLATFORM, "ok").inc()
        self.metrics.command_seconds.labels(PLATFORM).observe(time.perf_counter() - started)

    def _respond_pages(self, respond: Respond, pages: list[dict[str, Any]]) -> None:
        for page in pages:
            respond(text=page["text"], blocks=page["blocks"], response_type="ephemeral")

    def _respond_late(self, respond: Respond, future: Future[Any], *, lang: str) -> None:
        try:
            reply = future.result()
        except Exception:
            respond(text=text(lang, "failed"), response_type="ephemeral")
            return
        if not isinstance(reply, Replayed):
            self._respond_pages(respond, render_message(reply))

    # --- events -----------------------------------------------------------------------------

    def _event(self, kind: str, outcome: str) -> None:
        self.metrics.events.labels(PLATFORM, kind, outcome).inc()

    def _on_team_join(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        user = event.get("user") or {}
        if not isinstance(user, dict) or not user.get("id") or not is_person(user):
            self._event("team_join", "ignored")
            return
        self.inbox.accept("team_join", body.get("event_id"), json.dumps(user))

    def _team_join(self, payload: str) -> None:
        user = json.loads(payload)
        self._join("team_join", str(user["id"]), display_name(user), user.get("tz"))

    def _on_member_joined_channel(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        user_id, channel = event.get("user"), event.get("channel")
        if not user_id or not channel:
            self._event("member_joined_channel", "ignored")
            return
        joined = {"user": user_id, "channel": channel}
        self.inbox.accept("member_joined_channel", body.get("event_id"), json.dumps(joined))

    def _channel_joined(self, payload: str) -> None:
        joined = json.loads(payload)
        self._channel_join(str(joined["user"]), str(joined["channel"]))

    def _channel_join(self, user_id: str, channel: str) -> None:
        tracks = self._channel_tracks(channel)
        if not tracks and not self._matching(channel, self.channels):
            self._event("member_joined_channel", "other-channel")
            return
        user = self.messenger.profile(user_id)
        if not is_person(user):
            self._event("member_joined_channel", "ignored")
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
        self._event(kind, outcome)
        log.info("slack: %s for %s: %s", kind, user_id, outcome)

    def _on_home(self, event: dict[str, Any]) -> None:
        if event.get("tab") != "home" or not event.get("user"):
            return
        self._submit(self.publish_home, str(event["user"]))

    def publish_home(self, user_id: str) -> None:
        """Publish a member's App Home: progress, next paper, and the lab table for admins."""
        member = self._member(user_id)
        view = render_home(home_reply(self.bot.commands, member))
        client = self.messenger.client
        self.messenger.call(
            "views.publish",
            lambda: client.views_publish(user_id=user_id, view=view),
        )
        self._event("app_home_opened", "published")

    def _on_other_event(self, event: dict[str, Any]) -> None:
        self._event(str(event.get("type") or "unknown"), "ignored")

    def _on_app_rate_limited(
        self, body: dict[str, Any], next: Callable[[], None]
    ) -> BoltResponse | None:
        """``app_rate_limited`` (Events API only, no inner event): say which minute, ack it."""
        if body.get("type") != "app_rate_limited":
            next()
            return None
        minute = body.get("minute_rate_limited")
        try:
            stamp = dt.datetime.fromtimestamp(int(str(minute)), dt.UTC)
            since = stamp.strftime("%Y-%m-%d %H:%M UTC")
        except (ValueError, OverflowError, OSError):
            since = "an unknown minute"
        log.warning(
            "slack: Slack is dropping this app's events for team %s since %s (over 30,000 "
            "events an hour); they are not redelivered",
            body.get("team_id"),
            since,
        )
        self._event("app_rate_limited", "acknowledged")
        return BoltResponse(status=200, body="")

    def _on_unused(self, ack: Ack, body: dict[str, Any]) -> None:
        """A shortcut, modal or options request this app does not use: acknowledged, counted."""
        ack()
        kind = str(body.get("type") or "unknown")
        log.info("slack: ignored a %s request (the bot offers none)", kind)
        self._event(kind, "ignored")

    # --- buttons ----------------------------------------------------------------------------

    def _on_action(
        self,
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        req: BoltRequest,
    ) -> None:
        ack()
        self._submit(self._press, body, action, respond, slack_identity(req.headers, body))

    def _press(
        self,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        identity: str | None = None,
    ) -> None:
        if identity is not None and not self.replays.first(identity, "button press"):
            return
        user = body.get("user") or {}
        member = self._member(str(user["id"]))
        name = action_name(str(action.get("action_id", "")))
        reply = self.bot.commands.press(member, name, str(action.get("value") or ""))
        self._event("block_actions", name)
        container = body.get("container") or {}
        if container.get("type") == "view":
            self.publish_home(member.user_id)
            return
        page = render_message(reply)[0]
        # Replace the message the button was on, so it shows the choice and loses its buttons
        # (unless the answer goes beside it: a direction picked on the welcome).
        respond(text=page["text"], blocks=page["blocks"], replace_original=reply.replaces)

    def _on_unknown_action(self, ack: Ack, action: dict[str, Any]) -> None:
        ack()
        log.info("slack: ignored unknown action %r", action.get("action_id"))
        self._event("block_actions", "unknown")
