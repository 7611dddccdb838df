"""The built-in local platform: DMs and lab channel posts kept in the bot's own database, no chat
service needed."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable

from dcml_bot.core.reply import Reply
from dcml_bot.store import LocalMessageRecord, Store

log = logging.getLogger(__name__)

PLATFORM = "local"
LAB_CHANNEL = "lab"  # where the local store keeps posts to the lab channel
CLOCK_OFFSET = "clock_offset_seconds"


class LocalClock:
    """The local lab's clock: real time plus an offset an admin can advance (kept in the DB).

    Every process on the database (``serve``'s web lab, ``dcml-bot console``) keeps its own
    ``LocalClock``; each reads the offset again at most every ``refresh`` seconds, so a week
    advanced in one of them shows in the others too.
    """

    def __init__(
        self, store: Store, base: Callable[[], dt.datetime], *, refresh: float = 1.0
    ) -> None:
        self.store = store
        self.base = base
        self.refresh = refresh
        self._lock = threading.Lock()
        self._offset = self._saved()
        self._read_at = time.monotonic()

    def _saved(self) -> dt.timedelta:
        saved = self.store.local_get(CLOCK_OFFSET)
        return dt.timedelta(seconds=float(saved)) if saved else dt.timedelta(0)

    @property
    def offset(self) -> dt.timedelta:
        """How far the lab clock is ahead of real time."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh:
                try:
                    self._offset = self._saved()
                except Exception:  # the database is away for a moment: keep the last offset
                    log.warning("cannot read the lab clock's offset; keeping %s", self._offset)
                self._read_at = time.monotonic()
            return self._offset

    def __call__(self) -> dt.datetime:
        return self.base() + self.offset

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move the clock forward and remember it across restarts (and for other processes)."""
        with self._lock:
            # From the stored offset, so an advance made by another process is not lost.
            self._offset = self._saved() + delta
            self.store.local_set(CLOCK_OFFSET, str(self._offset.total_seconds()))
            self._read_at = time.monotonic()
        return self()


class LocalMessenger:
    """Sends DMs by storing them; at most one message per once-only key, like a real platform."""

    platform = PLATFORM
    resend_window: dt.timedelta | None = None  # find_sent looks the key up

    def __init__(self, store: Store, clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.clock = clock
        self.listeners: list[Callable[[LocalMessageRecord], None]] = []

    def send_dm(self, user_id: str, reply: Reply, *, key: str) -> str:
        """Store the DM (deduplicated on key) and tell listeners about new ones."""
        body, now = reply.model_dump_json(), self.clock()
        message_id, created = self.store.local_post(user_id, body, key=key, now=now)
        if created:
            record = LocalMessageRecord(
                id=message_id, user_id=user_id, key=key, reply=body, created_at=now, updated_at=now
            )
            for listener in self.listeners:
                listener(record)
        else:
            log.info("local platform dropped a second message for key %s", key)
        return str(message_id)

    def find_sent(self, user_id: str, key: str) -> str | None:
        """The id of the message already stored with this key."""
        found = self.store.local_find(key)
        return None if found is None else str(found)

    def post(self, channel: str, reply: Reply, *, key: str, thread: str | None = None) -> str:
        """Store a post in the lab channel (``thread``: under that post), deduplicated on key."""
        body = json.dumps({"thread": thread, "reply": reply.model_dump(mode="json")})
        message_id, created = self.store.local_post(
            channel, body, key=key, now=self.clock(), channel=LAB_CHANNEL
        )
        if not created:
            log.info("local platform dropped a second post for key %s", key)
        return str(message_id)

    def find_posted(self, channel: str, key: str, *, thread: str | None = None) -> str | None:
        """The id of the post already stored with this key."""
        return self.find_sent(channel, key)

    def lab_channel(self, channel: str) -> list[tuple[str, Reply, list[tuple[str, Reply]]]]:
        """The lab channel's posts, newest first, each with its thread (oldest first)."""
        posts: dict[str, tuple[Reply, list[tuple[str, Reply]]]] = {}
        for m in self.store.local_messages(channel, channel=LAB_CHANNEL):
            entry = json.loads(m.reply)
            reply = Reply.model_validate(entry["reply"])
            root = posts.get(str(entry.get("thread")))
            if root is not None:
                root[1].append((str(m.id), reply))
            else:
                posts[str(m.id)] = (reply, [])
        return [(mid, reply, thread) for mid, (reply, thread) in reversed(posts.items())]

    def update(self, message_id: str, reply: Reply) -> bool:
        """Rewrite a message (after a button press)."""
        return self.store.local_update(int(message_id), reply.model_dump_json(), self.clock())

    def inbox(self, user_id: str) -> list[tuple[str, Reply]]:
        """A user's DMs, oldest first, as (message id, reply)."""
        return [
            (str(m.id), Reply.model_validate_json(m.reply))
            for m in self.store.local_messages(user_id, channel="dm")
        ]

    def record_chat(self, user_id: str, said: str, reply: Reply) -> str:
        """Keep a typed command and its reply in the user's chat history (the web page's)."""
        body = json.dumps({"said": said, "reply": reply.model_dump(mode="json")})
        message_id, _ = self.store.local_post(
            user_id, body, key=None, now=self.clock(), channel="chat"
        )
        return str(message_id)

    def chat(
        self, user_id: str, *, before: int | None = None, limit: int | None = None
    ) -> list[tuple[str, str, Reply]]:
        """A user's chat history, oldest first, as (id, what they typed, the reply); ``before``
        and ``limit``: only the latest ``limit`` entries older than the entry ``before``."""
        out = []
        for m in self.store.local_messages(user_id, channel="chat", before=before, limit=limit):
            entry = json.loads(m.reply)
            out.append((str(m.id), str(entry["said"]), Reply.model_validate(entry["reply"])))
        return out
