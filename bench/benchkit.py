"""Shared pieces of the benches: fake Slack/Feishu Web APIs, signed requests, child processes.

Not a benchmark itself. The fakes are the tests' fake Web API server (tests/fakes.py ``FakeAPI``:
threads of an ``http.server`` on 127.0.0.1, port 0), counting hits instead of recording requests,
keeping connections alive, optionally throttled by token buckets the way the real platforms do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "dcml-bot.toml"
SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-test"
ADMIN = "U0ADMIN"
LAB_TIMEZONE = "Asia/Shanghai"
# Monday 2026-11-30 10:00 in Shanghai, the delivery slot of ISO week 2026-W49 (tests' MONDAY_SLOT).
MONDAY_SLOT = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)

log = logging.getLogger("bench")

if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
from fakes import (  # noqa: E402  (tests/ is on sys.path only from here)
    FakeAPI,
    Handler,
    Reply,
    TokenBucket,
    take_all,
)

# --- figures -------------------------------------------------------------------------------------


def pct(samples: Iterable[float], q: float) -> float:
    """The q-quantile (nearest rank) of the samples."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> str:
    """Cores, CPU model, Python and OS, for the record."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def setup_logging() -> None:
    """Figures go to stderr through logging, one line each."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)


# --- fake HTTP APIs ------------------------------------------------------------------------------
# On the one fake Web API server of the tests (tests/fakes.py): counting hits, not recording
# requests, and keeping connections alive.


def _args(request: dict[str, Any]) -> dict[str, Any]:
    body = request["body"] if isinstance(request["body"], dict) else {}
    return {**request["query"], **body}


def retry_after(wait: float) -> str:
    """An honest ``Retry-After``: whole seconds until there is a token, at least 1."""
    return str(max(1, math.ceil(wait)))


# Slack's documented limits as token buckets (rate/s, burst): chat.postMessage under a workspace
# cap ("several hundred per minute"; here 10/s) and 1/s per channel; Tier 3 50/min; Tier 4 100/min.
SLACK_REALISTIC = {
    "chat.postMessage": (10.0, 10.0),
    "conversations.open": (50 / 60, 5.0),
    "conversations.history": (50 / 60, 5.0),
    "users.info": (100 / 60, 10.0),
}
SLACK_PER_CHANNEL = (1.0, 1.0)


