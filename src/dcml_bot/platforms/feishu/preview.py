"""A reply as Feishu card JSON with its limit checks, for the local lab (loads no SDK)."""

from __future__ import annotations

import json

from dcml_bot.core.reply import Reply
from dcml_bot.platforms.common.preview import Rendering
from dcml_bot.platforms.feishu.cards import card_size, check_card, render_card


def preview(reply: Reply) -> Rendering:
    """The interactive card for a reply, with its size and problems."""
    card = render_card(reply)
    return Rendering(
        platform="feishu",
        summary=f"As Feishu: {card_size(card)} of 30720 bytes",
        label="Feishu card JSON 2.0 (msg_type interactive):",
        payload=json.dumps(card, ensure_ascii=False, indent=2),
        problems=check_card(card),
    )
