"""``dcml-bot console`` and ``dcml-bot remind`` through the entry point, on the local platform."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "dcml-bot"


def run(db: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCML_BOT_")}
    env.update({"DCML_BOT_DATABASE_URL": f"sqlite:///{db}", "COLUMNS": "200", "NO_COLOR": "1"})
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def local_keys(db: Path) -> list[str]:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT key FROM local_messages ORDER BY id")).all()
    engine.dispose()
    return [row[0] for row in rows]


def test_console_join_click_week_and_state_kept(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    session = (
        ":join alice\n:join alice\n:click 1\n/dcml progress\n:as bob\n/dcml start\n:week\n:quit\n"
    )
    result = run(db, "console", stdin=session)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("Welcome to the lab, alice!") == 1  # the second :join sends nothing
    assert "alice joined the lab (already)" in out
    assert "Marked as read: MIT DCAI 2024" in out
    assert "essential: 1 of 43 read" in out
    assert "You are enrolled" in out
    assert "📩 DM to bob:" in out and "Your paper for" in out
    keys = local_keys(db)
    assert sum(k.startswith("welcome:local:alice") for k in keys) == 1
    assert sum(k.startswith("weekly:local:bob:") for k in keys) == 1
    # A new process on the same database remembers everything.
    again = run(db, "console", "--as", "alice", stdin="/dcml progress\n")
    assert "essential: 1 of 43 read" in again.stdout


def test_remind_once_per_week_dry_run_and_bad_week(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    run(db, "console", stdin=":as ann\n/dcml start\n:as ben\n/dcml start\n:as cid\n")
    dry = run(db, "remind", "--week", "2026-W50", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing sent" in dry.stdout and "would-send: 2" in dry.stdout
    assert local_keys(db) == []
    first = run(db, "remind", "--week", "2026-W50")
    assert "2 enrolled member(s); sent: 2" in first.stdout
    second = run(db, "remind", "--week", "2026-W50")
    assert "already: 2" in second.stdout
    assert sorted(local_keys(db)) == ["weekly:local:ann:2026-W50", "weekly:local:ben:2026-W50"]
    bad = run(db, "remind", "--week", "2026-W99")
    assert bad.returncode == 2
    assert "2026 has no week 99" in bad.stderr and "Traceback" not in bad.stderr
