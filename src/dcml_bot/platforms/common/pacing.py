"""Client-side pacing learned from the server's answers: a rate per API method, spacing per target.

Each method's rate is learned with HTTP 429 as the lost packet: TCP's slow start until the first
429, then a cruise under the rate the server let through, raised by rare small probes (as BBR
and CUBIC probe for bandwidth) and, after a probe's 429, back to the cruise that held. A 429
pauses every call of its method for the server's Retry-After, and the call that met it is made
again after the pause (a 429 means nothing was done), up to ``max_throttled`` seconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type

from dcml_bot.core.outbound import SendError, Stopping

log = logging.getLogger(__name__)

T = TypeVar("T")

# Slow start adds this many calls/s per call that had to wait for the rate: one such call per
# 1/rate seconds, so the rate doubles about every second (ln 2 ≈ 0.7), like TCP's per round trip.
SLOW_START_STEP = 0.7
# The decrease on a 429 that a probe does not explain (slow start's end, or a limit that fell):
# of the rate the server let through in the last WINDOW (as TCP Westwood sets ssthresh from
# measured bandwidth), not of the nominal rate, since slow start can overshoot the limit 1.5x
# before the burst allowance runs out and the first 429 comes.
DECREASE = 0.9
# Above the limit, every 429 costs a whole Retry-After (whole seconds, at least 1) in which the
# server refills only its burst allowance: against 100 calls/s with a burst of 10 (0.1 s), one
# 429 idles 0.9 s of calls. TCP's +1 %/s congestion avoidance finds the limit again every ~10 s
# and then decreases 10 %, so it pays that pause over and over. Instead the rate cruises where it
# held and probes rarely: after PROBE_EVERY seconds without a 429 the rate that held becomes the
# cruise and the rate steps PROBE_GAIN above it. A step that holds PROBE_EVERY seconds was at most
# PROBE_GAIN x PROBE_EVERY (8 %) of a second's calls past the limit: only a burst allowance larger
# than that hides it, and then its 429 comes later, at the cruise (below).
PROBE_GAIN = 0.02
PROBE_EVERY = 4.0
# A probe's 429 sends the rate back to the cruise and doubles the wait before the next probe (a
# step that holds halves it again): at the limit, at most one 429 per PROBE_MAX seconds.
PROBE_MAX = 60.0
# A call that starts late by up to this many calls' intervals (its caller was busy: the database,
# another thread, a CPU shared with others) keeps the schedule, so the next calls make the delay
# up instead of losing it for good. Later than that (an idle method) the schedule starts afresh:
# calls are never more than a few intervals early, well inside a burst allowance.
CATCH_UP = 3.0
FLOOR = 1 / 60  # calls/s: never slower than one a minute
# Both platforms send the pause with their 429s; without it, a second is what a per-chat or
# per-channel limit (1-5 a second) needs.
DEFAULT_PAUSE = 1.0
# A call waits at most this long in all for pauses; then SendError(retry_after) to the outbox.
MAX_THROTTLED = 600.0
MAX_TARGETS = 4096
WINDOW = 1.0  # seconds of successful calls that measure the rate the server let through
MIN_SPAN = 0.25  # a shorter measure, or one of fewer calls, is noise: the nominal rate is used
MIN_CALLS = 5
# A method idle this long slow-starts again from its rate (a weekly fan-out): the server's limit
# may have risen since, and congestion avoidance alone would take minutes to find it.
IDLE_RESTART = 300.0


class Throttled(SendError):
    """The server refused a call for now (HTTP 429 or its own code); nothing was done."""

    def __init__(self, message: str, *, retry_after: float | None, target_only: bool = False):
        super().__init__(message, retry_after=DEFAULT_PAUSE if retry_after is None else retry_after)
        self.target_only = target_only


@dataclass
class Rate:
    """One API method's learned rate in calls per second, and its pause after a 429."""

    per_second: float
    ceiling: float
    threshold: float | None = None  # the cruise, which held; None until the first 429: slow start
    next_at: float = 0.0  # the earliest start of the next call
    paused_until: float = 0.0
    decreased_at: float = -math.inf
    limited: int = 0  # 429s met
    decreases: int = 0  # overloads answered by a lower rate (several 429s may be one)
    resumed_at: float = -math.inf  # when calls (re)started: the first, or the end of a pause
    set_at: float = -math.inf  # when per_second took effect: a step, or the end of a pause
    probe_at: float = math.inf  # when the rate, if it holds until then, steps up
    probe_every: float = PROBE_EVERY
    successes: deque[float] = field(default_factory=deque)

    def succeeded(self, now: float, held: bool) -> None:
        """A call went through; grow if this rate held it (slow start, or a probe that is due)."""
        if self.resumed_at == -math.inf:
            self.resumed_at = now
        self.successes.append(now)
        while self.successes[0] <= now - WINDOW:
            self.successes.popleft()
        if not held:
            return  # the caller set the pace, not this rate: a faster one would prove nothing
        if self.threshold is None:
            self.per_second = min(self.ceiling, self.per_second + SLOW_START_STEP)
        elif now >= self.probe_at:
            if self.per_second > self.threshold:  # the last step held: probe sooner
                self.probe_every = max(PROBE_EVERY, self.probe_every / 2)
            self.threshold = self.per_second
            self.per_second = min(self.ceiling, self.per_second * (1 + PROBE_GAIN))
            self.set_at = now
            self.probe_at = now + self.probe_every

    def delivered(self, now: float) -> float | None:
        """Successful calls per second over the last WINDOW since calls resumed, if long enough."""
        since = max(now - WINDOW, self.resumed_at)
        calls = sum(1 for t in self.successes if t > since)
        if now - since < MIN_SPAN or calls < MIN_CALLS:
            return None
        return calls / (now - since)

    def restart(self) -> None:
        """Slow-start again from the current rate (the method was idle a long time)."""
        self.threshold = None
        self.probe_at = math.inf
        self.probe_every = PROBE_EVERY

    def throttle(self, now: float, pause: float, sent_at: float) -> bool:
        """A 429: pause the method; lower the rate once per overload. Whether it was lowered."""
        self.limited += 1
        # A call sent before the last decrease, or refused during the pause, went at the old
        # rate: it is the same overload, already answered.
        same = sent_at < self.decreased_at or now < self.paused_until
        measured = None if same else self.delivered(now)
        self.paused_until = self.resumed_at = max(self.paused_until, now + pause)
        self.next_at = max(self.next_at, self.paused_until)
        if same:
            return False
        # Never above what the server let through in the last WINDOW.
        base = self.per_second if measured is None else min(self.per_second, measured)
        if self.threshold is not None and self.per_second > self.threshold:
            # A probe's step met the limit, which is between the cruise and the step.
            self.per_second = min(self.threshold, base)
            self.probe_every = min(PROBE_MAX, self.probe_every * 2)
        elif self.threshold is not None and now - self.set_at >= PROBE_EVERY:
            # The cruise met the limit only after holding a while: it is a shade too fast (a
            # step that a burst allowance hid), not a limit that fell. One step down.
            self.per_second = base / (1 + PROBE_GAIN)
            self.probe_every = min(PROBE_MAX, self.probe_every * 2)
        else:
            # Slow start's end, or a limit that fell: well under what got through.
            self.per_second = base * DECREASE
            self.probe_every = PROBE_EVERY
        self.per_second = max(FLOOR, self.per_second)
        self.threshold = self.per_second
        self.set_at = self.paused_until
        self.probe_at = self.paused_until + self.probe_every
        self.decreased_at = now
        self.decreases += 1
        return True


