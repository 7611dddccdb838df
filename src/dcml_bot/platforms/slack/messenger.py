"""Slack's outbound side: DMs and channel posts through slack_sdk, paced per Slack's limits."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.web import SlackResponse

from dcml_bot.core.metrics import Metrics
from dcml_bot.core.outbound import ChannelBook, SendError
from dcml_bot.core.reply import Reply
from dcml_bot.platforms.common.pacing import Pacing, Throttled
from dcml_bot.platforms.slack.blocks import render_message

log = logging.getLogger(__name__)

PLATFORM = "slack"
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
