"""Settings: file values, env overrides, env-only secrets, errors naming key and file."""

from __future__ import annotations

import datetime as dt
import sys
import typing
from pathlib import Path

import pytest

from dcml_bot.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("DCML_BOT_", "SLACK_", "FEISHU_")):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_matches_the_defaults() -> None:
    settings = load_settings(ROOT / "config" / "dcml-bot.toml")
    assert Path(settings.catalog) == ROOT / "config" / "catalog" / "dcml.md"
    assert settings.database_url == "sqlite:///var/dcml-bot.sqlite3"
    assert settings.timezone == "Asia/Shanghai"
    assert (settings.host, settings.port) == ("127.0.0.1", 3000)
    assert (settings.delivery.day, settings.delivery.time) == ("mon", dt.time(10, 0))
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.feishu_domain == "https://open.feishu.cn"
    assert settings.local_enabled and not settings.slack_enabled and not settings.feishu_enabled


def test_every_field_is_documented_in_the_shipped_config() -> None:
    from dcml_bot.config import SECRET_ENV
    from dcml_bot.settings import Settings

    text = (ROOT / "config" / "dcml-bot.toml").read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        if name in SECRET_ENV:
            assert SECRET_ENV[name] in text
        elif name != "config_path":
            assert any(f in text for f in (f"{name} = ", f"[{name}]", f"[{name}.")), name
            # A table, or tables by name (dict[str, Model]): every key of it is shown too.
            model = field.annotation
            if typing.get_origin(model) is dict:
                model = typing.get_args(model)[1]
            if model is not None and hasattr(model, "model_fields"):
                for sub in model.model_fields:
                    assert f"{sub} = " in text, f"{name}.{sub}"


def test_env_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'port = 4000\ntimezone = "Europe/Berlin"\n[delivery]\ntime = "09:30"\n')
    monkeypatch.setenv("DCML_BOT_PORT", "5000")
    monkeypatch.setenv("DCML_BOT_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1/db")
    monkeypatch.setenv("DCML_BOT_DELIVERY__DAY", "fri")
    monkeypatch.setenv("DCML_BOT_SLACK_API_URL", "http://127.0.0.1:9/api")
    settings = load_settings(path)
    assert settings.port == 5000
    assert settings.timezone == "Europe/Berlin"
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert (settings.delivery.day, settings.delivery.time) == ("fri", dt.time(9, 30))
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"


def test_catalog_from_env_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, 'catalog = "guide.md"\n')
    assert load_settings(path).catalog == str(tmp_path / "guide.md")
    monkeypatch.setenv("DCML_BOT_CATALOG", "other.md")
    assert load_settings(path).catalog == "other.md"
    monkeypatch.setenv("DCML_BOT_CATALOG", "https://example.org/guide.md")
    assert load_settings(path).catalog_is_url


def test_secrets_come_from_env_and_enable_platforms(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path, "")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-token")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "shh")
    settings = load_settings(path)
    assert settings.slack_enabled and not settings.local_enabled
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-secret-token"
    assert "xoxb-secret-token" not in repr(settings)
    monkeypatch.setenv("FEISHU_APP_ID", "cli_x")
    monkeypatch.setenv("FEISHU_APP_SECRET", "s")
    assert load_settings(path).feishu_enabled


def test_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'SLACK_BOT_TOKEN = "xoxb-1"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert str(info.value).startswith(
        f"{path}: SLACK_BOT_TOKEN: secrets are read from the environment"
    )
    assert "xoxb-1" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('port = "eighty"', "bot.toml: port: Input should be a valid integer"),
        ("port = 70000", "bot.toml: port: Input should be less than or equal to 65535"),
        ('timezone = "Mars/Olympus"', "bot.toml: timezone: unknown time zone 'Mars/Olympus'"),
        ('colour = "blue"', "bot.toml: colour: unknown setting"),
        ('[delivery]\nday = "monday"', "bot.toml: delivery.day: Input should be 'mon'"),
        ('[delivery]\ntime = "25:00"', "bot.toml: delivery.time:"),
        ('[feishu]\nmode = "carrier-pigeon"', "bot.toml: feishu.mode:"),
        ('database_url = "var/db.sqlite"', "bot.toml: database_url: expected an SQLAlchemy URL"),
        ('slack_api_url = "slack.com"', "bot.toml: slack_api_url: expected an http(s) URL"),
        (
            'feishu_domain = "https://open.feishu.cn/open-apis"',
            "bot.toml: feishu_domain: expected an origin such as https://open.feishu.cn",
        ),
        ("port = ", "bot.toml: invalid TOML: Invalid value (at line 1, column 8)"),
    ],
)
def test_file_errors_name_the_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_env_errors_name_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCML_BOT_TIMEZONE", "Nowhere/Town")
    with pytest.raises(
        SettingsError, match="environment variable DCML_BOT_TIMEZONE: unknown time zone"
    ):
        load_settings(write(tmp_path, ""))


def test_lark_origin_is_normalised(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, 'feishu_domain = "https://open.larksuite.com/"\n'))
    assert settings.feishu_domain == "https://open.larksuite.com"