class FakeSlack(FakeAPI):
    """The Slack Web API methods the bot calls, optionally throttled by token buckets.

    ``rate``: one bucket of ``rate`` calls/s (``burst``) over every method; ``methods``: a bucket
    per method (name → (rate, burst)); ``per_channel``: chat.postMessage's bucket per channel.
    A call takes a token from each of its buckets or from none; refused, it is answered 429
    ``ratelimited`` with an honest ``Retry-After``, as Slack does. Posted DMs are counted per
    user (channel ``D<user>``), not stored.
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
        self.bucket = TokenBucket(rate, burst) if rate else None
        self.buckets = {m: TokenBucket(r, b) for m, (r, b) in (methods or {}).items()}
        self.per_channel = per_channel
        self.channel_buckets: dict[str, TokenBucket] = {}
        self.dms: Counter[str] = Counter()
        self.limited = 0
        self.attempts = 0  # calls through the buckets, answered 429 or not
        self.per_method: Counter[str] = Counter()  # calls per method, answered 429 or not
        self.limited_by: Counter[str] = Counter()  # 429s per method
        self._bucket_lock = threading.Lock()
        self.responses: list[Any] = []
        self.responded = threading.Event()
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
                "/api/conversations.history": lambda r: (200, {"ok": True, "messages": []}, {}),
                "/api/users.info": self._user,
                "/api/views.publish": lambda r: (200, {"ok": True}, {}),
            }
        )

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
                channel = str(_args(request).get("channel"))
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

    def _open(self, request: dict[str, Any]) -> Reply:
        return 200, {"ok": True, "channel": {"id": "D" + _args(request)["users"]}}, {}

    def _post(self, request: dict[str, Any]) -> Reply:
        channel = _args(request)["channel"]
        with self.lock:
            self._ts += 1
            ts = f"{self._ts}.000100"
            self.dms[channel.removeprefix("D")] += 1
        return 200, {"ok": True, "channel": channel, "ts": ts}, {}

    def _user(self, request: dict[str, Any]) -> Reply:
        user_id = _args(request)["user"]
        return 200, {"ok": True, "user": {"id": user_id, "name": user_id.lower()}}, {}

    def _respond(self, request: dict[str, Any]) -> Reply:
        with self.lock:
            self.responses.append(request["body"])
        self.responded.set()
        return 200, b"ok", {}


FEISHU_TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
FEISHU_MESSAGES = "/open-apis/im/v1/messages"


class FakeFeishu(FakeAPI):
    """Feishu's token endpoint and message create, throttled like the Open Platform.

    ``per_app`` messages/s for the app (``burst``) and ``per_user`` per receiver (burst 1). Above
    the app's: HTTP 429, code 99991400 and the ``x-ogw-ratelimit-reset`` header; above a user's:
    code 230020, as Feishu answers. A message takes a token from both buckets or from none. Sent
    messages are counted per receiver.
    """

    def __init__(
        self, per_app: float | None = None, per_user: float | None = None, burst: float = 5.0
    ) -> None:
        super().__init__(record=False, keep_alive=True)
        self.app_bucket = TokenBucket(per_app, burst) if per_app else None
        self.per_user = per_user
        self.user_buckets: dict[str, TokenBucket] = {}
        self.sent: Counter[str] = Counter()
        self.limited = 0
        self.attempts = 0  # message creates, answered 429 or not
        self.tokens = 0
        self.user_limited = 0
        self._count = 0
        self._bucket_lock = threading.Lock()
        self.routes.update(
            {
                FEISHU_TOKEN_PATH: self._token,
                FEISHU_MESSAGES: self._send,
                # The bot's own identity, asked once at start (bot info API).
                "/open-apis/bot/v3/info": lambda r: (
                    200,
                    {"code": 0, "msg": "ok", "bot": {"open_id": "ou_bench_bot", "app_name": "b"}},
                    {},
                ),
            }
        )

    def _token(self, request: dict[str, Any]) -> Reply:
        with self.lock:
            self.tokens += 1
        reply = {"code": 0, "msg": "ok", "tenant_access_token": "t-fake", "expire": 7200}
        return 200, reply, {}

    def _send(self, request: dict[str, Any]) -> Reply:
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
            self.sent[receiver] += 1
            message_id = f"om_sent_{self._count}"
        return 200, {"code": 0, "msg": "success", "data": {"message_id": message_id}}, {}


# --- Slack requests ------------------------------------------------------------------------------


def command_form(text: str, user: str, response_url: str) -> str:
    """A ``/dcml`` slash command's form body, with the fields Slack sends."""
    fields = {
        "token": "deprecated-verification-token",
        "team_id": "T0001",
        "team_domain": "fake",
        "channel_id": "C0GENERAL",
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/dcml",
        "text": text,
        "api_app_id": "A0APP",
        "is_enterprise_install": "false",
        "response_url": response_url,
        # Slack gives each command its own trigger_id: no two commands are the same request
        # (the bot answers a byte-identical one as a replay, without running it).
        "trigger_id": f"13345224609.738474920.{uuid.uuid4().hex[:19]}",
    }
    return urlencode(fields)


def signed_headers(body: str, *, secret: str = SIGNING_SECRET, ts: int | None = None) -> dict:
    """Slack's signature headers for a body: HMAC-SHA256 over ``v0:{ts}:{body}``."""
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + digest,
    }


