"""The local web lab: a browser page to try every feature of the bot on the local platform."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from dcml_bot.core.bot import Bot
from dcml_bot.core.commands.table import Caller
from dcml_bot.core.home import home_reply
from dcml_bot.core.jobs import Jobs
from dcml_bot.core.lab_table import lab_rows
from dcml_bot.core.reply import Reply
from dcml_bot.platforms.common.preview import Previewer, Rendering
from dcml_bot.platforms.local.guard import LOGIN, LabGuard, LabOptions
from dcml_bot.platforms.local.messenger import PLATFORM, LocalClock, LocalMessenger
from dcml_bot.store import MemberRecord

log = logging.getLogger(__name__)

MAX_TEXT = 2000  # a typed command; the core refuses more than its own limit with a reply
# Chat entries per page, newest first, then an "older" link: each entry carries its Slack and
# Feishu previews (up to ~25 kB), and 2,000 of them made a 50 MB page.
CHAT_PAGE = 20
MAX_NAME = 40
_NAME = re.compile(r"^[\w .'-]+$")
TEMPLATES = Path(__file__).with_name("templates")


class BadInput(Exception):
    """A form value the page refuses, with the message shown to the user."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def preview(reply: Reply, previewers: Sequence[Previewer]) -> list[Rendering]:
    """The reply as each real platform would receive it (the composition root names them)."""
    return [render(reply) for render in previewers]


def user_id_for(name: str) -> str:
    """A stable local user id from a display name."""
    return re.sub(r"[^\w]+", "-", name.strip().lower()).strip("-")


