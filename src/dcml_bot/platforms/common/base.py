"""What the server sees of a chat platform: its routes, its start and stop, its health."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from dcml_bot.platforms.common.background import Load

# Seconds Service.stop gives work under way; with uvicorn's own 2 s, SIGTERM exits within 5 s.
STOP_GRACE = 2.5


class Platform(Protocol):
    """A chat platform's inbound side as the server sees it (one folder of ``platforms/`` each)."""

    name: str

    def routes(self) -> Sequence[BaseRoute]:
        """HTTP routes this platform serves (may be empty, e.g. in Socket Mode)."""
        ...

    def start(self) -> None:
        """Start background connections (Socket Mode, long connection, workers)."""
        ...

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop them: interrupt waits, leave queued joins to the next start, give work under
        way up to ``grace`` seconds."""
        ...

    def health(self) -> dict[str, Any]:
        """``{"state": "connected"}`` once the platform answered its first call."""
        ...

    def workers(self) -> Load | None:
        """How busy its worker pool is (None: it has none)."""
        ...
