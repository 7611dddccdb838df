"""Slack: the Bolt app (HTTP and Socket Mode), its commands, buttons and the App Home tab."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.context.ack import Ack
from slack_bolt.context.respond import Respond
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from dcml_bot.core.bot import Bot
from dcml_bot.core.home import home_reply
from dcml_bot.core.i18n import text
from dcml_bot.core.metrics import Metrics
from dcml_bot.core.reply import Reply
from dcml_bot.platforms.common.replay import REPLAYED, Replayed
from dcml_bot.platforms.common.runtime import Runtime
from dcml_bot.platforms.slack.blocks import (
    ACTION_PREFIX,
    action_name,
    render_home,
    render_message,
)
from dcml_bot.platforms.slack.identity import slack_identity
from dcml_bot.platforms.slack.inputs import SlackInputs
from dcml_bot.platforms.slack.joins import SlackJoins, display_name
from dcml_bot.platforms.slack.messenger import PLATFORM, SlackMessenger, SlackOptions
from dcml_bot.store import MemberRecord

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)

COMMAND = "/dcml"
MAX_BODY = 256 * 1024
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


class SlackPlatform(Runtime):
    """Slack's inbound side: /slack/events (or Socket Mode) into the core, replies back out."""

    name = PLATFORM

    def __init__(
        self, bot: Bot, metrics: Metrics, messenger: SlackMessenger, options: SlackOptions
    ) -> None:
        # The first call checks the token (auth.test) and connects Socket Mode when set.
        super().__init__(PLATFORM, bot, metrics, messenger)
        self.options = options
        self.messenger = messenger
        # Replies are immutable and popular queries repeat: render each distinct one once.
        self.render = functools.lru_cache(maxsize=256)(render_message)
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
        SlackJoins(bot, messenger, self.inbox, self.event, options).register(self.app)
        self.app.event("app_home_opened")(self._on_home)
        # Text boxes (a note on a paper): their buttons open modals. Before the catch-alls.
        inputs = SlackInputs(
            bot, messenger, self.background, self._member, self.event, self.replays
        )
        inputs.register(self.app)
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

    def _connect(self) -> None:
        answer = self.messenger.client.auth_test()
        log.info("slack: connected as %s in %s", answer.get("user_id"), answer.get("team_id"))
        if self.socket is not None:
            self.socket.connect()  # type: ignore[no-untyped-call]
            log.info("slack: connected over Socket Mode")

    def _disconnect(self) -> None:
        if self.socket is not None and self.first_call.connected.is_set():
            self.socket.close()  # type: ignore[no-untyped-call]

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
        self.submit(self._learn_profile, user_id)
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
            self.command("error")
            return
        if reply is None:
            ack(text=text(lang, "busy"), response_type="ephemeral")
            self.command("late")
            return
        if isinstance(reply, Replayed):
            ack()
            return
        pages = self.render(reply)
        first = pages[0]
        ack(text=first["text"], blocks=first["blocks"], response_type="ephemeral")
        if len(pages) > 1:
            self.submit(self._respond_pages, respond, pages[1:])
        self.command("ok", started)

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

    def _on_home(self, event: dict[str, Any]) -> None:
        if event.get("tab") != "home" or not event.get("user"):
            return
        self.submit(self.publish_home, str(event["user"]))

    def publish_home(self, user_id: str) -> None:
        """Publish a member's App Home: progress, next paper, and the lab table for admins."""
        member = self._member(user_id)
        view = render_home(home_reply(self.bot.commands, member))
        client = self.messenger.client
        self.messenger.call(
            "views.publish",
            lambda: client.views_publish(user_id=user_id, view=view),
        )
        self.event("app_home_opened", "published")

    def _on_other_event(self, event: dict[str, Any]) -> None:
        self.event(str(event.get("type") or "unknown"), "ignored")

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
        self.event("app_rate_limited", "acknowledged")
        return BoltResponse(status=200, body="")

    def _on_unused(self, ack: Ack, body: dict[str, Any]) -> None:
        """A shortcut, modal or options request this app does not use: acknowledged, counted."""
        ack()
        kind = str(body.get("type") or "unknown")
        log.info("slack: ignored a %s request (the bot offers none)", kind)
        self.event(kind, "ignored")

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
        self.submit(self._press, body, action, respond, slack_identity(req.headers, body))

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
        self.event("block_actions", name)
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
        self.event("block_actions", "unknown")
