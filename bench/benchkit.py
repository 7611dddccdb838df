"""Shared pieces of the benches: fake Slack/Feishu Web APIs, signed requests, child processes.

Not a benchmark itself. The fakes are the tests' (tests/fakes/: ``RateLimitedSlack`` and
``RateLimitedFeishu`` on ``FakeSlack``'s and ``FakeFeishu``'s routes, threads of an ``http.server``
on 127.0.0.1, port 0), counting instead of recording requests, keeping connections alive,
optionally throttled by token buckets the way the real platforms do.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
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
# The fakes are the tests' (tests/fakes/): one route table per platform, rate-limited here.
from fakes.feishu import RateLimitedFeishu  # noqa: E402  (tests/ is on sys.path only from here)
from fakes.slack import (  # noqa: E402
    SLACK_PER_CHANNEL,
    SLACK_REALISTIC,
    RateLimitedSlack,
)
from fakes.slack import signed_headers as slack_signed_headers  # noqa: E402

__all__ = ["SLACK_PER_CHANNEL", "SLACK_REALISTIC", "RateLimitedFeishu", "RateLimitedSlack"]

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
    """Slack's signature headers for a body, signed with the benches' secret (fakes.slack's)."""
    return slack_signed_headers(body, secret=secret, ts=ts)


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
