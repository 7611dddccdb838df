"""A chat platform's lifecycle, once: its pool, join inbox, replay guard and first call."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from dcml_bot.core.bot import Bot
from dcml_bot.core.metrics import Metrics
from dcml_bot.platforms.common.background import Background, Load
from dcml_bot.platforms.common.base import STOP_GRACE
from dcml_bot.platforms.common.first_call import FirstCall
from dcml_bot.platforms.common.inbox import Inbox
from dcml_bot.platforms.common.replay import ReplayGuard

log = logging.getLogger(__name__)

CONNECT_WAIT = 3.0  # seconds start() waits for the first call before serving without it
RETRY = (0.5, 60.0)  # the first call's first and longest wait between attempts, in seconds


class Closable(Protocol):
    """A messenger as the lifecycle sees it: ``close`` interrupts its waits."""

    def close(self) -> None:
        """Interrupt waits for the platform (they raise Stopping) and refuse new sends."""
        ...


class Runtime:
    """Builds and owns a platform's parts; starts, stops and reports them in one order.

    Slack and Feishu subclass it and override only their own steps: ``_connect`` (the first
    call, retried), ``_listen`` (after it has begun) and ``_disconnect``; the messenger's
    ``close`` comes between the disconnect and the inbox.
    """

    def __init__(
        self,
        platform: str,
        bot: Bot,
        metrics: Metrics,
        messenger: Closable,
        *,
        workers: int = 8,
        retry: tuple[float, float] = RETRY,
    ) -> None:
        self.platform = platform
        self.bot = bot
        self.metrics = metrics
        self._closable = messenger
        self.background = Background(platform, metrics, workers)
        # A join that fails is tried again while running; given up, the admins are told.
        self.inbox = Inbox(
            platform,
            bot.store,
            self.background,
            bot.clock,
            metrics,
            on_give_up=functools.partial(bot.notices.welcome_lost, platform),
        )
        # A captured command or press sent again within its signature's window: no effect.
        self.replays = ReplayGuard(platform, bot.store, bot.clock, metrics)
        first_wait, longest = retry
        self.first_call = FirstCall(
            platform, self._connect, first_wait=first_wait, max_wait=longest
        )

    def _connect(self) -> None:
        """The platform's first call, retried in the background until it answers."""

    def _listen(self) -> None:
        """What the platform opens once the first call has begun (e.g. a long connection)."""

    def _disconnect(self) -> None:
        """What the platform closes first when it stops (its own connections)."""

    def start(self, wait: float = CONNECT_WAIT) -> None:
        """Begin the first call and wait up to ``wait`` for it, listen, queue the joins the last
        run left; a first call not answered in time goes on in the background."""
        if not self.first_call.start(wait=wait):
            log.warning(
                "%s: not connected yet; serving, and retrying in the background", self.platform
            )
        self._listen()
        self.inbox.replay()

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop retrying, disconnect, close the messenger, the inbox, then the pool (``grace``)."""
        self.first_call.stop()
        self._disconnect()
        # Waits for the platform raise Stopping now, so work under way ends within the grace.
        self._closable.close()
        self.inbox.close()
        self.background.shutdown(grace)

    def health(self) -> dict[str, Any]:
        """Whether the first call has answered (``{"state": "connected"}``) or how it fails."""
        return self.first_call.health()

    def workers(self) -> Load:
        """How busy the worker pool is (for /healthz)."""
        return self.background.load()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until work queued so far on the pool has finished (tests and shutdown)."""
        self.background.drain(timeout)

    def submit(self, work: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``work(*args)`` on the pool."""
        return self.background.submit(work, *args)

    def event(self, kind: str, outcome: str) -> None:
        """Count an event of ``kind`` with its ``outcome``."""
        self.metrics.events.labels(self.platform, kind, outcome).inc()

    def command(self, outcome: str, started: float | None = None) -> None:
        """Count a command's outcome; with ``started`` (perf_counter), its seconds too."""
        self.metrics.commands.labels(self.platform, outcome).inc()
        if started is not None:
            self.metrics.command_seconds.labels(self.platform).observe(
                time.perf_counter() - started
            )
