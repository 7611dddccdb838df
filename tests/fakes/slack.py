"""The fake Slack Web API (modelled on bolt-python's tests/mock_web_api_server), signed requests
into the bot's ``/slack/events``, and a running bot with Slack on it."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from dcml_bot.app import Service, build_service
from dcml_bot.platforms.slack.platform import SlackPlatform
from dcml_bot.server import build_http_app
from dcml_bot.settings import load_settings
from fakes.api import FakeAPI, Handler, Reply, TokenBucket, retry_after, running, take_all
from support import CONFIG, MONDAY_SLOT, Clock

SECRET = "test-signing-secret"
PAYLOADS = Path(__file__).parent.parent / "data" / "payloads"
DELIVERY_TIME = MONDAY_SLOT + dt.timedelta(hours=1)


class SlackViews:
    """Slack's ``views.open`` as documented (docs.slack.dev, views.open): a trigger_id that an
    interaction issued, exchanged once and within 3 seconds, and a modal Block Kit accepts.

    ``issue()`` hands out a trigger_id as a button press would carry (``age``: seconds old
    already); ``check`` finds a view's Block Kit problems (slack_sdk's models); ``opened`` keeps
    the views opened, oldest first.
    """

    TTL = 3.0

    def __init__(self, check: Callable[[dict[str, Any]], list[str]]) -> None:
        self.check = check
        self.issued: dict[str, float] = {}
        self.used: set[str] = set()
        self.opened: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.lock = threading.Lock()
        self._count = 0

    def issue(self, *, age: float = 0.0) -> str:
        """A fresh trigger_id in Slack's ``123.456.hex`` form."""
        with self.lock:
            self._count += 1
            trigger = f"{13345224609 + self._count}.738474920.{self._count:032x}"
            self.issued[trigger] = time.monotonic() - age
        return trigger

    def _refuse(self, error: str, *messages: str) -> Reply:
        with self.lock:
            self.refused.append(error)
        body: dict[str, Any] = {"ok": False, "error": error}
        if messages:
            body["response_metadata"] = {"messages": list(messages)}
        return 200, body, {}

    def __call__(self, request: dict[str, Any]) -> Reply:
        body = request["body"] if isinstance(request["body"], dict) else {}
        args = {**request["query"], **body}
        trigger, view = args.get("trigger_id"), args.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                return self._refuse("invalid_arguments", "[ERROR] view is not JSON")
        if not trigger:
            return self._refuse("invalid_arguments", "[ERROR] missing required field: trigger_id")
        with self.lock:
            issued = self.issued.get(trigger)
            used = trigger in self.used
        if issued is None:
            return self._refuse("invalid_trigger_id")
        if used:
            return self._refuse("exchanged_trigger_id")
        if time.monotonic() - issued > self.TTL:
            return self._refuse("expired_trigger_id")
        if not isinstance(view, dict) or view.get("type") != "modal":
            return self._refuse("invalid_arguments", "[ERROR] a modal view is required")
        problems = self.check(view)
        blocks = view.get("blocks") or []
        if any(b.get("type") == "input" for b in blocks) and not view.get("submit"):
            problems.append("must define submit to use an input block in modals")
        if problems:
            return self._refuse("invalid_arguments", *problems)
        with self.lock:
            self.used.add(trigger)
            self._count += 1
            opened = {**view, "id": f"V{self._count:08d}", "state": {"values": {}}}
            self.opened.append(opened)
        return 200, {"ok": True, "view": opened}, {}


