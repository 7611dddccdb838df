"""The config file before typing: where it is, its TOML, and the rules every key obeys in it.

Kept free of pydantic so that commands needing only the guide's location (``catalog show``,
``catalog check``) start quickly; :mod:`dcml_bot.settings` types the same data.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dcml_bot.catalog.loader import FetchLimits

DEFAULT_CONFIG = Path("config/dcml-bot.toml")
CONFIG_ENV = "DCML_BOT_CONFIG"
ENV_PREFIX = "DCML_BOT_"
# Shipped inside the package (src/dcml_bot/defaults/), so an installed bot runs from anywhere.
PACKAGED_CONFIG = "dcml-bot.toml"
PACKAGED_GUIDE = "dcml.md"
MIN_CATALOG_BYTES = 1024  # catalog_max_bytes below this is a unit mistake (MiB for bytes)

# Secret name -> environment variable; these are never read from the config file.
SECRET_ENV = {
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_app_token": "SLACK_APP_TOKEN",
    "feishu_app_id": "FEISHU_APP_ID",
    "feishu_app_secret": "FEISHU_APP_SECRET",
    "feishu_verification_token": "FEISHU_VERIFICATION_TOKEN",
    "feishu_encrypt_key": "FEISHU_ENCRYPT_KEY",
}


class SettingsError(Exception):
    """A configuration problem, with the file or variable and what is wrong."""


@dataclass(frozen=True)
class ConfigFile:
    """The config file's keys as read (secrets refused, relative guide paths resolved)."""

    path: Path | None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        """How errors name where a key came from."""
        return str(self.path) if self.path else "<defaults>"


def packaged_file(name: str) -> Traversable:
    """A file shipped in the package's ``defaults/`` folder (the config or the guide)."""
    return resources.files("dcml_bot") / "defaults" / name


def packaged_guide() -> str:
    """Path of the packaged reading list: the catalog when no config file names one."""
    return str(packaged_file(PACKAGED_GUIDE))


def env_value(key: str) -> str | None:
    """``DCML_BOT_<KEY>`` from the environment (any case, as pydantic-settings reads it)."""
    wanted = f"{ENV_PREFIX}{key}".upper()
    for name, value in os.environ.items():
        if name.upper() == wanted:
            return value
    return None


def config_path_from(explicit: Path | None) -> Path | None:
    """The config file: ``--config``, else ``DCML_BOT_CONFIG``, else the default when present.

    ``None`` means no file: the built-in defaults, with the packaged guide as the catalog.
    """
    if explicit is not None:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def is_url(location: str) -> bool:
    """True for an http(s) URL, as opposed to a file path."""
    return urlsplit(location).scheme in {"http", "https"}


def read_config(config: Path | None = None) -> ConfigFile:
    """Read the config file (see :func:`config_path_from`); raises SettingsError with specifics."""
    path = config_path_from(config)
    if path is None:
        return ConfigFile(None)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise SettingsError(f"{path}: is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not UTF-8 text") from None
    for key in data:
        if key in SECRET_ENV or key.upper() in SECRET_ENV.values():
            env = SECRET_ENV.get(key, key.upper())
            raise SettingsError(
                f"{path}: {key}: secrets are read from the environment only; "
                f"remove it from the file and set {env} instead"
            )
    # A relative guide path in the file means "next to this file", wherever we run from.
    if env_value("catalog") is None:
        _beside(data, path)
    tracks = data.get("tracks")
    if isinstance(tracks, dict):
        for table in tracks.values():
            if isinstance(table, dict):
                _beside(table, path)
    return ConfigFile(path, data)


def _beside(table: dict[str, Any], path: Path) -> None:
    catalog = table.get("catalog")
    if (
        isinstance(catalog, str)
        and not is_url(catalog)
        and not Path(catalog).expanduser().is_absolute()
    ):
        table["catalog"] = str(path.parent / catalog)


