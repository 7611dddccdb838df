"""``dcml-bot console``: chat with the bot in a terminal as a local user, same code paths."""

from __future__ import annotations

import shlex
from collections.abc import Callable

from dcml_bot.core.bot import Bot
from dcml_bot.core.messages import Reply, render_plain
from dcml_bot.platforms.local import PLATFORM, LocalMessenger
from dcml_bot.store import LocalMessageRecord

HELP = """Type /dcml … (or dcml …) to talk to the bot as the current user. Console commands:
  :join NAME    a newcomer joins the lab (gets the welcome DM)
  :as NAME      switch to another user
  :week         run this week's delivery now
  :click N      press button N of the last message shown
  :inbox        show the current user's DMs
  :help         this help        :quit  leave"""


class Console:
    """A line-oriented session; ``handle`` returns what to print (testable without a terminal)."""

    def __init__(self, bot: Bot, messenger: LocalMessenger, user: str = "me") -> None:
        self.bot = bot
        self.messenger = messenger
        self.user = user
        self.last: tuple[str | None, Reply] | None = None
        self.pending: list[str] = []
        messenger.listeners.append(self._on_dm)

    def _on_dm(self, record: LocalMessageRecord) -> None:
        reply = Reply.model_validate_json(record.reply)
        self.pending.append(f"📩 DM to {record.user_id}:\n{render_plain(reply)}")
        if record.user_id == self.user:
            self.last = (str(record.id), reply)

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
        out += self.pending
        self.pending = []
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
            report = self.bot.delivery.deliver(self.bot.clock(), force=True)
            counts = (
                ", ".join(f"{k}: {v}" for k, v in sorted(report.outcomes.items())) or "no members"
            )
            return f"weekly delivery: {counts}"
        if command == ":click":
            return self._click(args)
        if command == ":inbox":
            messages = self.messenger.inbox(self.user)
            if not messages:
                return f"{self.user} has no DMs."
            shown = [f"— message {mid} —\n{render_plain(reply)}" for mid, reply in messages]
            self.last = messages[-1]
            return "\n".join(shown)
        return f"unknown console command {command}; :help lists them"

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
        if message_id is not None:
            self.messenger.update(message_id, answer)
        return self._show(answer, message_id)

    def run(
        self, read: Callable[[str], str] = input, write: Callable[[str], None] | None = None
    ) -> None:
        """The interactive loop; ends on :quit or end of input."""
        emit = write or _stdout
        emit(f"dcml-bot console — you are {self.user}. :help for help.")
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
