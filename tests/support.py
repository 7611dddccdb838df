"""Helpers for the bot-level tests: a recording messenger, a movable clock, small catalogs."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine

from dcml_bot.app import build_bot
from dcml_bot.core.bot import Bot
from dcml_bot.core.outbound import SendError
from dcml_bot.core.reply import Reply, render_plain
from dcml_bot.settings import Settings, load_settings
from dcml_bot.store import open_store
from dcml_bot.store.database import alembic_config

UTC = dt.UTC
# Monday 2026-11-30 (ISO week 2026-W49); the slot is 10:00 Asia/Shanghai = 02:00 UTC.
MONDAY_SLOT = dt.datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
WEEK = "2026-W49"
NEXT_WEEK = "2026-W50"
CONFIG = Path(__file__).resolve().parent.parent / "config" / "dcml-bot.toml"


class Recorder:
    """An in-memory ``Messenger`` for platform "local": records every DM, thread-safely."""

    platform = "local"
    resend_window = None  # find_sent always tells

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: list[tuple[str, Reply, str]] = []  # (user_id, reply, key) that went out
        self.attempts: list[tuple[str, str]] = []  # every send_dm call: (user_id, key)
        self.fail: dict[str, SendError] = {}  # user_id -> error to raise
        self.crash_after_send: set[str] = set()  # user ids whose send "crashes" after sending
        self.find_calls: list[tuple[str, str]] = []

    def send_dm(self, user_id: str, reply: Reply, *, key: str) -> str:
        with self.lock:
            self.attempts.append((user_id, key))
            if user_id in self.fail:
                raise self.fail[user_id]
            self.sent.append((user_id, reply, key))
            message_id = f"m{len(self.sent)}"
            if user_id in self.crash_after_send:
                raise RuntimeError("process died after sending")
            return message_id

    def find_sent(self, user_id: str, key: str) -> str | None:
        with self.lock:
            self.find_calls.append((user_id, key))
            for index, (uid, _, k) in enumerate(self.sent, start=1):
                if uid == user_id and k == key:
                    return f"m{index}"
            return None

    def to(self, user_id: str) -> list[Reply]:
        """Replies sent to one user."""
        with self.lock:
            return [reply for uid, reply, _ in self.sent if uid == user_id]

    def keys(self, user_id: str) -> list[str]:
        """Keys of messages sent to one user."""
        with self.lock:
            return [key for uid, _, key in self.sent if uid == user_id]


class Clock:
    """A movable clock."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> dt.datetime:
        self.now = self.now + dt.timedelta(**kwargs)
        return self.now


def make_settings(db_url: str, *, catalog: Path | str | None = None, **update: object) -> Settings:
    """The test settings on ``db_url``; ``local:boss`` is an admin."""
    update = {"database_url": db_url, "admins": ["local:boss"], **update}
    if catalog is not None:
        update["catalog"] = str(catalog)
    return load_settings(CONFIG).model_copy(update=update)


def lab_settings(db_url: str, **changes: object) -> Settings:
    """The local lab alone (no Slack, no Feishu secrets): the lab clock can move."""
    update: dict[str, object] = {
        "database_url": db_url,
        "slack_bot_token": None,
        "slack_signing_secret": None,
        "slack_app_token": None,
        "feishu_app_id": None,
        "feishu_app_secret": None,
        **changes,
    }
    return load_settings(CONFIG).model_copy(update=update)


def database_at(db_url: str, revision: str) -> Engine:
    """A migrated database taken back down to ``revision`` (an older bot's schema); its engine."""
    from alembic import command

    open_store(db_url).dispose()
    engine = sa.create_engine(db_url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    return engine


def make_bot(
    db_url: str,
    recorder: Recorder,
    clock: Clock,
    *,
    catalog: Path | None = None,
    worker: str | None = None,
) -> Bot:
    """A bot on ``db_url`` talking through ``recorder``; ``local:boss`` is an admin."""
    settings = make_settings(db_url, catalog=catalog)
    return build_bot(settings, messengers={"local": recorder}, clock=clock, worker=worker)


def item_line(level: str, title: str, number: int) -> str:
    """A catalog list item; level is one of ⚡ 💎 💡 (or anything, to break it)."""
    return f"- `{level}` 📄 [{title}](https://arxiv.org/abs/2301.{number:05d})"


def write_catalog(path: Path, sections: Iterable[tuple[str, Iterable[str]]]) -> Path:
    """Write a small catalog: ``[(section, [item lines])]``."""
    lines = ["# Test guide", ""]
    for name, items in sections:
        lines += [f"### {name}", "", *items, ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def text_of(reply: Reply) -> str:
    """The plain-text rendering of a reply."""
    return render_plain(reply)


# Friday 2026-12-04 17:00 Asia/Shanghai: the digest's slot (16:00) of 2026-W49 has passed.
FRIDAY = MONDAY_SLOT + dt.timedelta(days=4, hours=7)


ALPHA, BETA, GAMMA = "arxiv:2301.00001", "arxiv:2301.00002", "arxiv:2301.00003"


GUIDE = [
    ("Basics", [item_line("⚡", "Alpha Paper", 1), item_line("⚡", "Beta Paper", 2)]),
    ("More", [item_line("💎", "Gamma Paper", 3), item_line("💎", "Delta Paper", 4)]),
]


LEVELS = ("⚡", "💎", "💡")


def synthetic_guide(path: Path) -> Path:
    lines = ["# Synthetic guide", "", "> 注:⚡为**基础必读**,💎为**基础选读**,💡为**进阶阅读**", ""]
    for topic in range(20):
        if topic % 5 == 0:
            lines += [f"### Section {topic // 5}", ""]
        lines += ["<details open>", "<summary>", "", f"##### Topic{topic:02d} area", ""]
        lines += ["</summary>", ""]
        for index in range(25):
            n = topic * 25 + index
            title = (
                f"Paper {n} on A & B \\<!channel\\> | y > z "
                + "with a rather long descriptive title " * 6
                + f"zebra{n % 7}"
            )
            url = f"https://arxiv.org/abs/2310.{n:05d}"
            lines.append(f"- `{LEVELS[index % 3]}` 📄+🔧 [{title}]({url})")
        lines += ["", "</details>", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
