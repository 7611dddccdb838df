"""Installable: the packaged defaults, ``dcml-bot init``, and the built wheel run from elsewhere."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from dcml_bot.cli import LIBRARY_LOGGERS, app
from dcml_bot.config import PACKAGED_CONFIG, PACKAGED_GUIDE, packaged_file

ROOT = Path(__file__).resolve().parent.parent
REPO_CONFIG = ROOT / "config" / "dcml-bot.toml"
REPO_GUIDE = ROOT / "config" / "catalog" / "dcml.md"
# The one difference between the two configs: this checkout keeps its data in var/ (`make run`),
# an installed bot in its data directory.
PACKAGED_DATABASE = '# database_url = "sqlite:////srv/dcml-bot/dcml-bot.sqlite3"\n'
REPO_DATABASE = (
    "# This checkout keeps its data in var/ (what `make run` uses).\n"
    'database_url = "sqlite:///var/dcml-bot.sqlite3"\n'
)
PLATFORM_ENV = ("DCML_BOT_", "SLACK_", "FEISHU_", "XDG_")


def test_packaged_guide_is_the_repo_guide() -> None:
    assert packaged_file(PACKAGED_GUIDE).read_bytes() == REPO_GUIDE.read_bytes(), (
        "src/dcml_bot/defaults/dcml.md and config/catalog/dcml.md differ: copy the edited one over"
    )


def test_packaged_config_is_the_repo_config() -> None:
    packaged = packaged_file(PACKAGED_CONFIG).read_text(encoding="utf-8")
    assert packaged.count(PACKAGED_DATABASE) == 1
    assert 'catalog = "catalog/dcml.md"\n' in packaged  # what `init` writes next to it
    assert packaged.replace(PACKAGED_DATABASE, REPO_DATABASE) == REPO_CONFIG.read_text(
        encoding="utf-8"
    ), (
        "src/dcml_bot/defaults/dcml-bot.toml and config/dcml-bot.toml differ beyond database_url: "
        "copy the edited one over"
    )


# --- dcml-bot init, in process ---------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str, str]:
    # The CLI sets up the process's logging (cli.configure_logging); give pytest's back after.
    root = logging.getLogger()
    loggers = [root, *map(logging.getLogger, ("dcml_bot", "uvicorn.error", *LIBRARY_LOGGERS))]
    levels, handlers = [logger.level for logger in loggers], root.handlers[:]
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        root.handlers[:] = handlers
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    return result.exit_code, result.stdout, result.stderr


def test_init_writes_refuses_and_forces(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    code, out, _ = invoke("init", str(lab))
    assert code == 0
    config, guide = lab / "dcml-bot.toml", lab / "catalog" / "dcml.md"
    assert config.read_bytes() == packaged_file(PACKAGED_CONFIG).read_bytes()
    assert guide.read_bytes() == REPO_GUIDE.read_bytes()
    assert f"dcml-bot --config {config} serve" in out
    assert f"DCML_BOT_CONFIG={config}" in out

    config.write_text("# our own\n", encoding="utf-8")
    guide.unlink()
    code, out, err = invoke("init", str(lab))
    assert code == 1
    assert err.strip() == (f"error: {config} already exists; nothing written (--force overwrites)")
    assert config.read_text(encoding="utf-8") == "# our own\n"
    assert not guide.exists()  # nothing written, not even the missing file

    code, _, _ = invoke("init", str(lab), "--force")
    assert code == 0
    assert config.read_bytes() == packaged_file(PACKAGED_CONFIG).read_bytes()
    assert guide.read_bytes() == REPO_GUIDE.read_bytes()


def test_init_defaults_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, _ = invoke("init")
    assert code == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "catalog",
        "catalog/dcml.md",
        "dcml-bot.toml",
    ]
    code, _, err = invoke("init")
    assert code == 1
    assert "dcml-bot.toml and catalog/dcml.md already exist" in err


# --- the wheel, installed into a fresh venv and run from another directory ---------------------


class Installed:
    """A venv holding only the built wheel and its dependencies."""

    def __init__(self, venv: Path, work: Path) -> None:
        self.script = venv / "bin" / "dcml-bot"
        self.cwd = work / "elsewhere"
        self.home = work / "home"
        self.data = work / "data"
        self.cwd.mkdir()

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith(PLATFORM_ENV)}
        env.update(HOME=str(self.home), DCML_BOT_HOME=str(self.data), COLUMNS="200", NO_COLOR="1")
        env.update(extra)
        return {k: v for k, v in env.items() if v}  # an empty value removes the variable

    def run(self, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.script), *args],
            cwd=self.cwd,
            env=self.env(**env),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    # Build from a copy of what the wheel is made of, so the checkout gets no build/ or egg-info.
    tree = work / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(
        ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(tree)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("dcml_bot-*.whl")
    venv = work / "venv"
    # A fresh venv; this venv's pip installs into it (quicker than bootstrapping a pip there),
    # taking the dependencies from the configured package index.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            "--no-compile",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return Installed(venv, work)


def test_wheel_catalog_show_uses_the_packaged_guide(installed: Installed) -> None:
    result = installed.run("catalog", "show", "--level", "essential")
    assert result.returncode == 0, result.stderr
    assert "GraphRAG  https://github.com/microsoft/graphrag" in result.stdout
    assert result.stdout.rstrip().endswith("43 of 43 items · essential")
    result = installed.run("catalog", "check")
    assert result.returncode == 0, result.stderr
    assert "defaults/dcml.md" in result.stdout and "site-packages" in result.stdout
    assert "usable: 0 errors" in result.stdout


def test_wheel_remind_creates_the_database_in_the_data_directory(installed: Installed) -> None:
    result = installed.run("remind", "--dry-run", DCML_BOT_HOME="")
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing sent" in result.stdout
    # Without DCML_BOT_HOME: the user data directory (XDG on Linux, under $HOME here).
    database = installed.home / ".local" / "share" / "dcml-bot" / "dcml-bot.sqlite3"
    assert f"data: {database}" in result.stderr.splitlines()
    assert database.is_file()
    assert not any(installed.cwd.iterdir())  # nothing left in the working directory


def test_wheel_console(installed: Installed) -> None:
    session = ":help\n:join alice\nessential\n/dcml progress\n:quit\n"
    result = installed.run("console", "--as", "alice", stdin=session)
    assert result.returncode == 0, result.stderr
    database = installed.data / "dcml-bot.sqlite3"
    assert f"data: {database}" in result.stderr.splitlines()
    assert database.is_file()
    out = result.stdout
    assert ":join NAME" in out  # the help
    assert "Welcome to the lab, alice!" in out
    assert "MIT DCAI 2024" in out  # an essential paper
    assert "essential: 0 of 43 read" in out
    assert not any(installed.cwd.iterdir())


def test_wheel_serve_answers_healthz(installed: Installed) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = installed.cwd.parent / "serve.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [str(installed.script), "serve", "--port", str(port)],
            cwd=installed.cwd,
            env=installed.env(DCML_BOT_HOME=str(installed.data / "served")),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        response = None
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert response is not None, "serve did not answer /healthz:\n" + log.read_text()
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ok"
        assert body["catalog"]["items"] == 43
        assert body["catalog"]["source"].endswith("dcml.md")
        assert body["platforms"] == ["local"]
        assert body["database"]["reachable"] is True and body["database"]["writable"] is True
        assert body["database"]["disk"]["path"].endswith("served")  # the data dir's free space
        assert body["failed"] == [] and body["scheduler"]["stale"] is False
        assert (installed.data / "served" / "dcml-bot.sqlite3").is_file()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    assert code in (0, -signal.SIGTERM), log.read_text()
    text = log.read_text()
    assert f"data: {installed.data / 'served' / 'dcml-bot.sqlite3'}" in text.splitlines()
    assert "Application shutdown complete" in text


def test_wheel_init_then_config(installed: Installed) -> None:
    lab = installed.cwd.parent / "lab"
    result = installed.run("init", str(lab))
    assert result.returncode == 0, result.stderr
    config, guide = lab / "dcml-bot.toml", lab / "catalog" / "dcml.md"
    assert f"dcml-bot --config {config} serve" in result.stdout
    # The lab edits its copy; the bot reads that one (catalog = "catalog/dcml.md"), from anywhere.
    guide.write_text(
        guide.read_text(encoding="utf-8")
        + "\n\n### Our own\n\n- `⚡` 📄 [Lab Paper](https://example.org/p)\n",
        encoding="utf-8",
    )
    result = installed.run("--config", str(config), "catalog", "check")
    assert result.returncode == 0, result.stderr
    assert f"({guide})" in result.stdout
    assert "44 items from 49 listings" in result.stdout
