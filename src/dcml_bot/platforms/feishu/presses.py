"""Feishu card callbacks: a button press or a submitted form, answered with the updated card."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from lark_oapi.event.callback.model.p2_card_action_trigger import (  # type: ignore[import-untyped]
    P2CardActionTriggerResponse,
)

from dcml_bot.catalog import entry_ref
from dcml_bot.core.bot import Bot
from dcml_bot.core.commands.table import Submitted
from dcml_bot.core.i18n import text
from dcml_bot.core.metrics import Metrics
from dcml_bot.core.reply import Reply, TextBlock
from dcml_bot.platforms.common.background import Background
from dcml_bot.platforms.common.replay import REPLAYED, Replayed, ReplayGuard
from dcml_bot.platforms.feishu.cards import action_of, render_card
from dcml_bot.platforms.feishu.forms import form_of, form_ref
from dcml_bot.platforms.feishu.messenger import PLATFORM, FeishuMessenger, Target, attr

log = logging.getLogger(__name__)

CARD_ACTION = "card.action.trigger"


def _toast(reply: Reply) -> str:
    for block in reply.blocks:
        if isinstance(block, TextBlock) and block.text.strip():
            return block.text.strip()[:200]
    return reply.header or "✓"


class CardPresses:
    """``card.action.trigger``: presses and form submissions into the core, on the pool."""

    def __init__(
        self,
        bot: Bot,
        metrics: Metrics,
        messenger: FeishuMessenger,
        background: Background,
        replays: ReplayGuard,
        event: Callable[[str, str], None],
        deliver: Callable[[Target, Reply, str | None], None],
        language: str,
    ) -> None:
        self.bot = bot
        self.metrics = metrics
        self.messenger = messenger
        self.background = background
        self.replays = replays
        self.event = event
        self.deliver = deliver
        self.language = language

    def on_card(self, data: Any) -> Any:
        """Record the press and answer with the updated card (the answer is the update)."""
        lang = self.language
        try:
            return self._card_answer(data, lang)
        except Exception:
            self.metrics.errors.labels("feishu.card").inc()
            log.exception("feishu: card action failed")
            return P2CardActionTriggerResponse(
                {"toast": {"type": "error", "content": text(lang, "failed")}}
            )

    def _card_answer(self, data: Any, lang: str) -> Any:
        event = attr(data, "event")
        open_id = attr(event, "operator", "open_id")
        form = form_of(attr(event, "action", "name"), attr(event, "action", "form_value"))
        if open_id and form is not None:
            return self._form_answer(data, str(open_id), form, lang)
        parsed = action_of(attr(event, "action", "value"))
        if not open_id or parsed is None:
            self.event(CARD_ACTION, "unknown")
            return P2CardActionTriggerResponse({})
        action, value = parsed
        # Each press has its own event id (and card action token); a replay carries the same.
        press = attr(data, "header", "event_id") or attr(event, "token")
        message_id = attr(event, "context", "open_message_id")
        reply = self.background.answer(
            functools.partial(self._update_late, message_id=message_id),
            self._press,
            str(open_id),
            action,
            value,
            str(press) if press else None,
        )
        if isinstance(reply, Replayed):
            self.event(CARD_ACTION, "replayed")
            return P2CardActionTriggerResponse({})
        if reply is None:
            self.event(CARD_ACTION, "late")
            return P2CardActionTriggerResponse(
                {"toast": {"type": "info", "content": text(lang, "busy")}}
            )
        self.event(CARD_ACTION, action)
        answer: dict[str, Any] = {"toast": {"type": "success", "content": _toast(reply)}}
        if reply.replaces:
            answer["card"] = {"type": "raw", "data": render_card(reply)}
        return P2CardActionTriggerResponse(answer)

    def _press(
        self, open_id: str, action: str, value: str, press: str | None = None
    ) -> Reply | Replayed:
        # Checked here, on the pool, so a slow database still lets the answer go within 3 s.
        if press is not None and not self.replays.first(f"card:{press}", f"card press ({action})"):
            return REPLAYED
        member = self.bot.member(PLATFORM, open_id)
        return self.bot.commands.press(member, action, value)

    # --- card forms (a note on a paper) --------------------------------------------------------

    def _form_answer(self, data: Any, open_id: str, form: tuple[str, str, str], lang: str) -> Any:
        """A text box submitted: saved once (a redelivery is ignored); a refusal is a toast and
        leaves the card, and the text typed, as they were; success replaces the card."""
        action, ref, typed = form
        press = attr(data, "header", "event_id") or attr(data, "event", "token")
        message_id = attr(data, "event", "context", "open_message_id")
        submitted = self.background.answer(
            functools.partial(self._form_late, open_id=open_id, message_id=message_id),
            self._submit_form,
            open_id,
            action,
            self._form_value(ref),
            typed,
            str(press) if press else None,
        )
        if isinstance(submitted, Replayed):
            self.event(CARD_ACTION, "replayed")
            return P2CardActionTriggerResponse({})
        if submitted is None:
            self.event(CARD_ACTION, "late")
            return P2CardActionTriggerResponse(
                {"toast": {"type": "info", "content": text(lang, "busy")}}
            )
        if submitted.error is not None:
            self.event(CARD_ACTION, f"{action}-refused")
            return P2CardActionTriggerResponse(
                {"toast": {"type": "error", "content": submitted.error[:200]}}
            )
        self.event(CARD_ACTION, action)
        reply = submitted.reply
        return P2CardActionTriggerResponse(
            {
                "toast": {"type": "success", "content": _toast(reply)},
                "card": {"type": "raw", "data": render_card(reply)},
            }
        )

    def _form_value(self, ref: str) -> str:
        """The paper a form's button name stands for (``form_ref`` of its reference), or ""."""
        catalog = self.bot.library.catalog
        refs = catalog.memo(
            "feishu.form-refs",
            lambda: {form_ref(entry_ref(e.id)): entry_ref(e.id) for e in catalog.entries},
        )
        return refs.get(ref, "")

    def _submit_form(
        self, open_id: str, action: str, value: str, typed: str, press: str | None
    ) -> Submitted | Replayed:
        # The same guard as presses: a redelivered or replayed submission saves nothing twice.
        if press is not None and not self.replays.first(f"card:{press}", f"card form ({action})"):
            return REPLAYED
        member = self.bot.member(PLATFORM, open_id)
        return self.bot.commands.submit(member, action, value, typed)

    def _form_late(self, future: Future[Any], *, open_id: str, message_id: Any) -> None:
        submitted: Submitted | Replayed = future.result()
        if isinstance(submitted, Replayed):
            return
        if submitted.error is None and message_id:
            self.messenger.update_card(str(message_id), render_card(submitted.reply))
        else:
            self.deliver(Target("open_id", open_id, open_id), submitted.reply, None)

    def _update_late(self, future: Future[Any], *, message_id: Any) -> None:
        reply = future.result()
        if message_id and not isinstance(reply, Replayed) and reply.replaces:
            self.messenger.update_card(str(message_id), render_card(reply))
