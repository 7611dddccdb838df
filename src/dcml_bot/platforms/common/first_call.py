"""A platform's first call (who am I; connect), retried in the background until it answers.

``serve`` starts while Slack or Feishu is down: /healthz names the platform that is still
connecting, the call is retried with capped exponential back-off (tenacity), and the platform
serves once it answers. Stopping the service ends the retries at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

log = logging.getLogger(__name__)

CONNECTING, CONNECTED, STOPPED = "connecting", "connected", "stopped"


class FirstCall:
    """Runs ``call`` on a thread until it returns; ``health()`` says how far it got."""

    def __init__(
        self,
        platform: str,
        call: Callable[[], Any],
        *,
        first_wait: float = 0.5,
        max_wait: float = 60.0,
    ) -> None:
        self.platform = platform
        self.call = call
        self.first_wait = first_wait
        self.max_wait = max_wait
        self.state = CONNECTING
        self.attempts = 0
        self.error: str | None = None
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wait: float = 0.0) -> bool:
        """Begin trying (on a daemon thread: a stuck network call never blocks exit); wait up to
        ``wait`` seconds so that a reachable platform is ready when start-up ends. Whether it is."""
        self._thread = threading.Thread(
            target=self._run, name=f"{self.platform}-first-call", daemon=True
        )
        self._thread.start()
        return self.connected.wait(wait)

    def stop(self) -> None:
        """Stop retrying; a call in flight is left to finish or time out on its own."""
        self._stop.set()
        if self.state != CONNECTED:
            self.state = STOPPED

    def wait(self, timeout: float) -> bool:
        """Block until connected (tests, start-up logs); False on timeout."""
        return self.connected.wait(timeout)

    def health(self) -> dict[str, Any]:
        """``{"state": …}`` plus the last error and attempts while not connected."""
        if self.state == CONNECTED:
            return {"state": CONNECTED}
        return {"state": self.state, "attempts": self.attempts, "error": self.error}

    def _attempt(self) -> Any:
        self.attempts += 1
        return self.call()

    def _failed(self, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        self.error = f"{error.__class__.__name__}: {error}" if error is not None else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.log(
            logging.WARNING if self.attempts == 1 else logging.INFO,
            "%s: not reachable yet (attempt %d: %s); retrying in %.1f s",
            self.platform,
            self.attempts,
            self.error,
            wait,
        )

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # stop() interrupts the back-off

    def _run(self) -> None:
        retrying = Retrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential_jitter(
                multiplier=self.first_wait, max=self.max_wait, jitter=self.first_wait
            ),
            stop=lambda _state: self._stop.is_set(),
            sleep=self._sleep,
            before_sleep=self._failed,
            reraise=True,
        )
        try:
            retrying(self._attempt)
        except Exception as exc:  # only when stopped while failing
            self.error = f"{exc.__class__.__name__}: {exc}"
            return
        if self._stop.is_set():
            return
        self.state, self.error = CONNECTED, None
        self.connected.set()
        if self.attempts > 1:
            log.info("%s: connected after %d attempts", self.platform, self.attempts)
