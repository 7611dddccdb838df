"""Work a platform does after answering a request: a thread pool that can be drained."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from dcml_bot.core.metrics import Metrics
from dcml_bot.core.outbound import Stopping

log = logging.getLogger(__name__)

# Slack and Feishu wait 3 s for an answer; what is not ready by then follows another way.
ANSWER_BUDGET = 2.0


@dataclass(frozen=True)
class Load:
    """How busy a pool is now (what /healthz reports)."""

    workers: int  # threads: tasks that can run at once
    running: int
    queued: int  # submitted, not started
    oldest: float  # seconds the longest-running task has run (0.0: none runs)
    all_busy: float  # seconds every worker has been busy: the newest task's age (0.0: one is free)

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready values."""
        return {
            "workers": self.workers,
            "running": self.running,
            "queued": self.queued,
            "oldest_running_seconds": round(self.oldest, 1),
            "all_busy_seconds": round(self.all_busy, 1),
        }


class Background:
    """A thread pool whose failures are logged and counted, and whose queue can be awaited."""

    def __init__(self, name: str, metrics: Metrics, workers: int = 8) -> None:
        self.name = name
        self.metrics = metrics
        self.workers = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._pending: set[Future[Any]] = set()
        self._replayable: set[Future[Any]] = set()
        self._started: dict[int, float] = {}  # thread id -> when its task began (monotonic)
        self._lock = threading.Lock()

    def submit(self, work: Callable[..., Any], *args: Any, replayable: bool = False) -> Future[Any]:
        """Run ``work(*args)`` on the pool. ``replayable``: the work is kept elsewhere (the
        database) and redone at the next start, so shutdown may drop it if it has not begun."""
        future = self.pool.submit(self._guarded, work, *args)
        with self._lock:
            self._pending.add(future)
            if replayable:
                self._replayable.add(future)
        future.add_done_callback(self._forget)
        return future

    def answer(
        self, later: Callable[[Future[Any]], None], work: Callable[..., Any], *args: Any
    ) -> Any | None:
        """The result of ``work(*args)`` within ANSWER_BUDGET, else None (``later`` gets it)."""
        future = self.submit(work, *args)
        try:
            return future.result(timeout=ANSWER_BUDGET)
        except FutureTimeout:
            self.submit(later, future)
            return None

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until the work queued so far (and what it queued) has finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return
            for future in pending:
                future.exception(timeout=max(deadline - time.monotonic(), 0.01))
        raise TimeoutError(f"{self.name} background work did not finish")

    def shutdown(self, grace: float = 10.0) -> int:
        """Stop: drop queued replayable work, give the rest ``grace`` seconds to finish, and
        stop the threads. Returns how many queued items were dropped (to be replayed)."""
        with self._lock:
            queued = list(self._replayable)
        dropped = sum(1 for future in queued if future.cancel())
        self.pool.shutdown(wait=False)
        try:
            self.drain(grace)
        except TimeoutError:
            with self._lock:
                left = len(self._pending)
            # Their threads finish on their own (an API call ends within its timeout); a claim
            # they hold when the process exits is taken over and reconciled at the next start.
            log.warning("%s: %d background task(s) still running at shutdown", self.name, left)
        if dropped:
            log.info("%s: %d queued task(s) left for the next start", self.name, dropped)
        return dropped

    def load(self) -> Load:
        """Workers, tasks running and queued, and how long they have been running."""
        now = time.monotonic()
        with self._lock:
            ages = sorted(now - started for started in self._started.values())
            queued = sum(1 for future in self._pending if not (future.running() or future.done()))
        busy = len(ages) >= self.workers
        return Load(
            workers=self.workers,
            running=len(ages),
            queued=queued,
            oldest=ages[-1] if ages else 0.0,
            all_busy=ages[0] if busy else 0.0,
        )

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)
            self._replayable.discard(future)

    def _guarded(self, work: Callable[..., Any], *args: Any) -> Any:
        thread = threading.get_ident()
        with self._lock:
            self._started[thread] = time.monotonic()
        try:
            return work(*args)
        except Stopping:
            log.info("%s: %s left for the next start (shutting down)", self.name, _name(work))
            raise
        except Exception:
            self.metrics.errors.labels(f"{self.name}.{_name(work)}").inc()
            log.exception("%s: background work failed", self.name)
            raise
        finally:
            with self._lock:
                del self._started[thread]


def _name(work: Callable[..., Any]) -> str:
    return str(getattr(work, "__name__", "work"))
