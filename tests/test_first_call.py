"""A platform that is down at start: serve starts anyway, says so, and connects when it answers."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from dcml_bot.app import build_service
from dcml_bot.platforms.common.first_call import FirstCall
from dcml_bot.server import build_http_app
from fakes.api import running
from fakes.slack import DELIVERY_TIME, FakeSlack, Slack, slack_settings
from support import Clock


def test_first_call_retries_until_it_answers_and_stops_at_once() -> None:
    failures = [RuntimeError("down"), RuntimeError("still down")]

    def call() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    first = FirstCall("demo", call, first_wait=0.01, max_wait=0.05)
    assert first.health() == {"state": "connecting", "attempts": 0, "error": None}
    first.start()
    assert first.wait(5)
    assert first.health() == {"state": "connected"}
    assert first.attempts == 3

    never = FirstCall("never", lambda: 1 / 0, first_wait=30, max_wait=60)
    never.start()
    deadline = time.monotonic() + 5
    while never.attempts == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    never.stop()  # interrupts the 30 s back-off
    assert never._thread is not None
    never._thread.join(5)
    assert not never._thread.is_alive() and time.monotonic() - started < 5
    assert never.health()["state"] == "stopped"
    assert "ZeroDivisionError" in str(never.health()["error"])


class DownSlack(FakeSlack):
    """A Slack whose auth.test fails until ``up`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.up = threading.Event()
        self.routes["/api/auth.test"] = self._auth

    def _auth(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if not self.up.is_set():
            return 200, {"ok": False, "error": "service_unavailable"}, {}
        return 200, {"ok": True, "team_id": "T0001", "user_id": "U0BOT", "bot_id": "B1"}, {}


def test_serve_starts_while_slack_is_down_and_connects_when_it_answers(db_url: str) -> None:
    fake = DownSlack().start()
    try:
        service = build_service(slack_settings(db_url, fake), clock=Clock(DELIVERY_TIME))
        with running(build_http_app(service)) as base:
            slack = Slack(service, base, fake, Clock(DELIVERY_TIME))
            health = httpx.get(base + "/healthz")
            assert health.status_code == 503
            body = health.json()
            assert body["status"] == "degraded"
            assert body["connections"]["slack"]["state"] == "connecting"
            assert "service_unavailable" in body["connections"]["slack"]["error"]
            fake.up.set()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                health = httpx.get(base + "/healthz")
                if health.status_code == 200:
                    break
                time.sleep(0.1)
            assert health.status_code == 200
            assert health.json()["connections"] == {"slack": {"state": "connected"}}
            assert len(fake.requests("/api/auth.test")) >= 2
            answer = slack.command("essential")  # and it serves
            assert answer.status_code == 200 and answer.json()["blocks"]
    finally:
        fake.stop()