def test_missing_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="config file not found"):
        load_settings(tmp_path / "none.toml")
    monkeypatch.setenv("DCML_BOT_CONFIG", str(tmp_path / "env.toml"))
    with pytest.raises(SettingsError, match=r"env\.toml: config file not found"):
        load_settings()


def test_without_a_config_file_the_packaged_guide_and_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcml_bot.config import packaged_guide

    monkeypatch.chdir(tmp_path)  # no ./config/dcml-bot.toml here
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    settings = load_settings()
    assert settings.config_path is None
    assert settings.catalog == packaged_guide()
    assert Path(settings.catalog).read_bytes() == (ROOT / "config/catalog/dcml.md").read_bytes()
    if sys.platform.startswith("linux"):
        database = tmp_path / "home" / ".local" / "share" / "dcml-bot" / "dcml-bot.sqlite3"
        assert settings.database_url == f"sqlite:///{database}"
        assert settings.data_location == str(database)
    monkeypatch.setenv("DCML_BOT_HOME", "data")  # relative: to the working directory, made absolute
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'dcml-bot.sqlite3'}"
    assert settings.data_location == str(tmp_path / "data" / "dcml-bot.sqlite3")


def test_an_explicit_database_url_beats_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DCML_BOT_HOME", str(tmp_path / "data"))
    path = write(tmp_path, 'database_url = "sqlite:///var/bot.sqlite3"\n')
    monkeypatch.chdir(tmp_path)
    settings = load_settings(path)
    assert settings.database_url == "sqlite:///var/bot.sqlite3"
    assert settings.data_location == str(tmp_path / "var" / "bot.sqlite3")
    monkeypatch.setenv("DCML_BOT_DATABASE_URL", "postgresql+psycopg://dcml:secret@db:5432/dcml")
    settings = load_settings(path)
    assert settings.database_url == "postgresql+psycopg://dcml:secret@db:5432/dcml"
    assert settings.data_location == "postgresql+psycopg://dcml:***@db:5432/dcml"


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ('catalog = "guide.md"\n', None),
        ('catalog = "guide.md"\n', "other.md"),
        ('catalog = "/srv/lab/guide.md"\n', None),
        ('catalog = "https://example.org/guide.md"\n', None),
        ("", None),
        ("", "https://example.org/env.md"),
    ],
)
def test_the_catalog_commands_find_the_guide_the_settings_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: str | None
) -> None:
    # `catalog show/check` read the location without building Settings (no pydantic at start).
    from dcml_bot.config import catalog_location, read_config

    path = write(tmp_path, text)
    if env is not None:
        monkeypatch.setenv("dcml_bot_catalog", env)  # any case, as pydantic-settings reads it
    assert catalog_location(read_config(path)) == load_settings(path).catalog


def test_the_catalog_commands_refuse_a_catalog_that_is_not_text(tmp_path: Path) -> None:
    from dcml_bot.config import catalog_location, read_config

    path = write(tmp_path, "catalog = 3\n")
    with pytest.raises(SettingsError, match="catalog: expected a file path or an http"):
        catalog_location(read_config(path))
    with pytest.raises(SettingsError, match="catalog"):
        load_settings(path)


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("", {}),
        (
            "catalog_max_bytes = 1048576\ncatalog_deadline_seconds = 2.5\n"
            "catalog_redirect_hosts = ['Raw.Example.org']\n",
            {},
        ),
        (
            "catalog_max_bytes = 1048576\ncatalog_deadline_seconds = 9\n",
            {
                "DCML_BOT_CATALOG_MAX_BYTES": "2048",
                "dcml_bot_catalog_deadline_seconds": "7.5",
                "DCML_BOT_CATALOG_REDIRECT_HOSTS": '["a.example.org"]',
            },
        ),
    ],
)
def test_the_catalog_commands_fetch_within_the_limits_the_settings_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict[str, str]
) -> None:
    from dcml_bot.config import fetch_limits, read_config

    path = write(tmp_path, text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    limits = fetch_limits(read_config(path))
    assert limits == load_settings(path).catalog_limits
    if env:
        assert (limits.max_bytes, limits.deadline) == (2048, 7.5)


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("catalog_max_bytes = 5\n", {}, "catalog_max_bytes"),  # MiB meant, bytes read
        ("catalog_max_bytes = 'lots'\n", {}, "catalog_max_bytes"),
        ("catalog_max_bytes = 2048.5\n", {}, "catalog_max_bytes"),
        ("catalog_deadline_seconds = 0\n", {}, "catalog_deadline_seconds"),
        ("", {"DCML_BOT_CATALOG_DEADLINE_SECONDS": "inf"}, "DCML_BOT_CATALOG_DEADLINE_SECONDS"),
        ("catalog_redirect_hosts = 'a.org'\n", {}, "catalog_redirect_hosts"),
        ("", {"DCML_BOT_CATALOG_REDIRECT_HOSTS": "a.org"}, "DCML_BOT_CATALOG_REDIRECT_HOSTS"),
    ],
)
def test_bad_limits_are_refused_by_both_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict[str, str], named: str
) -> None:
    from dcml_bot.config import fetch_limits, read_config

    path = write(tmp_path, text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=named):
        fetch_limits(read_config(path))
    with pytest.raises(SettingsError, match=named):
        load_settings(path)
