"""Once-only sending (DMs and channel posts): claim a key, reconcile a recovered claim, send, then
confirm or fail."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dcml_bot.core.outbound import Messenger, SendError, Stopping
from dcml_bot.core.reply import Reply
from dcml_bot.store import Claim, MemberRecord, Store
from dcml_bot.store.base import DEFAULT_LEASE

log = logging.getLogger(__name__)

SENT, RECOVERED, FAILED, TAKEN, NO_PLATFORM, DROPPED = (
    "sent",
    "recovered",
    "failed",
    "taken",
    "no-platform",
    "dropped",
)


@dataclass(frozen=True)
class Retry:
    """When a temporary failure is tried again: after ``first``, times ``factor`` per attempt
    up to ``cap``, and never sooner than the platform's Retry-After. ``first=None``: never."""

    first: dt.timedelta | None
    factor: int = 1
    cap: dt.timedelta | None = None

    def delay(self, attempts: int, retry_after: float | None) -> dt.timedelta | None:
        """The wait before the next attempt, or None when there is none."""
        if self.first is None:
            return None
        wait: dt.timedelta = self.first * int(self.factor ** max(attempts - 1, 0))
        if self.cap is not None:
            wait = min(wait, self.cap)
        if retry_after:
            wait = max(wait, dt.timedelta(seconds=retry_after))
        return wait


NEVER = Retry(first=None)

GONE, RUNNING, ELSEWHERE, UNKNOWN = "gone", "running", "elsewhere", "unknown"


def worker_id() -> str:
    """A name for this process in the outbox ledger: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_state(holder: str) -> str:
    """What is known of a claim's holder (``host:pid``): gone, running, elsewhere or unknown."""
    host, _, pid_text = holder.rpartition(":")
    if not host or not (pid_text.isascii() and pid_text.isdigit()) or int(pid_text) <= 0:
        return UNKNOWN  # not a worker id (pids 0 and below would signal process groups)
    if host != socket.gethostname():
        return ELSEWHERE
    pid = int(pid_text)
    if pid == os.getpid():
        return RUNNING
    if os.name != "posix":
        return UNKNOWN  # on Windows os.kill(pid, 0) would terminate the process
    # Errs towards "running", never towards taking a live holder's claim: a pid reused since
    # the holder died still answers (as does a zombie not yet reaped), so that claim waits for
    # its lease as before; ProcessLookupError means no process has the pid now, and a holder
    # that no longer runs cannot be mid-send. It trusts the hostname to name one pid namespace:
    # hosts or containers sharing a hostname (and a database) would see each other's workers
    # as gone.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return GONE
    except PermissionError:
        return RUNNING  # someone else's process: it exists
    except (OverflowError, OSError):
        return UNKNOWN
    return RUNNING


def holder_gone(holder: str) -> bool:
    """Whether a claim's holder is known to have ended (a process of this host, not running)."""
    return holder_state(holder) == GONE


@dataclass(frozen=True)
class Place:
    """A channel on a platform (the lab's); with ``thread``, the thread under that message."""

    platform: str
    channel: str
    thread: str | None = None


@dataclass(frozen=True)
class Letter:
    """One once-only message: the ledger key, what the claim records about it, and where it goes:
    a DM to ``member``, or a post in ``place``."""

    key: str
    kind: str
    member: MemberRecord | None = None
    week: str | None = None
    item_id: str | None = None
    title: str | None = None
    place: Place | None = None

    def __post_init__(self) -> None:
        if (self.member is None) == (self.place is None):
            raise ValueError(f"letter {self.key}: a DM to a member or a post in a place, not both")

    @property
    def platform(self) -> str:
        """The platform it goes out on."""
        where = self.member or self.place
        assert where is not None
        return where.platform


@dataclass(frozen=True)
class Parcel:
    """What to send under a claim, and how to record that it went out (``confirm``)."""

    reply: Callable[[], Reply]
    confirm: Callable[[str], None]


# Given the claim (which may carry an item chosen by an earlier attempt), the parcel to send,
# or None when there is nothing left to send (the claim is then closed as dead).
Prepare = Callable[[Claim], "Parcel | None"]


