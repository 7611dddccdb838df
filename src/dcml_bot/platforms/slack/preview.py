"""A reply as Block Kit JSON with Slack's limit checks, for the local lab's preview."""

from __future__ import annotations

import json
from typing import Any

from dcml_bot.core.reply import Reply
from dcml_bot.platforms.common.preview import Rendering
from dcml_bot.platforms.slack.blocks import check_message, json_size, render_message


def preview(reply: Reply) -> Rendering:
    """The chat.postMessage payloads for a reply, with blocks, longest text, bytes, problems."""
    messages = render_message(reply)
    problems = [f"message {n + 1}: {p}" for n, m in enumerate(messages) for p in check_message(m)]
    blocks = max(len(m["blocks"]) for m in messages)
    longest = max((_longest_text(m["blocks"]) for m in messages), default=0)
    size = sum(json_size(m) for m in messages)
    return Rendering(
        platform="slack",
        summary=f"As Slack: {blocks} of 50 blocks, longest text {longest} of 3000 chars, "
        f"{size} bytes",
        label="Block Kit (chat.postMessage):",
        payload=json.dumps(
            messages if len(messages) > 1 else messages[0], ensure_ascii=False, indent=2
        ),
        problems=problems,
    )


def _longest_text(node: Any) -> int:
    """The longest ``text`` string anywhere in Block Kit JSON (sections allow 3,000)."""
    if isinstance(node, dict):
        own = len(node["text"]) if isinstance(node.get("text"), str) else 0
        return max([own, *(_longest_text(v) for v in node.values())])
    if isinstance(node, list):
        return max((_longest_text(v) for v in node), default=0)
    return 0