def catalog_location(config: ConfigFile) -> str:
    """The guide: ``DCML_BOT_CATALOG``, else the file's ``catalog``, else the packaged one."""
    value = env_value("catalog")
    if value is not None:
        return value
    catalog = config.data.get("catalog", packaged_guide())
    if not isinstance(catalog, str) or not catalog:
        raise SettingsError(f"{config.origin}: catalog: expected a file path or an http(s) URL")
    return catalog


@dataclass(frozen=True)
class GuideSources:
    """Where the guides are, for the catalog commands: the guide or index, link base, tracks."""

    location: str
    link_base: str | None = None
    tracks: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # catalog, title
    limits: FetchLimits = field(default_factory=FetchLimits)


def guide_sources(config: ConfigFile) -> GuideSources:
    """The guide keys of the config (``catalog``, ``link_base``, ``[tracks.*]``), checked lightly.

    The commands that serve type the whole file through Settings; these read only what a guide
    check needs, with the same answers (tests/test_settings.py).
    """
    where = config.origin
    link_base = env_value("link_base") or config.data.get("link_base")
    if link_base is not None and (not isinstance(link_base, str) or not is_url(link_base)):
        raise SettingsError(f"{where}: link_base: expected the guides' web address (http(s) URL)")
    tables = config.data.get("tracks", {})
    if not isinstance(tables, dict):
        raise SettingsError(f"{where}: tracks: expected tables such as [tracks.systems]")
    tracks: dict[str, tuple[str | None, str | None]] = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise SettingsError(f"{where}: tracks.{name}: expected a table")
        values = [table.get(key) for key in ("catalog", "title")]
        for key, value in zip(("catalog", "title"), values, strict=True):
            if value is not None and not isinstance(value, str):
                raise SettingsError(f"{where}: tracks.{name}.{key}: expected text")
        tracks[name] = (values[0], values[1])
    return GuideSources(catalog_location(config), link_base, tracks, fetch_limits(config))


def _setting(config: ConfigFile, key: str) -> tuple[Any, str]:
    """A key's raw value (the environment's text, else the file's) and how errors name it."""
    value = env_value(key)
    if value is not None:
        return value, f"environment variable {ENV_PREFIX}{key.upper()}"
    return config.data.get(key), f"{config.origin}: {key}"


def _number(config: ConfigFile, key: str, default: float, *, whole: bool, above: float) -> float:
    """A number key read as pydantic reads it (lax: "30" and 30.0 do), greater than ``above``."""
    value, where = _setting(config, key)
    if value is None:
        return default
    try:
        if isinstance(value, str):
            number = float(int(value.strip()) if whole else value.strip())
        elif isinstance(value, int | float):
            number = float(value)
        else:
            raise TypeError(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number) or number <= above or (whole and not number.is_integer()):
        kind = "a whole number" if whole else "a number"
        raise SettingsError(f"{where}: expected {kind} above {above:g}, got {value!r}")
    return number


def fetch_limits(config: ConfigFile) -> FetchLimits:
    """The catalog download limits, as Settings reads them: ``catalog_max_bytes``,
    ``catalog_deadline_seconds`` and ``catalog_redirect_hosts``."""
    default = FetchLimits()
    max_bytes = _number(
        config, "catalog_max_bytes", default.max_bytes, whole=True, above=MIN_CATALOG_BYTES - 1
    )
    deadline = _number(config, "catalog_deadline_seconds", default.deadline, whole=False, above=0)
    hosts, where = _setting(config, "catalog_redirect_hosts")
    try:
        hosts = json.loads(hosts) if isinstance(hosts, str) else hosts or []
    except ValueError:
        hosts = None
    if not isinstance(hosts, list) or not all(isinstance(host, str) for host in hosts):
        raise SettingsError(f'{where}: expected a list of host names, e.g. ["example.org"]')
    return FetchLimits(
        max_bytes=int(max_bytes),
        deadline=deadline,
        redirect_hosts=frozenset(host.lower() for host in hosts),
    )
