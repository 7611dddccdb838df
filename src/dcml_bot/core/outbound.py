"""What the core needs from a chat platform to send direct messages and channel posts, and how
sending fails."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from dcml_bot.core.reply import Reply


class SendError(Exception):
    """Sending failed; ``permanent`` failures (user unreachable) are never retried."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Stopping(SendError):
    """The bot is shutting down: nothing was sent, and the work is left for the next start."""

    def __init__(self, message: str = "stopping: the bot is shutting down") -> None:
        super().__init__(message)


class Messenger(Protocol):
    """A platform's outgoing side, as the core sees it (implemented in ``platforms/``)."""

    platform: str
    # How long the platform itself drops a repeat of a message sent with the same key (Feishu's
    # ``uuid``: one hour), when ``find_sent`` cannot tell; None when ``find_sent`` can.
    resend_window: dt.timedelta | None

    def send_dm(self, user_id: str, reply: Reply, *, key: str) -> str:
        """Send a direct message carrying the once-only ``key``; returns the platform message id."""
        ...

    def find_sent(self, user_id: str, key: str) -> str | None:
        """The id of a message already sent with ``key``, if the platform can tell (reconcile)."""
        ...

    def post(self, channel: str, reply: Reply, *, key: str, thread: str | None = None) -> str:
        """Post in a channel (``thread``: as a reply under that message) carrying the once-only
        ``key``; returns the platform message id, which a later post can name as its thread."""
        ...

    def find_posted(self, channel: str, key: str, *, thread: str | None = None) -> str | None:
        """The id of a post already made with ``key`` in the channel (or the thread), if the
        platform can tell (reconcile)."""
        ...


class ChannelBook(Protocol):
    """Where a messenger keeps the DM channels it opened, shared by every process (the store)."""

    def get(self, user_id: str) -> str | None:
        """The channel opened before with this user, if any."""
        ...

    def put(self, user_id: str, channel: str | None) -> None:
        """Remember a channel just opened; None forgets it."""
        ...
