"""A signed Slack request's own identity, for the replay guard."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SLACK_SIGNATURE, SLACK_TIMESTAMP = "x-slack-signature", "x-slack-request-timestamp"


def slack_identity(headers: Mapping[str, Sequence[str]], body: Mapping[str, Any]) -> str | None:
    """A signed slash command's, button press's or modal submission's identity: its timestamp
    and signature.

    Only a request Bolt has verified gets here, so nobody without the signing secret can make
    another one; Slack's own retries concern events (deduplicated on their event id), which are
    not guarded here. None for anything else, and in Socket Mode (no signatures).
    """
    if "command" not in body and body.get("type") not in ("block_actions", "view_submission"):
        return None
    lowered = {name.lower(): values for name, values in headers.items()}
    signature = next(iter(lowered.get(SLACK_SIGNATURE) or ()), None)
    timestamp = next(iter(lowered.get(SLACK_TIMESTAMP) or ()), None)
    if not signature or not timestamp:
        return None
    return f"{timestamp}:{signature}"
