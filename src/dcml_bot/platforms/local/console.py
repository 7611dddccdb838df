"""``dcml-bot console``: chat with the bot in a terminal as a local user, same code paths."""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Callable

from dcml_bot.core.bot import Bot
from dcml_bot.core.jobs import Jobs
from dcml_bot.core.reply import Reply, render_plain
from dcml_bot.platforms.local.messenger import PLATFORM, LocalClock, LocalMessenger
from dcml_bot.store import LocalMessageRecord, MemberRecord

HELP = """Type /dcml … (or dcml …) to talk to the bot as the current user. Console commands:
  :join NAME    a newcomer joins the lab (gets the welcome DM)
  :as NAME      switch to another user
  :week         run this week's delivery now, then show what reached your DMs
  :advance      move the lab clock a week ahead and deliver what is due then (as the web lab)
  :click N      press button N of the last message shown (a paper's, or a direction's)
  :track [NAME…] show the lab's directions, or read these (as /dcml track)
  :inbox        show the current user's DMs
  :help         this help        :quit  leave"""
WEEK = dt.timedelta(days=7)


class Console:
    """A line-oriented session; ``handle`` returns what to print (testable without a terminal)."""

    def __init__(
        self,
        bot: Bot,
        messenger: LocalMessenger,
        user: str = "me",
        *,
        jobs: Jobs | None = None,
        clock: LocalClock | None = None,
    ) -> None:
        self.bot = bot
        self.messenger = messenger
        self.user = user
        self.jobs = jobs or Jobs(bot)
        # The web lab's movable clock (None when a real chat platform keeps the bot on real time).
        self.clock = clock
        self.last: tuple[str | None, Reply] | None = None
        self.arrived: list[LocalMessageRecord] = []  # DMs sent while the current line ran
        messenger.listeners.append(self._on_dm)

    def _on_dm(self, record: LocalMessageRecord) -> None:
        self.arrived.append(record)
        if record.user_id == self.user:
            self.last = (str(record.id), Reply.model_validate_json(record.reply))

    def _arrivals(self) -> list[str]:
        """The DMs that arrived: the current user's in full, the others' counted."""
        records, self.arrived = self.arrived, []
        shown = [
            f"📩 DM to {r.user_id}:\n{render_plain(Reply.model_validate_json(r.reply))}"
            for r in records
            if r.user_id == self.user
        ]
        others = [r.user_id for r in records if r.user_id != self.user]
        if others:
            names = ", ".join(dict.fromkeys(others))
            shown.append(
                f"📨 {len(others)} DM(s) to others: {names} (to read them: :as NAME, then :inbox)"
            )
        return shown

    def _show(self, reply: Reply, message_id: str | None = None) -> str:
        self.last = (message_id, reply)
        return render_plain(reply)

    def handle(self, line: str) -> str:
        """Process one input line; returns the text to show."""
        line = line.strip()
        if not line:
            return ""
        out: list[str] = []
        if line.startswith(":"):
            out.append(self._console_command(line))
        else:
            member = self.bot.member(PLATFORM, self.user, display_name=self.user)
            out.append(self._show(self.bot.commands.handle(member, line)))
        out += self._arrivals()
        return "\n".join(part for part in out if part)

    def _console_command(self, line: str) -> str:
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        command, args = words[0].lower(), words[1:]
        if command in {":help", ":h", ":?"}:
            return HELP
        if command in {":as", ":join"}:
            if not args:
                return f"usage: {command} NAME"
            name = " ".join(args)
            self.user = name
            if command == ":join":
                outcome = self.bot.onboarding.joined(
                    PLATFORM, name, self.bot.clock(), display_name=name
                )
                return f"{name} joined the lab ({outcome}); you are now {name}."
            self.bot.member(PLATFORM, name, display_name=name)
            return f"you are now {name}."
        if command == ":week":
            mine: list[str] = []
            report = self.bot.delivery.deliver(
                self.bot.clock(),
                force=True,
                on_member=lambda m, outcome: mine.append(outcome) if self._is_me(m) else None,
            )
            return f"weekly delivery: {report.summary()}" + self._nothing_new(mine)
        if command == ":advance":
            return self._advance()
        if command == ":click":
            return self._click(args)
        if command == ":track":
            member = self.bot.member(PLATFORM, self.user)
            return self._show(self.bot.commands.handle(member, " ".join(["track", *args])))
        if command == ":inbox":
            messages = self.messenger.inbox(self.user)
            if not messages:
                return f"{self.user} has no DMs."
            shown = [f"— message {mid} —\n{render_plain(reply)}" for mid, reply in messages]
            self.last = messages[-1]
            return "\n".join(shown)
        return f"unknown console command {command}; :help lists them"

    def _advance(self) -> str:
        """A week later on the lab clock, then the scheduler's tick (what the web lab does)."""
        if self.clock is None:
            return (
                "the lab clock moves only when the local platform runs alone; with Slack or "
                "Feishu configured the bot keeps real time (:week still delivers this week)"
            )
        self.clock.advance(WEEK)
        report = self.jobs.deliver()
        if report is None:
            return "a delivery is already running; try :week in a moment"
        return (
            f"{self.clock_note()}; {report.count('sent')} weekly paper(s) went out "
            f"({report.summary()})" + self._nothing_new()
        )

    def _is_me(self, member: MemberRecord) -> bool:
        return member.platform == PLATFORM and member.user_id == self.user

    def _nothing_new(self, outcomes: list[str] | None = None) -> str:
        """After a delivery: why the current user got nothing, if they did not."""
        if any(r.user_id == self.user for r in self.arrived):
            return ""
        member = self.bot.store.get_member(PLATFORM, self.user)
        if member is None:
            why = f"{self.user} is not a member yet (:join {self.user})"
        elif not member.enrolled:
            why = f"{self.user} is not enrolled (/dcml start)"
        elif outcomes is None:  # the scheduler's tick: only members whose slot has come
            weekday, at = self.bot.delivery.slot_label("en")
            why = (
                f"{self.user} has this week's paper already, or their slot ({weekday} {at}) "
                "has not come yet on the lab clock"
            )
        else:
            why = {
                "already": f"{self.user} has this week's paper already",
                "nothing": f"{self.user} has no paper left to read",
            }.get(outcomes[0] if outcomes else "", f"delivery: {', '.join(outcomes) or 'none'}")
        return f"\nnothing new in {self.user}'s DMs: {why}"

    def clock_note(self) -> str:
        """The lab time, and how far it is ahead of real time."""
        now = self.bot.clock().astimezone(dt.UTC).strftime("%a %Y-%m-%d %H:%M UTC")
        offset = self.clock.offset if self.clock is not None else dt.timedelta(0)
        if not offset:
            return f"the lab clock is {now} (real time)"
        whole_days = offset % dt.timedelta(days=1) == dt.timedelta(0)
        ahead = f"{offset.days} days" if whole_days else str(offset)
        return f"the lab clock is {now} ({ahead} ahead of real time)"

    def _click(self, args: list[str]) -> str:
        if self.last is None:
            return "nothing to click yet"
        message_id, reply = self.last
        buttons = reply.buttons
        if len(args) != 1 or not args[0].isdigit() or not 1 <= int(args[0]) <= len(buttons):
            return (
                f"usage: :click N with N from 1 to {len(buttons)}" if buttons else "no buttons here"
            )
        button = buttons[int(args[0]) - 1]
        member = self.bot.member(PLATFORM, self.user, display_name=self.user)
        answer = self.bot.commands.press(member, button.action, button.value)
        if message_id is not None and answer.replaces:
            self.messenger.update(message_id, answer)
        return self._show(answer, message_id)

    def run(
        self, read: Callable[[str], str] = input, write: Callable[[str], None] | None = None
    ) -> None:
        """The interactive loop; ends on :quit or end of input."""
        emit = write or _stdout
        emit(f"dcml-bot console — you are {self.user}. :help for help.")
        if self.clock is not None and self.clock.offset:
            note = self.clock_note()
            emit(note[0].upper() + note[1:] + ".")
        while True:
            try:
                line = read(f"{self.user}> ")
            except (EOFError, KeyboardInterrupt):
                emit("")
                return
            if line.strip() in {":quit", ":q", ":exit"}:
                return
            shown = self.handle(line)
            if shown:
                emit(shown)


def _stdout(text: str) -> None:
    from rich.console import Console as RichConsole

    RichConsole(highlight=False, soft_wrap=True).print(text, markup=False)
