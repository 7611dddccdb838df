"""Client-side pacing: stay inside a platform's rate limits instead of meeting 429s."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    """Spaces out sends: a minimum interval per target (user or chat) and for the whole app."""

    def __init__(
        self,
        per_target: float,
        per_app: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_target = per_target
        self.per_app = per_app
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_app = 0.0
        self._next: dict[str, float] = {}

    def wait(self, target: str) -> float:
        """Block until a send to ``target`` is within the limits; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            at = max(now, self._next_app, self._next.get(target, 0.0))
            self._next_app = at + self.per_app
            self._next[target] = at + self.per_target
            if len(self._next) > 1024:
                self._next = {k: v for k, v in self._next.items() if v > now}
        delay = at - now
        if delay > 0:
            self._sleep(delay)
        return max(delay, 0.0)
