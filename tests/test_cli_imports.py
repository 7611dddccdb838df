"""The catalog commands stay light: no database, migration tool, chat SDK, web server or scheduler.

Each command runs in a fresh interpreter (through Typer's CliRunner, exactly as the console script
would dispatch it), which then prints the top-level packages it imported. No timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

HEAVY = (
    "sqlalchemy",
    "alembic",
    "pydantic_settings",
    "slack_bolt",
    "slack_sdk",
    "lark_oapi",
    "starlette",
    "uvicorn",
    "apscheduler",
    "prometheus_client",
    "jinja2",
)

PROBE = """
import json, sys
from typer.testing import CliRunner
from dcml_bot.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
heavy = set(json.loads(sys.stdin.read()))
loaded = sorted({name.split(".")[0] for name in sys.modules} & heavy)
print(json.dumps({"exit": result.exit_code, "output": result.output, "loaded": loaded}))
"""


def imported_by(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``dcml-bot ARGS`` in a fresh interpreter; its exit code, output and heavy imports."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DCML_BOT_")}
    environment.update({"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=ROOT,
        env=environment,
        input=json.dumps(HEAVY),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize(
    "args",
    [
        ("catalog", "show", "--level", "essential"),
        ("catalog", "show", "--topic", "rag", "--json"),
        ("catalog", "check"),
    ],
)
def test_catalog_commands_import_no_database_sdk_or_server(args: tuple[str, ...]) -> None:
    report = imported_by(*args)
    assert report["exit"] == 0, report["output"]
    assert report["output"]  # the command did its work
    assert report["loaded"] == []


def test_the_probe_sees_heavy_imports(tmp_path: Path) -> None:
    # The same probe on a command that opens the database does report SQLAlchemy.
    report = imported_by(
        "remind", "--dry-run", env={"DCML_BOT_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}"}
    )
    assert report["exit"] == 0, report["output"]
    assert "sqlalchemy" in report["loaded"]  # type: ignore[operator]
