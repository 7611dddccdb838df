"""The one HTTP service: platform endpoints, /healthz and /metrics, on Starlette and uvicorn."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dcml_bot.app import Service
from dcml_bot.core.metrics import CONTENT_TYPE
from dcml_bot.http_limits import RequestLimits, bounded_http, connection_limit

log = logging.getLogger(__name__)


def build_http_app(service: Service) -> Starlette:
    """The ASGI app: every platform's routes plus /healthz and /metrics."""

    async def healthz(request: Request) -> Response:
        ok, body = await run_in_threadpool(service.health)
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(service.start)
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    for platform in service.platforms:
        routes += platform.routes()
    limits = Middleware(
        RequestLimits, timeout=service.settings.http_timeout_seconds, refused=refused(service)
    )
    return Starlette(routes=routes, lifespan=lifespan, middleware=[limits])


def refused(service: Service) -> Callable[[str], None]:
    """Count a request or connection refused before any platform saw it, by reason."""
    return lambda reason: service.metrics.rejected.labels("http", reason).inc()


def serve(service: Service, host: str, port: int) -> None:
    """Run the service under uvicorn until interrupted (SIGINT/SIGTERM stop it cleanly)."""
    config = uvicorn.Config(
        build_http_app(service),
        host=host,
        port=port,
        log_config=None,  # keep the bot's own logging set-up
        access_log=False,
        server_header=False,
        ws="none",  # no WebSocket route: nothing to upgrade to, and nothing to import
        # Requests under way get 2 s; Service.stop then has its STOP_GRACE: exit within 5 s.
        timeout_graceful_shutdown=2,
        # Bounded heads and connections (http_limits); idle keep-alive connections close after 5 s.
        http=bounded_http(service.settings.http_timeout_seconds, refused=refused(service)),
        # One more than the connections held: bounded_http answers 503 to the next at once.
        limit_concurrency=connection_limit(service.settings.http_max_connections) + 1,
        timeout_keep_alive=5,
    )
    uvicorn.Server(config).run()