class OnceOnly:
    """Sends each outbox key at most once through the platform's messenger."""

    def __init__(
        self,
        *,
        store: Store,
        messengers: Mapping[str, Messenger],
        worker: str,
        lease: dt.timedelta = DEFAULT_LEASE,
        holder_gone: Callable[[str], bool] | None = holder_gone,
    ) -> None:
        self.store = store
        self.messengers = messengers
        self.worker = worker
        self.lease = lease
        # A claim whose holder is known to have ended is recovered at once, not after its lease.
        self.holder_gone = holder_gone
        # Told when a member cannot be reached at all (wired to the admins' notice).
        self.on_unreachable: Callable[[MemberRecord, str], object] | None = None
        # Told when a channel cannot be posted in (the bot is not in it, or it is gone).
        self.on_channel_unreachable: Callable[[Place, str], object] | None = None
        # Told (member, kind, key) when a recovered letter is not sent again blind.
        self.on_unverified: Callable[[MemberRecord, str, str], object] | None = None

    def send(
        self,
        letter: Letter,
        now: dt.datetime,
        prepare: Prepare,
        *,
        retry: Retry = NEVER,
        dropped: str = "nothing to send",
        tell_unreachable: bool = True,
    ) -> str:
        """Claim, reconcile, send and record one letter; returns the outcome.

        ``taken`` means another worker holds the key or it is already final. Raises Stopping
        when the bot is shutting down before the message went out. A recovered claim the
        platform cannot check, first made longer ago than the platform drops repeats for
        (``resend_window``), is not sent again: ``failed``, dead, and the admins are told.
        """
        messenger = self.messengers.get(letter.platform)
        if messenger is None:
            return NO_PLATFORM
        claim = self.store.claim(
            letter.key,
            member_id=letter.member.id if letter.member is not None else None,
            channel=letter.place.channel if letter.place is not None else None,
            kind=letter.kind,
            week=letter.week,
            item_id=letter.item_id,
            title=letter.title,
            worker=self.worker,
            now=now,
            lease=self.lease,
            holder_gone=None if self.holder_gone is None else self._holder_gone,
        )
        if claim is None:
            return TAKEN
        parcel = prepare(claim)
        if parcel is None:
            # Marked as a drop, so a dead row is told apart from a member who cannot be reached.
            error = f"{DROPPED}: {dropped}"
            self.store.mark_failed(
                letter.key, worker=self.worker, error=error, retry_at=None, dead=True, now=now
            )
            return DROPPED
        if claim.recovered:
            # A claim left by a crashed run: the message may have gone out already.
            found = _find(messenger, letter)
            if found is not None:
                parcel.confirm(found)
                log.info("reconciled %s: already sent as %s", letter.key, found)
                return RECOVERED
            window = messenger.resend_window
            # Measured from the row's first claim: any attempt since may have sent it.
            if window is not None and now - claim.created_at > window:
                self._unverified(letter, claim, window, now, tell=tell_unreachable)
                return FAILED
        try:
            message_id = _deliver(messenger, letter, parcel.reply())
        except Stopping as exc:
            # Released, due at once: the next run sends it (a page already posted of a long
            # Slack DM is found and not posted again).
            self.store.mark_failed(
                letter.key, worker=self.worker, error=str(exc), retry_at=None, dead=False, now=now
            )
            raise
        except SendError as exc:
            self._failed(letter, claim, exc, retry, now, tell_unreachable=tell_unreachable)
            return FAILED
        parcel.confirm(message_id)
        return SENT

    def _unverified(
        self, letter: Letter, claim: Claim, window: dt.timedelta, now: dt.datetime, *, tell: bool
    ) -> None:
        age = int((now - claim.created_at).total_seconds() // 60)
        error = (
            f"not sent again: first tried {age} min ago, and the platform drops a repeat only "
            f"within {int(window.total_seconds() // 60)} min; it may have gone out"
        )
        self.store.mark_failed(
            letter.key, worker=self.worker, error=error, retry_at=None, dead=True, now=now
        )
        log.warning("%s for %s recovered after a crash, %s", letter.kind, letter.key, error)
        if tell and self.on_unverified is not None and letter.member is not None:
            self.on_unverified(letter.member, letter.kind, letter.key)

    def _holder_gone(self, holder: str) -> bool:
        # This worker's own claims are never orphaned, whatever its id looks like.
        return holder != self.worker and self.holder_gone is not None and self.holder_gone(holder)

    def mark_sent(self, key: str, message_id: str, now: dt.datetime) -> None:
        """The plain confirmation: the key is sent as ``message_id``."""
        self.store.mark_sent(key, worker=self.worker, platform_message_id=message_id, now=now)

    def _failed(
        self,
        letter: Letter,
        claim: Claim,
        exc: SendError,
        retry: Retry,
        now: dt.datetime,
        *,
        tell_unreachable: bool,
    ) -> None:
        delay = None if exc.permanent else retry.delay(claim.attempts, exc.retry_after)
        dead = delay is None
        self.store.mark_failed(
            letter.key,
            worker=self.worker,
            error=str(exc),
            retry_at=None if delay is None else now + delay,
            dead=dead,
            now=now,
        )
        log.warning(
            "%s for %s failed (%s): %s",
            letter.kind,
            letter.key,
            "will retry" if not dead else "permanent" if exc.permanent else "not retried",
            exc,
        )
        if not (exc.permanent and tell_unreachable):
            return
        if letter.member is not None and self.on_unreachable is not None:
            self.on_unreachable(letter.member, str(exc))
        elif letter.place is not None and self.on_channel_unreachable is not None:
            self.on_channel_unreachable(letter.place, str(exc))


def _find(messenger: Messenger, letter: Letter) -> str | None:
    """The id of the letter's message if the platform shows it went out already."""
    if letter.member is not None:
        return messenger.find_sent(letter.member.user_id, letter.key)
    assert letter.place is not None
    place = letter.place
    return messenger.find_posted(place.channel, letter.key, thread=place.thread)


def _deliver(messenger: Messenger, letter: Letter, reply: Reply) -> str:
    """Send the letter: a DM to its member, or a post in its place."""
    if letter.member is not None:
        return messenger.send_dm(letter.member.user_id, reply, key=letter.key)
    assert letter.place is not None
    place = letter.place
    return messenger.post(place.channel, reply, key=letter.key, thread=place.thread)
