"""The fake Feishu Open Platform, its encryption and signing, the long connection's frames, and a
running bot with Feishu on it."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from Crypto.Cipher import AES
from lark_oapi.core.cache import LocalCache
from lark_oapi.core.token.manager import TokenManager
from lark_oapi.ws.pb.pbbp2_pb2 import Frame
from pydantic import SecretStr

from dcml_bot.app import Service, build_service
from dcml_bot.platforms.feishu.cards import check_card
from dcml_bot.platforms.feishu.platform import FeishuPlatform
from dcml_bot.server import build_http_app
from dcml_bot.settings import load_settings
from fakes.api import FakeAPI, Reply, TokenBucket, retry_after, running, take_all
from support import CONFIG, MONDAY_SLOT, Clock

ENCRYPT_KEY = "test-encrypt-key-123"
TOKEN = "test-verification-token"
TENANT = "2ca1d211f64f6438"
LAB_GROUP = "oc_lab_group"
PAYLOADS = Path(__file__).parent.parent / "data" / "payloads"
DELIVERY_TIME = MONDAY_SLOT + dt.timedelta(hours=1)
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
MESSAGES = "/open-apis/im/v1/messages"
ENDPOINT = "/callback/ws/endpoint"
BOT_INFO = "/open-apis/bot/v3/info"
BOT_OPEN_ID = "ou_dcml_bot_7f1b"
BOT_NAME = "DCML 读书会"
TENANT_TOKEN = "t-fake"


def encrypt(plaintext: str, key: str = ENCRYPT_KEY) -> str:
    """AES-256-CBC, key = SHA-256(encrypt key), random IV first, PKCS7, base64."""
    secret, iv = hashlib.sha256(key.encode()).digest(), os.urandom(16)
    data = plaintext.encode()
    pad = 16 - len(data) % 16
    data += bytes([pad]) * pad
    return base64.b64encode(iv + AES.new(secret, AES.MODE_CBC, iv).encrypt(data)).decode()


def sign(timestamp: str, nonce: str, body: bytes, key: str = ENCRYPT_KEY) -> str:
    """X-Lark-Signature: plain SHA-256 over timestamp + nonce + encrypt key + raw body."""
    return hashlib.sha256((timestamp + nonce + key).encode() + body).hexdigest()


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"feishu_{name}.plain.json").read_text())


def v2(event_type: str, event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or uuid.uuid4().hex,
            "event_type": event_type,
            "create_time": str(int(time.time() * 1000)),
            "token": TOKEN,
            "app_id": "cli_test",
            "tenant_key": TENANT,
        },
        "event": event,
    }


def message_event(
    line: str,
    *,
    open_id: str = "ou_newbie",
    chat_type: str = "p2p",
    mentions: list[dict[str, Any]] | None = None,
    message_id: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    template = payload("im.message.receive_v1.group_mention")["event"]
    template["sender"]["sender_id"]["open_id"] = open_id
    template["message"].update(
        message_id=message_id or "om_" + uuid.uuid4().hex[:12],
        chat_id="oc_" + (open_id if chat_type == "p2p" else "group"),
        chat_type=chat_type,
        content=json.dumps({"text": line}, ensure_ascii=False),
        mentions=mentions or [],
    )
    return v2("im.message.receive_v1", template, event_id=event_id)


def mention(n: int, open_id: str, name: str) -> dict[str, Any]:
    """One entry of ``message.mentions``: the text holds ``key`` where the @-mention was."""
    return {
        "key": f"@_user_{n}",
        "id": {"open_id": open_id, "union_id": "on_" + open_id, "user_id": None},
        "name": name,
        "tenant_key": TENANT,
    }


def user_added(chat_id: str, *users: str, tenant: str = TENANT, event_id: str | None = None) -> Any:
    event = payload("im.chat.member.user.added_v1")["event"]
    event["chat_id"] = chat_id
    event["users"] = [
        {"name": f"Name {u}", "tenant_key": tenant, "user_id": {"open_id": u}} for u in users
    ]
    return v2("im.chat.member.user.added_v1", event, event_id=event_id)


class Routes(dict[str, Any]):
    """Exact paths, plus ``/open-apis/im/v1/messages/{id}/reply`` for any message id."""

    def get(self, path: str, default: Any = None) -> Any:
        if path in self:
            return self[path]
        if path.startswith(MESSAGES + "/") and path.endswith("/reply"):
            return self["reply"]
        return default


def refused_token(request: dict[str, Any]) -> tuple[int, Any, dict[str, str]] | None:
    """The Open Platform's answer to a call without the tenant token it issued, else None."""
    given = {k.lower(): v for k, v in request["headers"].items()}.get("authorization")
    if given is None:
        return 400, {"code": 99991661, "msg": "Missing access token for authorization"}, {}
    if given != f"Bearer {TENANT_TOKEN}":
        return 400, {"code": 99991663, "msg": "Invalid access token for authorization"}, {}
    return None