def post_command(base: str, text: str, user: str, response_url: str, timeout: float = 30) -> Any:
    """One signed ``/dcml`` command over a fresh connection; returns (status, parsed body)."""
    body = command_form(text, user, response_url)
    split = urlsplit(base)
    connection = http.client.HTTPConnection(split.hostname, split.port, timeout=timeout)
    try:
        connection.request("POST", "/slack/events", body=body, headers=signed_headers(body))
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode("utf-8", "replace")


# --- child processes -----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet_slot(now: dt.datetime | None = None) -> dict[str, str]:
    """Delivery day/time settings whose slot this week is still ahead, so the scheduler's
    catch-up tick finds nobody due and stays out of the measurement."""
    local = (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo(LAB_TIMEZONE))
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    if local.weekday() < 6:
        day, at = days[local.weekday() + 1], "00:00"
    else:
        day, at = "sun", "23:59"
    return {"DCML_BOT_DELIVERY__DAY": day, "DCML_BOT_DELIVERY__TIME": at}


def bot_env(
    database_url: str,
    port: int,
    *,
    slack_api: str | None = None,
    feishu_domain: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a ``dcml-bot serve`` child: nothing inherited but PATH/HOME/locale (and
    PYTHONPATH, for a checkout that is not the one installed in the venv)."""
    kept = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH"}
    env = {k: v for k, v in os.environ.items() if k in kept}
    env.update(
        {
            "DCML_BOT_CONFIG": str(CONFIG),
            "DCML_BOT_DATABASE_URL": database_url,
            "DCML_BOT_HOST": "127.0.0.1",
            "DCML_BOT_PORT": str(port),
            "DCML_BOT_TIMEZONE": LAB_TIMEZONE,
            "DCML_BOT_ADMINS": json.dumps([f"slack:{ADMIN}"]),
            "PYTHONUNBUFFERED": "1",
            **quiet_slot(),
        }
    )
    if slack_api is not None:
        env.update(
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "DCML_BOT_SLACK_API_URL": slack_api,
            }
        )
    if feishu_domain is not None:
        env.update(
            {
                "FEISHU_APP_ID": "cli_bench",
                "FEISHU_APP_SECRET": "bench-app-secret",
                "FEISHU_VERIFICATION_TOKEN": "bench-verification-token",
                "FEISHU_ENCRYPT_KEY": "bench-encrypt-key",
                "DCML_BOT_FEISHU_DOMAIN": feishu_domain,
            }
        )
    env.update(extra or {})
    return env


def serve_command() -> list[str]:
    """``dcml-bot serve`` from this interpreter's environment (the console script)."""
    script = Path(sys.executable).parent / "dcml-bot"
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "dcml_bot", "serve"]


def bare_command(port: int, slack_api: str, *, inline: bool, reply: Path | None = None) -> list:
    """The bare Bolt app (bench/bare_bolt_app.py) on ``port``."""
    command = [
        sys.executable,
        str(Path(__file__).resolve().parent / "bare_bolt_app.py"),
        "--port",
        str(port),
        "--api-url",
        slack_api,
    ]
    if inline:
        command.append("--process-before-response")
    if reply is not None:
        command += ["--reply", str(reply)]
    return command


class Child:
    """A child process started by a bench, with its output in a log file; stopped by its pid."""

    def __init__(self, command: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command, env=dict(env), cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.pid = self.process.pid

    def wait_healthy(self, base: str, timeout: float = 60.0, every: float = 0.005) -> float:
        """Poll ``GET /healthz`` until 200; returns seconds since the process was started."""
        split = urlsplit(base)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the child exited ({self.process.returncode}): {self.tail()}")
            try:
                connection = http.client.HTTPConnection(split.hostname, split.port, timeout=5)
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
                connection.close()
                if response.status == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(every)
        raise RuntimeError(f"no healthy /healthz within {timeout} s: {self.tail()}")

    def status(self, field: str) -> int:
        """A ``/proc/<pid>/status`` field in kB (VmRSS, VmHWM …)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def tail(self, lines: int = 15) -> str:
        """The last lines of the child's output."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; only this child's pid."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
