"""Slack text boxes (a note on a paper): their button opens a modal (``views.open`` with the
press's trigger_id); the modal's ``view_submission`` goes to the core, refusals shown inline."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from slack_bolt import App, BoltRequest
from slack_bolt.context.ack import Ack
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.web import SlackResponse

from dcml_bot.core.bot import Bot
from dcml_bot.core.builders import simple
from dcml_bot.core.commands.table import Submitted
from dcml_bot.core.i18n import text
from dcml_bot.core.outbound import SendError
from dcml_bot.core.reply import InputBlock, Reply
from dcml_bot.platforms.common.background import Background
from dcml_bot.platforms.common.replay import REPLAYED, Replayed, ReplayGuard
from dcml_bot.platforms.slack.blocks import INPUT_PREFIX, escape, render_message
from dcml_bot.platforms.slack.identity import slack_identity
from dcml_bot.store import MemberRecord

log = logging.getLogger(__name__)

CALLBACK_ID = "dcml_input"
BLOCK_ID = "text"
ELEMENT_ID = "text"
# Block Kit's limits for modals (title, submit and close 24 characters; labels 2,000;
# placeholders 150; plain_text_input 3,000; private_metadata 3,000).
MAX_TITLE = 24
MAX_LABEL = 2000
MAX_PLACEHOLDER = 150
MAX_INPUT = 3000
MAX_SECTION = 3000


def _plain(value: str, cap: int) -> dict[str, Any]:
    value = " ".join(value.split()) or "…"
    if len(value) > cap:
        value = value[: cap - 1].rstrip() + "…"
    return {"type": "plain_text", "text": value, "emoji": True}


def input_modal(block: InputBlock) -> dict[str, Any]:
    """The modal holding a text box: what it is about, a multi-line input, submit and cancel."""
    subject = escape(" ".join(block.subject.split()))[: MAX_SECTION - 2] or "…"
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": _plain(block.title, MAX_TITLE),
        "submit": _plain(block.submit, MAX_TITLE),
        "close": _plain(block.cancel, MAX_TITLE),
        "private_metadata": json.dumps({"action": block.action, "value": block.value}),
        "blocks": [
            {
                "type": "section",
                # verbatim: a title's "@here" or "#general" stays text, like every other reply.
                "text": {"type": "mrkdwn", "text": f"*{subject}*", "verbatim": True},
            },
            {
                "type": "input",
                "block_id": BLOCK_ID,
                "label": _plain(block.prompt, MAX_LABEL),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ELEMENT_ID,
                    "multiline": True,
                    "max_length": min(block.max_length, MAX_INPUT),
                    "placeholder": _plain(block.placeholder, MAX_PLACEHOLDER),
                },
            },
        ],
    }


def typed_text(view: dict[str, Any]) -> str:
    """What was typed into the modal's box ("" when Slack sent no value)."""
    state = ((view.get("state") or {}).get("values") or {}).get(BLOCK_ID) or {}
    value = (state.get(ELEMENT_ID) or {}).get("value")
    return value if isinstance(value, str) else ""


class ModalSender(Protocol):
    """What the text boxes need of SlackMessenger: paced Web API calls (views.open) and DMs."""

    client: WebClient

    def call(
        self, method: str, call: Callable[[], SlackResponse], *, target: str | None = None
    ) -> SlackResponse:
        """A paced Web API call."""
        ...

    def send_dm(self, user_id: str, reply: Reply, *, key: str) -> str:
        """A DM to a user."""
        ...


class SlackInputs:
    """The text boxes of one SlackPlatform: listeners registered before its catch-alls."""

    def __init__(
        self,
        bot: Bot,
        messenger: ModalSender,
        background: Background,
        member: Callable[[str], MemberRecord],
        count: Callable[[str, str], None],
        replays: ReplayGuard,
    ) -> None:
        self.bot = bot
        self.replays = replays  # a captured submission resent: no second note
        self.messenger = messenger
        self.background = background
        self.member = member  # the member of a Slack user id (created on first contact)
        self.count = count  # (kind, outcome) into the events metric

    def register(self, app: App) -> None:
        """Listen to the boxes' buttons and the modals' submissions (first match wins)."""
        app.action(re.compile("^" + re.escape(INPUT_PREFIX)))(self._on_open)
        app.view_submission(CALLBACK_ID)(self._on_submit)

    # --- the button: open the modal ------------------------------------------------------------

    def _on_open(
        self, ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        name = str(action.get("action_id", "")).removeprefix(INPUT_PREFIX)
        user = str((body.get("user") or {}).get("id") or "")
        trigger = str(body.get("trigger_id") or "")
        self.background.submit(
            self._open, user, name, str(action.get("value") or ""), trigger, respond
        )

    def _open(self, user: str, name: str, value: str, trigger: str, respond: Respond) -> None:
        """Ask the core for the box; open it in a modal (a trigger_id lives 3 seconds)."""
        member = self.member(user)
        asked = self.bot.commands.ask(member, name, value)
        if isinstance(asked, Reply):
            self._say(respond, asked)
            self.count("block_actions", f"{name}-refused")
            return
        client = self.messenger.client
        view = input_modal(asked)
        try:
            self.messenger.call(
                "views.open", lambda: client.views_open(trigger_id=trigger, view=view)
            )
        except (SlackClientError, SendError) as exc:
            log.info("slack: the %s modal did not open: %s", name, exc)
            lang = self.bot.profiles.language(member)
            self._say(respond, simple(text(lang, "note.expired", typed=asked.typed)))
            self.count("block_actions", f"{name}-not-opened")
            return
        self.count("block_actions", f"{name}-opened")

    @staticmethod
    def _say(respond: Respond, reply: Reply) -> None:
        page = render_message(reply)[0]
        respond(text=page["text"], blocks=page["blocks"], replace_original=False)

    # --- the submission -----------------------------------------------------------------------

    def _on_submit(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], request: BoltRequest
    ) -> None:
        user = str((body.get("user") or {}).get("id") or "")
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            action, value = str(meta["action"]), str(meta["value"])
        except (ValueError, KeyError, TypeError):
            ack()
            self.count("view_submission", "malformed")
            return
        later = functools.partial(self._answer_late, user, str(view.get("id") or ""))
        identity = slack_identity(request.headers, body)
        submitted = self.background.answer(
            later, self._submit, user, action, value, typed_text(view), identity
        )
        if isinstance(submitted, Replayed):
            ack()
            self.count("view_submission", "replayed")
        elif submitted is None:  # slow database: close now, the outcome follows as a DM
            ack()
            self.count("view_submission", "late")
        elif submitted.error is not None:
            # Slack's way to refuse a submission: the message under the box, the modal open.
            ack(response_action="errors", errors={BLOCK_ID: submitted.error})
            self.count("view_submission", f"{action}-refused")
        else:
            ack()
            self.count("view_submission", action)

    def _submit(
        self, user: str, action: str, value: str, typed: str, identity: str | None
    ) -> Submitted | Replayed:
        # Checked on the pool, like presses, so a slow database still lets the answer go in 3 s.
        if identity is not None and not self.replays.first(identity, "text box"):
            return REPLAYED
        return self.bot.commands.submit(self.member(user), action, value, typed)

    def _answer_late(self, user: str, view_id: str, future: Future[Any]) -> None:
        submitted: Submitted | Replayed = future.result()
        if isinstance(submitted, Replayed):
            return
        try:
            self.messenger.send_dm(user, submitted.reply, key=f"input:{view_id}")
        except SendError as exc:
            log.warning("slack: the late answer to %s's text box was not sent: %s", user, exc)
