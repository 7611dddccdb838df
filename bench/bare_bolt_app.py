"""The baseline: a bare slack-bolt app that acks ``/dcml`` with a fixed reply, served like the bot.

Run: .venv/bin/python bench/bare_bolt_app.py --port P --api-url URL [--process-before-response]
     [--reply FILE]

Starlette + uvicorn with the bot's uvicorn options; ``POST /slack/events`` translates the request
for Bolt and runs ``App.dispatch`` in Starlette's threadpool, exactly as the bot's Slack endpoint
does; ``GET /healthz`` answers 200. ``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET`` come from the
environment (as for the bot); Bolt calls ``auth.test`` on ``--api-url`` at start, as the bot does.

With Bolt's default ``process_before_response=False`` the listener runs on Bolt's own executor and
the request thread polls for its ack (every 10 ms); with ``--process-before-response`` the
listener acks inline. ``--reply FILE`` acks with that JSON object (e.g. the bot's own answer, so
both send the same bytes); by default a one-line text.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

import uvicorn
from slack_bolt import App, BoltRequest
from slack_bolt.context.ack import Ack
from slack_sdk import WebClient
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def make_bolt(api_url: str, token: str, secret: str, inline: bool, reply: dict[str, Any]) -> App:
    """The Bolt app: one ``/dcml`` listener acking ``reply``."""
    client = WebClient(token=token, base_url=api_url, timeout=10)
    bolt = App(
        client=client,
        signing_secret=secret,
        process_before_response=inline,
        logger=logging.getLogger("bare.bolt"),
    )

    @bolt.command("/dcml")
    def command(ack: Ack) -> None:
        ack(**reply)

    return bolt


def build(api_url: str, inline: bool, reply: dict[str, Any]) -> Starlette:
    """The ASGI app."""
    token, secret = os.environ["SLACK_BOT_TOKEN"], os.environ["SLACK_SIGNING_SECRET"]
    bolt = make_bolt(api_url, token, secret, inline, reply)

    async def events(request: Request) -> Response:
        body = await request.body()
        bolt_request = BoltRequest(
            body=body.decode("utf-8"),
            query=request.url.query,
            headers={key: value for key, value in request.headers.items()},
        )
        response = await run_in_threadpool(bolt.dispatch, bolt_request)
        headers = {
            k: v for k, v in response.first_headers().items() if k.lower() != "content-length"
        }
        return Response(content=response.body, status_code=response.status, headers=headers)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main() -> None:
    """Serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--process-before-response", action="store_true")
    parser.add_argument("--reply", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    reply: dict[str, Any] = {"text": "essential: 12 items", "response_type": "ephemeral"}
    if args.reply is not None:
        reply = json.loads(args.reply.read_text())
    app = build(args.api_url, args.process_before_response, reply)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
