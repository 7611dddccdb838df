"""A member's effective language and time zone: their own choice, else the platform's or lab's."""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dcml_bot.store import MemberRecord


class Profiles:
    """Resolves per-member defaults from settings."""

    def __init__(
        self, lab_timezone: str, languages: Mapping[str, str], fallback_language: str = "en"
    ) -> None:
        self.lab_timezone = lab_timezone
        self.languages = dict(languages)
        self.fallback_language = fallback_language

    def timezone(self, member: MemberRecord) -> str:
        """The member's IANA time zone when known and valid, else the lab's."""
        if member.timezone:
            try:
                ZoneInfo(member.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                return self.lab_timezone
            return member.timezone
        return self.lab_timezone

    def language(self, member: MemberRecord) -> str:
        """The member's chosen language, else the platform's default."""
        return member.language or self.platform_language(member.platform)

    def platform_language(self, platform: str) -> str:
        """The default language of a platform's members."""
        return self.languages.get(platform, self.fallback_language)