class Pacing:
    """Paces one platform's API calls: learned per-method ``Rate``s, fixed per-target spacing."""

    def __init__(
        self,
        platform: str,
        rates: Mapping[str, tuple[float, float]],
        *,
        per_target: float,
        default: tuple[float, float] = (1.0, 100.0),
        max_throttled: float = MAX_THROTTLED,
        on_limited: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.platform = platform
        self.per_target = per_target
        self.max_throttled = max_throttled
        self.on_limited = on_limited
        self._start = dict(rates)
        self._default = default
        self._rates: dict[str, Rate] = {}
        self._targets: dict[str, float] = {}  # target -> the earliest start of its next call
        self._clock = clock
        self._stop = threading.Event()
        self._sleeper = sleep or self._stop.wait
        self._lock = threading.Lock()

    def rate(self, method: str) -> Rate:
        """The method's Rate, created at its starting rate (per_second, ceiling)."""
        with self._lock:
            return self._rate(method)

    def call(self, method: str, call: Callable[[], T], *, target: str | None = None) -> T:
        """Run ``call`` when the method's rate and the target's spacing allow; a ``Throttled``
        from it pauses and is retried, up to ``max_throttled`` seconds, then raised."""
        rate = self.rate(method)
        deadline = self._clock() + self.max_throttled

        def attempt() -> T:
            sent_at, held = self._wait(method, rate, target, deadline)
            try:
                result = call()
            except Throttled as exc:
                self._throttled(method, rate, target, exc, sent_at)
                raise
            with self._lock:
                rate.succeeded(self._clock(), held)
            return result

        retrying = Retrying(
            retry=retry_if_exception_type(Throttled),
            wait=lambda _state: self._paused_for(rate, target),
            stop=lambda _state: self._clock() + self._paused_for(rate, target) >= deadline,
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(attempt)

    def close(self) -> None:
        """Wake every waiting call at once; they, and any later ones, raise Stopping."""
        self._stop.set()

    def _rate(self, method: str) -> Rate:
        rate = self._rates.get(method)
        if rate is None:
            start, ceiling = self._start.get(method, self._default)
            rate = self._rates[method] = Rate(start, ceiling)
        return rate

    def _wait(
        self, method: str, rate: Rate, target: str | None, deadline: float
    ) -> tuple[float, bool]:
        """Sleep until this call's turn; (when it went, whether the method's rate held it)."""
        while True:
            with self._lock:
                if self._stop.is_set():
                    raise self._stopping()
                now = self._clock()
                if rate.successes and now - rate.successes[-1] > IDLE_RESTART:
                    rate.restart()
                free = max(rate.paused_until, self._targets.get(target, 0.0) if target else 0.0)
                if free >= deadline:
                    raise Throttled(
                        f"{self.platform}: {method} paused", retry_after=max(free - now, 0.0)
                    )
                at = max(now, rate.next_at, free)
                held = rate.next_at > max(now, free)
                interval = 1.0 / rate.per_second
                late = 0.0 < at - rate.next_at <= CATCH_UP * interval
                rate.next_at = (rate.next_at if late else at) + interval
                if target is not None:
                    self._targets[target] = at + self.per_target
                    if len(self._targets) > MAX_TARGETS:
                        self._targets = {k: v for k, v in self._targets.items() if v > now}
            if at > now:
                self._sleep(at - now)
                with self._lock:
                    if rate.paused_until > at:
                        continue  # a pause began while this call slept: queue again after it
            return at, held

    def _throttled(
        self, method: str, rate: Rate, target: str | None, exc: Throttled, sent_at: float
    ) -> None:
        assert exc.retry_after is not None
        with self._lock:
            now = self._clock()
            if exc.target_only and target is not None:
                self._targets[target] = max(self._targets.get(target, 0.0), now + exc.retry_after)
                lowered = False
            else:
                before = rate.per_second
                lowered = rate.throttle(now, exc.retry_after, sent_at)
        if lowered:
            log.info(
                "%s: %s throttled; pausing it %.1f s and its rate %.1f -> %.1f calls/s",
                self.platform,
                method,
                exc.retry_after,
                before,
                rate.per_second,
            )
        if self.on_limited is not None:
            self.on_limited(method)

    def _paused_for(self, rate: Rate, target: str | None) -> float:
        """Seconds until the method (and the target) may be called again."""
        with self._lock:
            free = max(rate.paused_until, self._targets.get(target, 0.0) if target else 0.0)
            return max(0.0, free - self._clock())

    def _sleep(self, seconds: float) -> None:
        self._sleeper(seconds)
        if self._stop.is_set():
            raise self._stopping()

    def _stopping(self) -> Stopping:
        return Stopping(f"{self.platform}: stopping: the bot is shutting down; nothing was sent")