class FakeFeishu(FakeAPI):
    """Token, bot info, message create and reply; can refuse formats, throttle, or not reach a
    user; ``bot_info_failures``: answer this many bot info calls with HTTP 500 first.

    The one route table of the fake Feishu: the tests use it as it is; ``RateLimitedFeishu``
    (the benches') throttles and counts on it. ``record``/``keep_alive``: as ``FakeAPI``'s.
    """

    def __init__(self, *, record: bool = True, keep_alive: bool = False) -> None:
        super().__init__(record=record, keep_alive=keep_alive)
        self.routes = Routes(self.routes)
        self.refuse: dict[str, int] = {}  # msg_type -> error code
        self.unreachable: set[str] = set()  # open ids outside the app's availability
        self.throttle = 0  # answer this many sends with 429 first
        self.revoked = 0  # answer this many sends with "invalid tenant access token" first
        self.bot_info_failures = 0
        self.reset = "1"
        self._count = 0
        self.routes.update(
            {
                TOKEN_PATH: lambda r: (
                    200,
                    {"code": 0, "msg": "ok", "tenant_access_token": TENANT_TOKEN, "expire": 7200},
                    {},
                ),
                BOT_INFO: self._bot_info,
                MESSAGES: self._send,
                "reply": self._send,
            }
        )

    def _bot_info(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """``GET /open-apis/bot/v3/info`` as documented: ``bot`` at the top level, no ``data``."""
        request["at"] = time.monotonic()  # the recorded request: when it came
        if request["method"] != "GET":
            return 404, {"code": 404, "msg": "404 page not found"}, {}
        refused = refused_token(request)
        if refused is not None:
            return refused
        with self.lock:
            if self.bot_info_failures > 0:
                self.bot_info_failures -= 1
                return 500, {"code": 1, "msg": "system busy"}, {}
        bot = {
            "activate_status": 2,
            "app_name": BOT_NAME,
            "avatar_url": "https://s1-imfile.feishucdn.com/static-resource/v1/avatar",
            "ip_white_list": [],
            "open_id": BOT_OPEN_ID,
        }
        return 200, {"code": 0, "msg": "ok", "bot": bot}, {}

    def _send(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        body = request["body"]
        refused = refused_token(request)
        if refused is not None:
            return refused
        with self.lock:
            if self.throttle > 0:
                self.throttle -= 1
                return (
                    429,
                    {"code": 99991400, "msg": "request trigger frequency limit"},
                    {"x-ogw-ratelimit-limit": "50", "x-ogw-ratelimit-reset": self.reset},
                )
            if self.revoked > 0:
                self.revoked -= 1
                return 400, {"code": 99991663, "msg": "Invalid access token for authorization"}, {}
            if body.get("receive_id") in self.unreachable:
                return 400, {"code": 230013, "msg": "Bot has NO availability to this user."}, {}
            code = self.refuse.get(body["msg_type"])
            if code is not None:
                return 400, {"code": code, "msg": "card content refused"}, {}
            self._count += 1
            request["message_id"] = f"om_sent_{self._count}"
        return 200, {"code": 0, "msg": "success", "data": {"message_id": request["message_id"]}}, {}

    def sent(self) -> list[dict[str, Any]]:
        """Successful creates and replies, oldest first (with ``path``, ``query``, ``body``)."""
        with self.lock:
            return [c for c in self.calls if "message_id" in c]

    def to(self, open_id: str) -> list[dict[str, Any]]:
        """Messages created for one user by open_id."""
        return [
            c
            for c in self.sent()
            if c["path"] == MESSAGES
            and c["query"].get("receive_id_type") == "open_id"
            and c["body"]["receive_id"] == open_id
        ]

    def replies(self, message_id: str) -> list[dict[str, Any]]:
        """Replies to one message."""
        return [c for c in self.sent() if c["path"] == f"{MESSAGES}/{message_id}/reply"]

    def sends(self) -> list[dict[str, Any]]:
        """Every attempted send, refused ones included."""
        with self.lock:
            return [c for c in self.calls if c["path"].startswith(MESSAGES)]


def card_of(call: dict[str, Any]) -> dict[str, Any]:
    assert call["body"]["msg_type"] == "interactive"
    card: dict[str, Any] = json.loads(call["body"]["content"])
    assert check_card(card) == [], check_card(card)
    return card


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("tag") == "button":
                found.append(value)
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(card)
    return found


@dataclass
class Feishu:
    """A running bot with Feishu enabled, its base URL, the fake API and the clock."""

    service: Service
    base: str
    fake: FakeFeishu
    clock: Clock

    @property
    def platform(self) -> FeishuPlatform:
        platform = self.service.platforms[0]
        assert isinstance(platform, FeishuPlatform)
        return platform

    def post(
        self,
        event: dict[str, Any] | str | bytes,
        *,
        encrypted: bool = True,
        signed: bool = True,
        key: str = ENCRYPT_KEY,
        sign_key: str = ENCRYPT_KEY,
        timestamp: int | None = None,
    ) -> httpx.Response:
        if isinstance(event, dict):
            plain = json.dumps(event, ensure_ascii=False)
            body = (json.dumps({"encrypt": encrypt(plain, key)}) if encrypted else plain).encode()
        else:
            body = event.encode() if isinstance(event, str) else event
        headers = {"Content-Type": "application/json"}
        if signed:
            ts = str(int(time.time()) if timestamp is None else timestamp)
            nonce = uuid.uuid4().hex[:16]
            headers.update(
                {
                    "X-Lark-Request-Timestamp": ts,
                    "X-Lark-Request-Nonce": nonce,
                    "X-Lark-Signature": sign(ts, nonce, body, sign_key),
                }
            )
        return httpx.post(self.base + "/feishu/events", content=body, headers=headers, timeout=10)

    def member(self, open_id: str) -> Any:
        return self.service.bot.store.get_member("feishu", open_id)

    def enrol(self, *open_ids: str) -> None:
        store, now = self.service.bot.store, self.clock()
        for open_id in open_ids:
            member = store.upsert_member("feishu", open_id, display_name=open_id, now=now)
            store.set_enrolled(member.id, True, now)


def feishu_settings(
    db_url: str, fake: FakeFeishu, *, update: dict[str, Any] | None = None, **feishu: Any
) -> Any:
    """The test settings with Feishu on ``fake``; ``update``: other settings to change."""
    settings = load_settings(CONFIG)
    options = settings.feishu.model_copy(update={"groups": [LAB_GROUP], **feishu})
    return settings.model_copy(
        update={
            **(update or {}),
            "database_url": db_url,
            "admins": ["feishu:ou_admin"],
            "feishu_domain": fake.base,
            # A fresh app id per test: lark-oapi caches tenant tokens process-wide by app id.
            "feishu_app_id": SecretStr("cli_" + uuid.uuid4().hex[:12]),
            "feishu_app_secret": SecretStr("app-secret"),
            "feishu_verification_token": SecretStr(TOKEN),
            "feishu_encrypt_key": SecretStr(ENCRYPT_KEY),
            "slack_bot_token": None,
            "slack_signing_secret": None,
            "slack_app_token": None,
            "feishu": options,
        }
    )


@pytest.fixture(autouse=True)
def fresh_token_cache() -> Iterator[None]:
    """lark-oapi's token cache is a process-wide class attribute: give each test its own."""
    saved = TokenManager.cache
    TokenManager.cache = LocalCache()
    yield
    TokenManager.cache = saved


@contextmanager
def serve_feishu(
    db_url: str,
    *,
    update: dict[str, Any] | None = None,
    bot_info_failures: int = 0,
    **feishu: Any,
) -> Iterator[Feishu]:
    """The bot on a fake Open Platform; unless bot info is to fail, once it knows its open_id."""
    fake = FakeFeishu()
    fake.bot_info_failures = bot_info_failures
    fake.start()
    clock = Clock(DELIVERY_TIME)
    settings = feishu_settings(db_url, fake, update=update, **feishu)
    service = build_service(settings, clock=clock, schedule=False)
    try:
        with running(build_http_app(service)) as base:
            running_bot = Feishu(service, base, fake, clock)
            if not bot_info_failures:
                # Start-up learns the bot's open_id in the background: let it finish first.
                assert running_bot.platform.wait_identity(10)
            yield running_bot
    finally:
        fake.stop()


def card_press(open_id: str, value: Any, message_id: str) -> dict[str, Any]:
    """A card.action.trigger of a button with callback ``value`` on message ``message_id``."""
    press = payload("card.action.trigger")
    press["header"]["event_id"] = uuid.uuid4().hex
    press["event"]["operator"]["open_id"] = open_id
    press["event"]["action"]["value"] = value
    press["event"]["context"]["open_message_id"] = message_id
    return press


def track_values(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The callback values of a card's direction buttons, in order."""
    values = [b["behaviors"][0]["value"] for b in buttons(card)]
    return [v for v in values if v["action"] == "track"]


def card_text(card: dict[str, Any]) -> str:
    return json.dumps(card["body"], ensure_ascii=False)


def data_frame(event: dict[str, Any], seq_id: int) -> bytes:
    """A lark long-connection DATA frame carrying a plaintext event (as lark_ws_fake.py)."""
    frame = Frame()
    frame.SeqID, frame.LogID, frame.service, frame.method = seq_id, 0, 1, 1
    headers = {"type": "event", "message_id": uuid.uuid4().hex, "trace_id": "t1", "sum": "1"}
    for key, value in {**headers, "seq": "0"}.items():
        header = frame.headers.add()
        header.key, header.value = key, value
    frame.payload = json.dumps(event).encode()
    return frame.SerializeToString()


class FakeLongConnection:
    """A fake lark WebSocket endpoint: pushes event frames, collects the client's answers."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.answers: list[dict[str, Any]] = []
        self.path: str | None = None
        self.done = threading.Event()
        self.port: int | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        assert self._ready.wait(10)

    def _serve(self) -> None:
        import websockets

        async def handler(connection: Any) -> None:
            self.path = connection.request.path
            for seq, event in enumerate(self.events, start=1):
                await connection.send(data_frame(event, seq))
            while len(self.answers) < len(self.events):
                frame = Frame()
                frame.ParseFromString(await connection.recv())
                if frame.method == 0:  # a control frame (ping)
                    continue
                self.answers.append(json.loads(frame.payload))
            self.done.set()
            await asyncio.sleep(3600)

        async def main() -> None:
            async with websockets.serve(handler, "127.0.0.1", 0) as server:
                self.port = server.sockets[0].getsockname()[1]
                self._ready.set()
                await asyncio.Future()

        asyncio.run(main())


# --- the benches' fake: the Open Platform's rate limits ------------------------------------------


class RateLimitedFeishu(FakeFeishu):
    """``FakeFeishu``'s routes, message create throttled like the Open Platform, counting.

    ``per_app`` messages/s for the app (``burst``) and ``per_user`` per receiver (burst 1). Above
    the app's: HTTP 429, code 99991400 and the ``x-ogw-ratelimit-reset`` header; above a user's:
    code 230020, as Feishu answers. A message takes a token from both buckets or from none. Sent
    messages are counted per receiver in ``received``, not stored; nothing is recorded, and
    connections are kept alive (the benches send thousands of requests).
    """

    def __init__(
        self, per_app: float | None = None, per_user: float | None = None, burst: float = 5.0
    ) -> None:
        super().__init__(record=False, keep_alive=True)
        self.app_bucket = TokenBucket(per_app, burst) if per_app else None
        self.per_user = per_user
        self.user_buckets: dict[str, TokenBucket] = {}
        self.received: Counter[str] = Counter()
        self.limited = 0
        self.attempts = 0  # message creates, answered 429 or not
        self.user_limited = 0
        self._bucket_lock = threading.Lock()

    def _send(self, request: dict[str, Any]) -> Reply:
        refused = refused_token(request)
        if refused is not None:
            return refused
        receiver = str(request["body"].get("receive_id"))
        with self.lock:
            self.attempts += 1
            bucket = self.user_buckets.get(receiver)
            if bucket is None and self.per_user:
                bucket = self.user_buckets[receiver] = TokenBucket(self.per_user, 1.0)
        buckets = [b for b in (self.app_bucket, bucket) if b is not None]
        wait = take_all(buckets, self._bucket_lock)
        if wait and self.app_bucket is not None and self.app_bucket.wait():
            with self.lock:
                self.limited += 1
            headers = {
                "x-ogw-ratelimit-limit": str(int(self.app_bucket.rate)),
                "x-ogw-ratelimit-reset": retry_after(self.app_bucket.wait()),
            }
            return 429, {"code": 99991400, "msg": "request trigger frequency limit"}, headers
        if wait:
            with self.lock:
                self.user_limited += 1
            return 400, {"code": 230020, "msg": "send message to this user too frequently"}, {}
        with self.lock:
            self._count += 1
            self.received[receiver] += 1
            message_id = f"om_sent_{self._count}"
        return 200, {"code": 0, "msg": "success", "data": {"message_id": message_id}}, {}
