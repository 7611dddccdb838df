"""Typed settings: the TOML config file, ``DCML_BOT_*`` env overrides, secrets from env only."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as UnparsedEnv

from dcml_bot.catalog.loader import FetchLimits
from dcml_bot.catalog.tracks import name_problem as track_name_problem
from dcml_bot.config import (
    ENV_PREFIX,
    MIN_CATALOG_BYTES,
    SECRET_ENV,
    SettingsError,
    env_value,
    is_url,
    packaged_guide,
    read_config,
)

HOME_ENV = "DCML_BOT_HOME"
APP_NAME = "dcml-bot"
DATABASE_FILE = "dcml-bot.sqlite3"

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Language = Literal["en", "zh"]


def data_home() -> Path:
    """Where the bot keeps its data: ``$DCML_BOT_HOME``, else the platform's user data directory."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser().absolute()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_database_url() -> str:
    """The SQLite database in :func:`data_home`, used unless ``database_url`` is set."""
    return f"sqlite:///{data_home() / DATABASE_FILE}"


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
        ) from None
    return value


class DeliverySettings(BaseModel):
    """When the weekly paper goes out."""

    model_config = ConfigDict(extra="forbid")

    day: Weekday = "mon"
    time: dt.time = Field(default=dt.time(10, 0))
    catch_up: bool = True


class DigestSettings(BaseModel):
    """The lab channel's weekly digest (on when ``channel`` is set) and who may be named."""

    model_config = ConfigDict(extra="forbid")

    channel: str | None = None  # a Slack channel id (C…) or a Feishu chat id (oc_…)
    day: Weekday = "fri"
    time: dt.time = Field(default=dt.time(16, 0))
    mention: bool = False  # name members with a mention (a ping) instead of plain names
    share_progress: bool = True  # the default of ``/dcml share on|off``


class SlackSettings(BaseModel):
    """Slack options that are not secrets."""

    model_config = ConfigDict(extra="forbid")

    language: Language = "en"
    channels: list[str] = Field(default_factory=list)


class FeishuSettings(BaseModel):
    """Feishu / Lark options that are not secrets."""

    model_config = ConfigDict(extra="forbid")

    language: Language = "zh"
    groups: list[str] = Field(default_factory=list)
    mode: Literal["webhook", "websocket"] = "webhook"
    welcome_new_users: bool = False


class TrackSettings(BaseModel):
    """A ``[tracks.<name>]`` table: a direction guide, or changes to one the index links."""

    model_config = ConfigDict(extra="forbid")

    catalog: str | None = None
    title: str | None = None
    channels: list[str] = Field(default_factory=list)  # Slack channels whose joiners get it
    groups: list[str] = Field(default_factory=list)  # Feishu chats whose joiners get it


class LocalSettings(BaseModel):
    """The built-in local platform."""

    model_config = ConfigDict(extra="forbid")

    enabled: Literal["auto", "on", "off"] = "auto"
    language: Language = "en"
    hosts: list[str] = Field(default_factory=list)  # names it answers to besides loopback's
    token: SecretStr | None = None  # DCML_BOT_LOCAL__TOKEN, from the environment only

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            name = host.strip()
            if " " in name or urlsplit(f"//{name}").hostname != name.strip("[]").lower():
                raise ValueError(
                    f"expected a host name or address without scheme or port "
                    f"(lab.example.org, 192.168.1.5, [fd00::5]), got {host!r}"
                )
        return [host.strip().lower() for host in value]

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and env_value("local__token") != value.get_secret_value():
            raise ValueError(
                "secrets are read from the environment only; "
                "remove it from the file and set DCML_BOT_LOCAL__TOKEN instead"
            )
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("empty: set a long random value, or unset the variable")
        return value