class FakeSlack(FakeAPI):
    """The Slack Web API methods the bot calls, with DM history and an optional 429 storm.

    The one route table of the fake Slack: the tests use it as it is; ``RateLimitedSlack``
    (the benches') throttles and counts on it. ``record``/``keep_alive``: as ``FakeAPI``'s.
    """

    def __init__(self, *, record: bool = True, keep_alive: bool = False) -> None:
        super().__init__(record=record, keep_alive=keep_alive)
        self.user_tz: str | None = "Europe/Berlin"  # users.info's tz for users not in ``users``
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.channel_names = {"C0LAB": "reading-group", "C0GENERAL": "general"}
        self.storm = 0  # answer this many chat.postMessage calls with 429 first
        self.fail_post: str | None = None  # error to answer chat.postMessage with
        self.fail_channel: str | None = None  # ... only in this channel (default: all)
        self.post_delay = 0.0
        self._ts = 1_700_000_000
        self.routes.update(
            {
                "/api/auth.test": lambda r: (
                    200,
                    {"ok": True, "team_id": "T0001", "user_id": "U0BOT", "bot_id": "B1"},
                    {},
                ),
                "/api/conversations.open": self._open,
                "/api/chat.postMessage": self._post,
                "/api/conversations.history": self._history,
                "/api/users.info": self._user,
                "/api/conversations.info": self._channel,
                "/api/views.publish": lambda r: (200, {"ok": True}, {}),
            }
        )

    @staticmethod
    def args(request: dict[str, Any]) -> dict[str, Any]:
        body = request["body"] if isinstance(request["body"], dict) else {}
        return {**request["query"], **body}

    def _open(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        user = self.args(request)["users"]
        return 200, {"ok": True, "channel": {"id": "D" + user}}, {}

    def _post(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        time.sleep(self.post_delay)
        with self.lock:
            if self.storm > 0:
                self.storm -= 1
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
            args = self.args(request)
            if self.fail_post and self.fail_channel in (None, args["channel"]):
                return 200, {"ok": False, "error": self.fail_post}, {}
            self._ts += 1
            message = {
                "ts": f"{self._ts}.000100",
                "text": args.get("text"),
                "blocks": args.get("blocks"),
                "metadata": args.get("metadata"),
            }
            self.history.setdefault(args["channel"], []).append(message)
        return 200, {"ok": True, "channel": args["channel"], "ts": message["ts"]}, {}

    def _history(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        args = self.args(request)
        with self.lock:
            messages = list(reversed(self.history.get(args["channel"], [])))
        if str(args.get("include_all_metadata")).lower() not in {"1", "true"}:
            messages = [{k: v for k, v in m.items() if k != "metadata"} for m in messages]
        return 200, {"ok": True, "messages": messages}, {}

    def _user(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        user_id = self.args(request)["user"]
        default: dict[str, Any] = {"id": user_id, "name": user_id.lower()}
        if self.user_tz is not None:
            default["tz"] = self.user_tz
        user = self.users.get(user_id, default)
        return 200, {"ok": True, "user": user}, {}

    def _channel(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        channel = self.args(request)["channel"]
        name = self.channel_names.get(channel, "random")
        return 200, {"ok": True, "channel": {"id": channel, "name": name}}, {}

    def dms(self, user_id: str) -> list[dict[str, Any]]:
        """Messages the bot posted in its DM with a user."""
        with self.lock:
            return list(self.history.get("D" + user_id, []))

    def responses(self) -> list[dict[str, Any]]:
        """Bodies posted to response_url."""
        return [c["body"] for c in self.calls if c["path"].startswith("/respond/")]


@dataclass
class Slack:
    """A running bot with Slack enabled, its base URL and the fake Web API."""

    service: Service
    base: str
    fake: FakeSlack
    clock: Clock

    @property
    def platform(self) -> SlackPlatform:
        platform = self.service.platforms[0]
        assert isinstance(platform, SlackPlatform)
        return platform

    def post(
        self,
        body: str,
        content_type: str,
        *,
        timestamp: int | None = None,
        secret: str = SECRET,
        extra: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {
            **signed_headers(body, secret=secret, ts=timestamp, content_type=content_type),
            **(extra or {}),
        }
        return httpx.post(self.base + "/slack/events", content=body, headers=headers, timeout=10)

    def command(self, line: str, user: str = "U0NEWBIE", **kw: Any) -> httpx.Response:
        fields = json.loads((PAYLOADS / "slack_slash_command.fields.json").read_text())
        fields.update(
            command="/dcml",
            text=line,
            user_id=user,
            response_url=f"{self.fake.base}/respond/{user}",
            trigger_id=trigger_id(),
        )
        return self.post(urlencode(fields), "application/x-www-form-urlencoded", **kw)

    def event(self, name: str, **changes: Any) -> httpx.Response:
        envelope = json.loads((PAYLOADS / f"slack_event_{name}.json").read_text())
        extra = changes.pop("headers", None)
        for key, value in changes.items():
            if key == "event_id":
                envelope["event_id"] = value
            elif isinstance(value, dict) and isinstance(envelope["event"].get(key), dict):
                envelope["event"][key].update(value)
            else:
                envelope["event"][key] = value
        return self.post(json.dumps(envelope), "application/json", extra=extra)

    def press(self, action_id: str, value: str, user: str, message_ts: str) -> httpx.Response:
        payload = json.loads((PAYLOADS / "slack_block_actions.json").read_text())
        payload["user"]["id"] = user
        payload["channel"]["id"] = payload["container"]["channel_id"] = "D" + user
        payload["container"]["message_ts"] = payload["message"]["ts"] = message_ts
        payload["response_url"] = f"{self.fake.base}/respond/action-{user}"
        payload["actions"][0].update(action_id=action_id, value=value)
        payload["trigger_id"] = trigger_id()
        body = urlencode({"payload": json.dumps(payload)})
        return self.post(body, "application/x-www-form-urlencoded")


def signed_headers(
    body: str,
    *,
    secret: str = SECRET,
    ts: int | None = None,
    content_type: str = "application/x-www-form-urlencoded",
) -> dict[str, str]:
    """Slack's request-signing headers for a body: HMAC-SHA256 over ``v0:{ts}:{body}``."""
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + digest,
    }


def trigger_id() -> str:
    """A fresh trigger_id: Slack gives each command and interaction its own."""
    return f"13345224609.738474920.{uuid.uuid4().hex[:19]}"


def slack_settings(db_url: str, fake: FakeSlack, **changes: Any) -> Any:
    settings = load_settings(CONFIG)
    slack = settings.slack.model_copy(update={"channels": ["C0LAB", "#reading-group"]})
    update: dict[str, Any] = {
        "database_url": db_url,
        "admins": ["slack:U0ADMIN"],
        "slack_api_url": fake.base + "/api/",
        "slack_bot_token": SecretStr("xoxb-test"),
        "slack_signing_secret": SecretStr(SECRET),
        "slack_app_token": None,
        "feishu_app_id": None,
        "feishu_app_secret": None,
        "slack": slack,
        **changes,
    }
    return settings.model_copy(update=update)


@contextmanager
def serve_slack(db_url: str) -> Iterator[Slack]:
    """The bot with Slack over HTTP on a fake Web API."""
    fake = FakeSlack().start()
    clock = Clock(DELIVERY_TIME)
    service = build_service(slack_settings(db_url, fake), clock=clock, schedule=False)
    try:
        with running(build_http_app(service)) as base:
            yield Slack(service, base, fake, clock)
    finally:
        fake.stop()


def enrol(slack: Slack, *users: str) -> None:
    store, now = slack.service.bot.store, slack.clock()
    for user in users:
        member = store.upsert_member("slack", user, display_name=user, now=now)
        store.set_enrolled(member.id, True, now)


class GatedSlack(FakeSlack):
    """A fake Slack that holds every chat.postMessage until ``gate`` opens (a slow workspace)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.waiting = 0

    def _post(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.waiting += 1
        self.gate.wait(timeout=60)
        return super()._post(request)

    def welcomed(self, users: list[str]) -> dict[str, int]:
        """How many DMs each user got."""
        return {u: len(self.dms(u)) for u in users}


def team_join(user: str, event_id: str) -> dict[str, Any]:
    """A team_join envelope as Slack sends it (the user object trimmed to what matters)."""
    return {
        "token": "deprecated",
        "team_id": "T0001",
        "api_app_id": "A0APP",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": {
            "type": "team_join",
            "user": {"id": user, "name": user.lower(), "tz": "UTC", "profile": {}},
            "event_ts": f"{int(time.time())}.000100",
        },
    }


# --- the benches' fake: Slack's rate limits ------------------------------------------------------

# Slack's documented limits as token buckets (rate/s, burst): chat.postMessage under a workspace
# cap ("several hundred per minute"; here 10/s) and 1/s per channel; Tier 3 50/min; Tier 4 100/min.
SLACK_REALISTIC = {
    "chat.postMessage": (10.0, 10.0),
    "conversations.open": (50 / 60, 5.0),
    "conversations.history": (50 / 60, 5.0),
    "users.info": (100 / 60, 10.0),
}
SLACK_PER_CHANNEL = (1.0, 1.0)


class RateLimitedSlack(FakeSlack):
    """``FakeSlack``'s routes, optionally throttled by token buckets, counting instead of keeping.

    ``rate``: one bucket of ``rate`` calls/s (``burst``) over every method; ``methods``: a bucket
    per method (name → (rate, burst)); ``per_channel``: chat.postMessage's bucket per channel.
    A call takes a token from each of its buckets or from none; refused, it is answered 429
    ``ratelimited`` with an honest ``Retry-After``, as Slack does. Posted messages are counted
    per user in ``received`` (channel ``D<user>``), not stored; bodies posted to a response_url
    are kept in ``answers`` (``responded`` is set at each). Nothing else is recorded, and
    connections are kept alive (the benches send thousands of requests).
    """

    def __init__(
        self,
        rate: float | None = None,
        burst: float = 10.0,
        *,
        methods: Mapping[str, tuple[float, float]] | None = None,
        per_channel: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(record=False, keep_alive=True)
        self.user_tz = None
        self.bucket = TokenBucket(rate, burst) if rate else None
        self.buckets = {m: TokenBucket(r, b) for m, (r, b) in (methods or {}).items()}
        self.per_channel = per_channel
        self.channel_buckets: dict[str, TokenBucket] = {}
        self.received: Counter[str] = Counter()
        self.limited = 0
        self.attempts = 0  # calls through the buckets, answered 429 or not
        self.per_method: Counter[str] = Counter()  # calls per method, answered 429 or not
        self.limited_by: Counter[str] = Counter()  # 429s per method
        self._bucket_lock = threading.Lock()
        self.answers: list[Any] = []
        self.responded = threading.Event()

    def route(self, path: str) -> Handler | None:
        if path.startswith("/respond/"):
            return self._respond
        handler = self.routes.get(path)
        if handler is None or path == "/api/auth.test":
            return handler
        return self._throttled(path.removeprefix("/api/"), handler)

    def _throttled(self, method: str, handler: Handler) -> Handler:
        def throttled(request: dict[str, Any]) -> Reply:
            buckets = [b for b in (self.bucket, self.buckets.get(method)) if b is not None]
            if method == "chat.postMessage" and self.per_channel is not None:
                channel = str(self.args(request).get("channel"))
                with self._bucket_lock:
                    bucket = self.channel_buckets.get(channel)
                    if bucket is None:
                        bucket = self.channel_buckets[channel] = TokenBucket(*self.per_channel)
                buckets.append(bucket)
            wait = take_all(buckets, self._bucket_lock)
            with self.lock:
                self.attempts += 1
                self.per_method[method] += 1
                if wait:
                    self.limited += 1
                    self.limited_by[method] += 1
            if wait:
                headers = {"Retry-After": retry_after(wait)}
                return 429, {"ok": False, "error": "ratelimited"}, headers
            return handler(request)

        return throttled

    def _post(self, request: dict[str, Any]) -> Reply:
        channel = self.args(request)["channel"]
        with self.lock:
            self._ts += 1
            ts = f"{self._ts}.000100"
            self.received[channel.removeprefix("D")] += 1
        return 200, {"ok": True, "channel": channel, "ts": ts}, {}

    def _respond(self, request: dict[str, Any]) -> Reply:
        with self.lock:
            self.answers.append(request["body"])
        self.responded.set()
        return 200, b"ok", {}
