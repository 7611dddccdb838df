"""The ``dcml-bot`` command through its installed entry point."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
GUIDE = ROOT / "config" / "catalog" / "dcml.md"
SCRIPT = Path(sys.executable).parent / "dcml-bot"


def run(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DCML_BOT_")}
    environment.update({"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=60
    )


def test_entry_point_is_installed() -> None:
    assert SCRIPT.exists(), f"console script missing: {SCRIPT}"
    result = run("--help")
    assert result.returncode == 0
    assert "catalog" in result.stdout


def test_check_on_the_default_catalog() -> None:
    result = run("catalog", "check")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "43 items from 48 listings (5 duplicate listings merged)" in out
    assert "essential  43" in out
    assert "LLM and VLM Basic                    20" in out
    assert "config/catalog/dcml.md:125: warning: bare link without a title" in out
    assert "usable: 0 errors, 2 warning(s)" in out


def test_check_reports_errors_with_path_and_line_and_exits_1() -> None:
    path = DATA / "variants" / "unknown_icons.md"
    result = run("catalog", "check", str(path))
    assert result.returncode == 1
    assert f"{path}:6: error: unknown level icon 🔥" in result.stdout
    assert "1 error(s)" in result.stdout


def test_check_refuses_the_mis_encoded_guide() -> None:
    result = run("catalog", "check", str(DATA / "dcml-as-received.txt"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "legacy code page Windows-1254" in lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"# Title\n\nNo entries here.\n", "no reading-list entries found"),
        (b"### S\n- \xff\xfe broken\n", "not UTF-8 text"),
    ],
)
def test_check_bad_files_one_line_no_traceback(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "guide.md"
    path.write_bytes(content)
    result = run("catalog", "check", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_check_missing_path(tmp_path: Path) -> None:
    result = run("catalog", "check", str(tmp_path / "nope.md"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.md'}: no such file"


def test_show_groups_by_section_and_topic() -> None:
    result = run("catalog", "show", "--topic", "rag")
    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "Data Centric LLM and VLM Algorithms › Data Extraction(RAG)"
    assert lines[2].startswith("⚡ 💭 GraphRAG  https://github.com/microsoft/graphrag")
    assert lines[-1] == '4 of 43 items · topic "rag"'


def test_show_json_fields() -> None:
    result = run("catalog", "show", "--level", "essential", "--kind", "course", "--json")
    assert result.returncode == 0
    records = json.loads(result.stdout)
    assert [r["title"] for r in records] == ["MIT DCAI 2024", "华盛顿大学 DCAI"]
    first = records[0]
    for key in ("id", "title", "url", "level", "kinds", "section", "topics", "notes", "line"):
        assert key in first
    assert first["id"] == "url:dcai.csail.mit.edu"
    assert first["kinds"] == ["course"]
    assert first["line"] == 28
    assert first["topics"] == ["数据侧基础"]


def test_show_search_and_bad_options() -> None:
    result = run("catalog", "show", "--search", "华盛顿", "--json")
    assert [r["title"] for r in json.loads(result.stdout)] == ["华盛顿大学 DCAI"]
    result = run("catalog", "show", "--level", "urgent")
    assert result.returncode == 2
    assert "unknown level 'urgent'" in result.stderr
    result = run("catalog", "show", "--search", "nothing-like-this")
    assert result.returncode == 0
    assert 'nothing matches "nothing-like-this"' in result.stdout


def test_config_catalog_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "guide.md").write_bytes(GUIDE.read_bytes())
    (tmp_path / "lab" / "bot.toml").write_text('catalog = "guide.md"\n')
    result = run("--config", str(tmp_path / "lab" / "bot.toml"), "catalog", "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "43 items" in result.stdout
    result = run(
        "catalog",
        "check",
        cwd=tmp_path,
        env={"DCML_BOT_CONFIG": str(tmp_path / "lab" / "bot.toml")},
    )
    assert result.returncode == 0, result.stderr


def test_bad_config_is_named(tmp_path: Path) -> None:
    config = tmp_path / "bot.toml"
    config.write_text('port = "eighty"\n[delivery]\nday = "someday"\n')
    result = run("--config", str(config), "remind", "--dry-run")
    assert result.returncode == 2
    assert f"{config}: port:" in result.stderr
    assert f"{config}: delivery.day:" in result.stderr
    assert "Traceback" not in result.stderr


def test_catalog_commands_read_only_the_catalog_key(tmp_path: Path) -> None:
    # They start without typing the whole config (no pydantic-settings): a bad unrelated key is
    # for the commands that use it, a bad catalog key is named.
    config = tmp_path / "bot.toml"
    config.write_text(f'catalog = "{GUIDE}"\nport = "eighty"\n')
    assert run("--config", str(config), "catalog", "check").returncode == 0
    config.write_text("catalog = ['a.md']\n")
    for command in (["catalog", "check"], ["catalog", "show"]):
        result = run("--config", str(config), *command)
        assert result.returncode == 2
        assert f"{config}: catalog: expected a file path or an http(s) URL" in result.stderr
        assert "Traceback" not in result.stderr


class _GuideHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/dcml.md":
            body = GUIDE.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/markdown; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def guide_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GuideHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_check_a_catalog_url(guide_server: str) -> None:
    result = run("catalog", "check", f"{guide_server}/dcml.md")
    assert result.returncode == 0, result.stderr
    assert "43 items from 48 listings" in result.stdout
    result = run("catalog", "check", f"{guide_server}/missing.md")
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr


# --- logging ---------------------------------------------------------------------------------


def test_debug_is_the_bots_own_unless_log_all(tmp_path: Path) -> None:
    # markdown-it traces every block rule at DEBUG (hundreds of lines per guide parse).
    env = {
        "DCML_BOT_LOG_LEVEL": "DEBUG",
        "DCML_BOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.sqlite3'}",
    }
    own = run("remind", "--dry-run", env=env)
    assert own.returncode == 0, own.stderr
    assert "INFO dcml_bot.core.library: catalog loaded" in own.stderr
    assert "markdown_it" not in own.stderr and "alembic" not in own.stderr
    everything = run("remind", "--dry-run", env={**env, "DCML_BOT_LOG_ALL": "1"})
    assert everything.returncode == 0, everything.stderr
    assert "DEBUG markdown_it.rules_block" in everything.stderr
    assert "INFO dcml_bot.core.library: catalog loaded" in everything.stderr


@pytest.fixture
def kept_logging() -> Iterator[None]:
    """The process's logging as pytest set it, back after a test configures it."""
    from dcml_bot.cli import LIBRARY_LOGGERS

    root = logging.getLogger()
    loggers = [root, *map(logging.getLogger, ("dcml_bot", "uvicorn.error", *LIBRARY_LOGGERS))]
    levels, handlers = [logger.level for logger in loggers], root.handlers[:]
    yield
    root.handlers[:] = handlers
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.mark.parametrize(
    ("level", "log_all", "libraries", "uvicorn"),
    [
        ("DEBUG", None, logging.WARNING, logging.INFO),
        ("DEBUG", "1", logging.DEBUG, logging.DEBUG),
        ("INFO", None, logging.WARNING, logging.INFO),
        ("WARNING", "true", logging.WARNING, logging.WARNING),
        ("ERROR", None, logging.ERROR, logging.ERROR),
    ],
)
def test_configure_logging_follows_the_settings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kept_logging: None,
    level: str,
    log_all: str | None,
    libraries: int,
    uvicorn: int,
) -> None:
    from dcml_bot.cli import configure_logging
    from dcml_bot.settings import load_settings

    monkeypatch.setenv("DCML_BOT_LOG_LEVEL", level)
    if log_all is not None:
        monkeypatch.setenv("DCML_BOT_LOG_ALL", log_all)
    settings = load_settings(ROOT / "config" / "dcml-bot.toml")
    configure_logging(settings.log_level, everything=settings.log_all, timestamps=True)
    assert logging.getLogger("dcml_bot.catalog.parser").getEffectiveLevel() == getattr(
        logging, level
    )
    for name in ("markdown_it.rules_block.list", "slack_bolt.App", "httpx", "a_new_library"):
        assert logging.getLogger(name).getEffectiveLevel() == libraries, name
    assert logging.getLogger("uvicorn.error").getEffectiveLevel() == uvicorn