class Settings(BaseSettings):
    """Every setting of the bot, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    catalog: str = Field(default_factory=packaged_guide)
    database_url: str = Field(default_factory=default_database_url)
    timezone: str = "Asia/Shanghai"
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    # A request's head, then its body, must each arrive within this; beyond http_max_connections
    # open connections, new ones get 503 at once (fewer when the open-file limit is low).
    http_timeout_seconds: float = Field(default=10.0, gt=0, le=300, allow_inf_nan=False)
    http_max_connections: int = Field(default=256, ge=1)
    # /healthz fails ("disk") when the SQLite database's file system has less free space.
    disk_min_free_mb: int = Field(default=64, ge=0)
    admins: list[str] = Field(default_factory=list)
    language: Language = "en"
    catalog_refresh_minutes: int = Field(default=60, ge=0)
    catalog_max_bytes: int = Field(default=FetchLimits().max_bytes, ge=MIN_CATALOG_BYTES)
    catalog_deadline_seconds: float = Field(
        default=FetchLimits().deadline, gt=0, allow_inf_nan=False
    )
    catalog_redirect_hosts: list[str] = Field(default_factory=list)
    link_base: str | None = None
    tracks: dict[str, TrackSettings] = Field(default_factory=dict)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_all: bool = False  # log_level for the libraries' loggers too, not only the bot's
    slack_api_url: str = "https://slack.com/api/"
    feishu_domain: str = "https://open.feishu.cn"
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    digest: DigestSettings = Field(default_factory=DigestSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    feishu: FeishuSettings = Field(default_factory=FeishuSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)

    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET")
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN")
    )
    feishu_app_id: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("FEISHU_APP_ID")
    )
    feishu_app_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("FEISHU_APP_SECRET")
    )
    feishu_verification_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("FEISHU_VERIFICATION_TOKEN")
    )
    feishu_encrypt_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("FEISHU_ENCRYPT_KEY")
    )

    config_path: Path | None = Field(default=None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment beats the config file, which arrives as init data."""
        return (env_settings, init_settings)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("link_base")
    @classmethod
    def _link_base(cls, value: str | None) -> str | None:
        if value is not None and not is_url(value):
            raise ValueError(f"expected the guides' web address (an http(s) URL), got {value!r}")
        return value

    @field_validator("tracks")
    @classmethod
    def _track_names(cls, value: dict[str, TrackSettings]) -> dict[str, TrackSettings]:
        for name in value:
            problem = track_name_problem(name)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("slack_api_url", "feishu_domain")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("feishu_domain")
    @classmethod
    def _origin_only(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ValueError(
                f"expected an origin such as https://open.feishu.cn (no path), got {value!r}"
            )
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(
                f"expected an SQLAlchemy URL such as sqlite:///var/dcml-bot.sqlite3, got {value!r}"
            )
        return value

    @property
    def data_location(self) -> str:
        """Where the data lives, for a start-up line: the SQLite file, else the URL, no password."""
        scheme, _, rest = self.database_url.partition("://")
        if scheme.split("+")[0] == "sqlite":
            database = rest[1:].split("?")[0]
            if database in {"", ":memory:"} or database.startswith("file:"):
                return self.database_url
            return str(Path(database).expanduser().absolute())
        parts = urlsplit(self.database_url)
        if parts.password is not None:
            user = parts.netloc.rpartition("@")[0].partition(":")[0]
            host = parts.netloc.rpartition("@")[2]
            return parts._replace(netloc=f"{user}:***@{host}").geturl()
        return self.database_url

    @property
    def catalog_is_url(self) -> bool:
        """True when the catalog is fetched over http(s)."""
        return is_url(self.catalog)

    @property
    def catalog_path(self) -> Path:
        """The catalog file (relative paths from the config file were resolved at load)."""
        return Path(self.catalog).expanduser()

    @property
    def catalog_limits(self) -> FetchLimits:
        """What one catalog download may take (the catalog commands read the same keys)."""
        return FetchLimits(
            max_bytes=self.catalog_max_bytes,
            deadline=self.catalog_deadline_seconds,
            redirect_hosts=frozenset(host.lower() for host in self.catalog_redirect_hosts),
        )

    @property
    def slack_enabled(self) -> bool:
        """Slack is on when its bot token and signing secret (or app token) are set."""
        return self.slack_bot_token is not None and (
            self.slack_signing_secret is not None or self.slack_app_token is not None
        )

    @property
    def feishu_enabled(self) -> bool:
        """Feishu is on when its app id and secret are set."""
        return self.feishu_app_id is not None and self.feishu_app_secret is not None

    @property
    def local_enabled(self) -> bool:
        """The local platform runs when asked, or when no chat platform is configured."""
        if self.local.enabled == "auto":
            return not (self.slack_enabled or self.feishu_enabled)
        return self.local.enabled == "on"


def _from_env(key: str) -> bool:
    return env_value(key) is not None


def _describe_error(error: Any, file_keys: set[str], origin: str) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    key = ".".join(loc) or "?"
    top = loc[0] if loc else ""
    if top.upper() in SECRET_ENV.values():
        where = f"environment variable {top.upper()}"
    elif top in file_keys and not _from_env(key.replace(".", "__")):
        where = f"{origin}: {key}"
    else:
        where = f"environment variable {ENV_PREFIX}{key.replace('.', '__').upper()}"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown setting (check the spelling; see config/dcml-bot.toml for every key)"
    return f"{where}: {message}"


def load_settings(config: Path | None = None) -> Settings:
    """Build Settings from the config file and environment; raises SettingsError with specifics."""
    file = read_config(config)
    try:
        settings = Settings(**file.data)
    except ValidationError as exc:
        problems = "; ".join(
            _describe_error(err, set(file.data), file.origin) for err in exc.errors()
        )
        raise SettingsError(problems) from None
    except UnparsedEnv as exc:  # a list or table from the environment that is not JSON
        name = str(exc).split('"')[1] if str(exc).count('"') >= 2 else "?"
        raise SettingsError(
            f"environment variable {ENV_PREFIX}{name.upper()}: expected JSON, "
            'e.g. ["a", "b"] for a list'
        ) from None
    return settings.model_copy(update={"config_path": file.path})
