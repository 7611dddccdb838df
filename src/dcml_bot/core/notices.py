"""Admin notices: one DM per admin per topic, ever (catalog refused, member or lab channel
unreachable, a week's needs-attention list)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence

from dcml_bot.core.i18n import text
from dcml_bot.core.library import ReloadResult
from dcml_bot.core.once import RECOVERED, SENT, TAKEN, Letter, OnceOnly, Parcel, Place
from dcml_bot.core.profile import Profiles
from dcml_bot.core.reply import ContextBlock, Reply, TextBlock
from dcml_bot.store import Claim, MemberRecord

log = logging.getLogger(__name__)


class AdminNotices:
    """Tells the lab's admins about problems, each topic once per admin."""

    def __init__(
        self,
        *,
        once: OnceOnly,
        profiles: Profiles,
        admins: Sequence[str],
        member: Callable[[str, str], MemberRecord],
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.once = once
        self.profiles = profiles
        self.admins = tuple(admins)
        self.member = member
        self.clock = clock

    def catalog_rejected(self, result: ReloadResult) -> int:
        """DM every admin why a new catalog was refused, once per distinct set of reasons."""
        digest = hashlib.sha256("\n".join(result.errors).encode()).hexdigest()[:16]
        count = len(result.catalog.entries) if result.catalog else 0

        def reply(lang: str) -> Reply:
            return Reply(
                blocks=(
                    TextBlock(text=text(lang, "reload.bad", count=count)),
                    ContextBlock(lines=result.errors[:10]),
                )
            )

        return self.notify(f"catalog-rejected:{digest}", reply)

    def unreachable(self, member: MemberRecord, error: str) -> int:
        """DM every admin, once per member, that a member cannot be messaged at all."""
        who = f"{member.platform}:{member.user_id}"

        def reply(lang: str) -> Reply:
            name = member.display_name or member.user_id
            return Reply(
                blocks=(TextBlock(text=text(lang, "unreachable", name=name, who=who, error=error)),)
            )

        return self.notify(f"unreachable:{who}", reply)

    def channel_unreachable(self, place: Place, error: str) -> int:
        """DM every admin, once per channel, that the bot cannot post in the lab channel, and
        how to let it in (Slack: ``/invite @dcml-bot``; Feishu: add the bot to the group)."""

        def reply(lang: str) -> Reply:
            how = text(lang, f"digest.invite.{place.platform}")
            said = error.rstrip("。. ")
            line = text(lang, "digest.unreachable", channel=place.channel, error=said, how=how)
            return Reply(blocks=(TextBlock(text=line),))

        return self.notify(f"channel:{place.platform}:{place.channel}", reply)

    def welcome_lost(
        self, platform: str, kind: str, users: Sequence[str], error: str, since: dt.datetime
    ) -> int:
        """DM every admin, once per user, that a join was given up (its welcome may be missing)."""
        sent = 0
        for user_id in users:
            who = f"{platform}:{user_id}"

            def reply(lang: str, who: str = who) -> Reply:
                when = since.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
                line = text(lang, "welcome.lost", who=who, since=when, error=error)
                return Reply(blocks=(TextBlock(text=line), ContextBlock(lines=(kind,))))

            sent += self.notify(f"welcome-lost:{who}", reply)
        return sent

    def unverified(self, member: MemberRecord, kind: str, key: str) -> int:
        """DM every admin, once per message, that a recovered send was not repeated blind."""
        who = f"{member.platform}:{member.user_id}"

        def reply(lang: str) -> Reply:
            name = member.display_name or member.user_id
            line = text(
                lang, "unverified", kind=kind, name=name, who=who, platform=member.platform, ref=key
            )
            return Reply(blocks=(TextBlock(text=line),))

        return self.notify(f"unverified:{key}", reply)

    def _in_their_language(self, reply: Callable[[str], Reply], member: MemberRecord) -> Reply:
        lang = self.profiles.language(member)
        return reply(lang).in_language(lang)

    def notify(self, topic: str, reply: Callable[[str], Reply]) -> int:
        """Send each admin one message about ``topic``, ever; returns how many went now."""
        now, sent = self.clock(), 0
        for admin in self.admins:
            platform, _, user_id = admin.partition(":")
            if platform not in self.once.messengers or not user_id:
                continue
            member = self.member(platform, user_id)
            key = f"notice:{topic}:{platform}:{user_id}"

            def prepare(claim: Claim, member: MemberRecord = member, key: str = key) -> Parcel:
                return Parcel(
                    reply=lambda: self._in_their_language(reply, member),
                    confirm=lambda message_id: self.once.mark_sent(key, message_id, now),
                )

            letter = Letter(key=key, kind="notice", member=member)
            # Never retried, and an unreachable admin is not itself a notice (no loop).
            outcome = self.once.send(letter, now, prepare, tell_unreachable=False)
            if outcome in {SENT, RECOVERED}:
                sent += 1
            elif outcome != TAKEN:
                log.info("notice %s to admin %s: %s", topic, admin, outcome)
        return sent