class LocalWebPlatform:
    """Serves the lab page at ``/`` and its form posts under ``/local/``."""

    name = "local-web"

    def __init__(
        self,
        bot: Bot,
        messenger: LocalMessenger,
        jobs: Jobs,
        clock: LocalClock | None,
        options: LabOptions | None = None,
        previewers: Sequence[Previewer] = (),
    ) -> None:
        self.bot = bot
        self.previewers = tuple(previewers)
        self.messenger = messenger
        self.jobs = jobs
        self.clock = clock
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        self.guard = LabGuard(options or LabOptions(), self.templates)
        self.templates.env.globals["preview"] = self._preview
        self.templates.env.globals["csrf"] = self.guard.csrf

    def _preview(self, reply: Reply) -> list[Rendering]:
        return preview(reply, self.previewers)

    def routes(self) -> Sequence[BaseRoute]:
        """The page and its actions, each behind the guard (the webhooks' routes are not)."""
        return [
            Route("/", self.guard.guarded(self.page), methods=["GET"]),
            Route(LOGIN, self.guard.guarded(self.guard.login, login=False), methods=["POST"]),
            Route("/local/members", self._form(self.add_member), methods=["POST"]),
            Route("/local/command", self._form(self.command), methods=["POST"]),
            Route("/local/press", self._form(self.press), methods=["POST"]),
            Route("/local/input", self._form(self.submit_input), methods=["POST"]),
            Route("/local/admin/deliver", self._form(self.deliver), methods=["POST"]),
            Route("/local/admin/advance", self._form(self.advance), methods=["POST"]),
            Route("/local/admin/reload", self._form(self.reload), methods=["POST"]),
            Route("/local/admin/digest", self._form(self.digest), methods=["POST"]),
        ]

    def start(self) -> None:
        """Nothing runs in the background: the page is served on request."""

    def stop(self, grace: float = 0.0) -> None:
        """Nothing to stop."""

    def health(self) -> dict[str, Any]:
        """The lab is in this process: always connected."""
        return {"state": "connected"}

    def workers(self) -> None:
        """No pool of its own: Starlette's threads serve the page."""
        return None

    # --- the page ---------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        """The lab page for the member in ``?as=`` (or the first member), their chat from
        ``?before=`` (an entry's id) back."""
        who, before = request.query_params.get("as"), request.query_params.get("before")
        try:
            context = await run_in_threadpool(self._page_context, who, before)
        except BadInput as exc:
            context = await run_in_threadpool(self._page_context, None)
            context["error"] = str(exc)
            return await self._render(request, context, exc.status)
        context["notice"] = request.query_params.get("notice")
        context["error"] = request.query_params.get("error")
        return await self._render(request, context)

    async def _render(
        self, request: Request, context: dict[str, Any], status: int = 200
    ) -> Response:
        """The page rendered on a worker thread: rendering on the event loop stalled every other
        request, /healthz too (2.9 s for 2,000 chat entries)."""
        return await run_in_threadpool(
            self.templates.TemplateResponse, request, "lab.html", context, status_code=status
        )

    def _page_context(self, who: str | None, before: str | None = None) -> dict[str, Any]:
        older_than = _entry_id(before)
        store = self.bot.store
        members = store.list_members(platform=PLATFORM)
        current: MemberRecord | None = None
        if who:
            current = store.get_member(PLATFORM, who)
            if current is None:
                raise BadInput(f"There is no member {who!r} in this lab; add them first.", 404)
        elif members:
            current = members[0]
        dms: list[tuple[str, Reply]] = []
        chat: list[tuple[str, str, Reply]] = []
        home: Reply | None = None
        if current is not None:
            dms = self.messenger.inbox(current.user_id)
            # One more than a page: whether an "older" link is due.
            chat = self.messenger.chat(current.user_id, before=older_than, limit=CHAT_PAGE + 1)
            home = home_reply(self.bot.commands, current)
        more = len(chat) > CHAT_PAGE
        chat = chat[1:] if more else chat
        now = self.bot.clock()
        lang = self.bot.profiles.platform_language(PLATFORM)
        lab = self.bot.commands.run(Caller(member=_operator(), language=lang, is_admin=True), "lab")
        catalog = self.bot.library.current
        return {
            **self._review_context(lang),
            "members": members,
            "current": current,
            "dms": dms,
            "chat": chat,
            "chat_older": chat[0][0] if more else None,  # the ?before= of the next page back
            "chat_paged": current is not None and older_than is not None,
            "home": home,
            "lab": lab,
            "now": now,
            "week": self.bot.delivery.week_for(current, now) if current else None,
            "clock_offset": self.clock.offset if self.clock else None,
            "catalog_items": len(catalog.entries) if catalog else 0,
            "catalog_source": self.bot.library.source,
        }

    def _review_context(self, lang: str) -> dict[str, Any]:
        """The admin panel's chart and needs-attention list, and the lab channel's posts."""
        operator = Caller(member=_operator(), language=lang, is_admin=True)
        digest = self.bot.digest
        local = digest.on and digest.place.platform == PLATFORM
        return {
            "chart": lab_rows(self.bot.commands.services),
            "attention": self.bot.commands.run(operator, "attention"),
            "lab_channel_name": digest.place.channel if local else None,
            "lab_channel": self.messenger.lab_channel(digest.place.channel) if local else [],
        }

    # --- actions ------------------------------------------------------------------------------

    def _form(self, action: Callable[[dict[str, str]], str]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                form = await request.form(max_files=0, max_fields=20, max_part_size=64 * 1024)
                values = {k: v for k, v in form.items() if isinstance(v, str)}
                if not self.guard.csrf_ok(values, request):
                    return self.guard.refused(request, "This form is not from this lab's page.")
                location = await run_in_threadpool(action, values)
            except BadInput as exc:
                page = await run_in_threadpool(self._page_context, None)
                page["error"] = str(exc)
                return await self._render(request, page, exc.status)
            except (MultiPartException, ClientDisconnect):
                return Response("malformed form", status_code=400)
            return RedirectResponse(location, status_code=303)

        return self.guard.guarded(endpoint)

    def _member(self, values: dict[str, str]) -> MemberRecord:
        who = values.get("as", "").strip()
        if not who:
            raise BadInput("Choose who you are first (add a member).")
        member = self.bot.store.get_member(PLATFORM, who)
        if member is None:
            raise BadInput(f"There is no member {who!r} in this lab; add them first.", 404)
        return member

    def add_member(self, values: dict[str, str]) -> str:
        """A newcomer joins: they get the welcome DM, and the page switches to them."""
        name = " ".join(values.get("name", "").split())
        if not name:
            raise BadInput("Type a name for the new member.")
        if len(name) > MAX_NAME or not _NAME.match(name) or not user_id_for(name):
            raise BadInput(f"Names are up to {MAX_NAME} letters, digits, spaces, dots or dashes.")
        user_id = user_id_for(name)
        outcome = self.bot.onboarding.joined(PLATFORM, user_id, self.bot.clock(), display_name=name)
        notice = {
            "welcomed": f"{name} joined the lab and got the welcome DM.",
            "already": f"{name} is already a member (one welcome per member, ever).",
        }.get(outcome, f"{name}: {outcome}")
        return "/?" + urlencode({"as": user_id, "notice": notice})

    def command(self, values: dict[str, str]) -> str:
        """A command typed in the chat box; the reply is kept in the member's chat."""
        member = self._member(values)
        line = values.get("text", "").strip()
        if not line:
            raise BadInput("Type a command, for example /dcml essential.")
        if len(line) > MAX_TEXT:
            raise BadInput(f"That is {len(line)} characters; commands are at most {MAX_TEXT}.", 413)
        reply = self.bot.commands.handle(member, line)
        self.messenger.record_chat(member.user_id, line, reply)
        return "/?" + urlencode({"as": member.user_id}) + "#chat"

    def press(self, values: dict[str, str]) -> str:
        """A button on a DM: record the choice and rewrite that message."""
        member = self._member(values)
        action, value = values.get("action", ""), values.get("value", "")
        if not action or len(value) > 2000:
            raise BadInput("That button is not valid.")
        reply = self.bot.commands.press(member, action, value)
        message_id = values.get("message", "")
        owned = {mid for mid, _ in self.messenger.inbox(member.user_id)}
        if message_id in owned and reply.replaces:
            self.messenger.update(message_id, reply)
        else:
            self.messenger.record_chat(member.user_id, f"[{action}]", reply)
        return "/?" + urlencode({"as": member.user_id}) + "#dms"

    def submit_input(self, values: dict[str, str]) -> str:
        """Text typed into a box under a DM (a note on a paper): saved, and the DM says so."""
        member = self._member(values)
        action, value = values.get("action", ""), values.get("value", "")
        if not action or len(value) > 2000:
            raise BadInput("That text box is not valid.")
        submitted = self.bot.commands.submit(member, action, value, values.get("text", ""))
        if submitted.error is not None:
            raise BadInput(submitted.error)
        message_id = values.get("message", "")
        owned = {mid for mid, _ in self.messenger.inbox(member.user_id)}
        if message_id in owned:
            self.messenger.update(message_id, submitted.reply)
        else:
            self.messenger.record_chat(member.user_id, f"[{action}]", submitted.reply)
        return "/?" + urlencode({"as": member.user_id}) + "#dms"

    def deliver(self, values: dict[str, str]) -> str:
        """Run this week's delivery now, like ``dcml-bot remind``."""
        report = self.bot.delivery.deliver(self.bot.clock(), force=True)
        return self._back(values, f"Delivery ran for this week: {report.summary()}.")

    def advance(self, values: dict[str, str]) -> str:
        """Move the local clock a week ahead, then let the scheduler's tick run."""
        if self.clock is None:
            raise BadInput("The clock can only move when the local platform runs alone.")
        self.clock.advance(dt.timedelta(days=7))
        report = self.jobs.deliver()
        sent = report.count("sent") if report else 0
        now = self.bot.clock().strftime("%Y-%m-%d %H:%M UTC")
        return self._back(values, f"The lab clock is now {now}; {sent} weekly paper(s) went out.")

    def reload(self, values: dict[str, str]) -> str:
        """Read the catalog again; a broken version is refused and its problems shown; while a
        reload runs, say since when (it is not started twice)."""
        result = self.bot.library.reload()
        if result.status == "running" and result.started is not None:
            zone = ZoneInfo(self.bot.profiles.lab_timezone)
            started = f"{result.started.astimezone(zone):%H:%M}"
            return self._back(values, f"A reload is already running, started {started}.")
        if result.status == "stopped":
            return self._back(values, None, "Catalog not reloaded: the bot is stopping.")
        if result.status == "rejected":
            return self._back(values, None, "Catalog refused: " + " | ".join(result.errors[:5]))
        count = len(result.catalog.entries) if result.catalog else 0
        return self._back(values, f"Catalog {result.status}: {count} items.")

    def digest(self, values: dict[str, str]) -> str:
        """Post this week's digest in the lab channel now, like ``dcml-bot digest``."""
        if not self.bot.digest.on:
            raise BadInput('The digest is off: set [digest] channel (e.g. "lab") first.')
        run = self.jobs.digest(reopen=True)
        return self._back(values, f"Digest for {run.week}: {run.outcome}.")

    def _back(self, values: dict[str, str], notice: str | None, error: str | None = None) -> str:
        query = {
            k: v
            for k, v in (("as", values.get("as", "")), ("notice", notice), ("error", error))
            if v
        }
        return "/?" + urlencode(query) + "#admin"


def _entry_id(before: str | None) -> int | None:
    """The chat entry id in ``?before=``; BadInput unless it is a whole number."""
    if before is None:
        return None
    if not before.isascii() or not before.isdigit() or len(before) > 18:
        raise BadInput(f"?before= takes a chat entry's number; got {before[:40]!r}.")
    return int(before)


def _operator() -> MemberRecord:
    """The person at the keyboard of the local lab (an admin that is not a member)."""
    return MemberRecord(
        id=0,
        platform=PLATFORM,
        user_id="operator",
        display_name="operator",
        timezone=None,
        language=None,
        enrolled=False,
        opted_out_at=None,
        joined_at=dt.datetime.fromtimestamp(0, dt.UTC),
        onboarded_at=None,
    )
