"""Per-call fault injection, call counting and the request log, for ``/api/*`` only.

A dropped write answer is produced the one way ASGI allows: the response is
started, then the application raises, and the server closes the connection
mid-response. Over a real HTTP server the client sees a transport error (httpx:
``RemoteProtocolError``) after the write has already taken effect; in process,
through ``httpx.ASGITransport``, it gets the same error class. The status
line and headers do reach the client first, because the server writes them as
soon as the response starts and answers 500 when it never starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import httpx
import structlog
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.simulator.errors import ErrorKind
from app.simulator.handlers import error_response
from app.simulator.runtime import Simulator

log = structlog.get_logger(__name__)

API_PREFIX = "/api/"
AUTH_PREFIX = "/api/auth/"
WRITE_METHODS = frozenset({"POST", "DELETE"})
NO_ROUTE = "(no route)"


class ResponseDropped(httpx.RemoteProtocolError):
    """Raised on purpose so the HTTP server aborts the connection mid-response.

    It is an httpx transport error so that an in-process client (``httpx.ASGITransport``
    re-raises the app's exception) sees what a client over the network sees.
    """


class _QuietDrops(logging.Filter):
    # Without this, uvicorn logs every deliberate drop as an application crash.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ResponseDropped))


_QUIET_DROPS = _QuietDrops()


def quiet_dropped_responses() -> None:
    logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)


class FaultMiddleware:
    def __init__(self, app: ASGIApp, *, simulator: Simulator, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.simulator = simulator
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        sim = self.simulator
        started = time.perf_counter()
        # The route template, never the raw path: a logout path carries the token.
        endpoint = f"{scope['method']} {self._route_of(scope)}"
        sim.stats.by_endpoint[endpoint] += 1
        faults = sim.faults
        if faults.config.latency_ms:
            await asyncio.sleep(faults.config.latency_ms / 1000)

        if faults.answer_503():
            sim.stats.injected_503 += 1
            await error_response(ErrorKind.SERVICE_UNAVAILABLE)(scope, receive, send)
            self._log(endpoint, 503, started, fault="503")
            return

        droppable = scope["method"] in WRITE_METHODS and not str(scope["path"]).startswith(
            AUTH_PREFIX
        )
        status = 500
        dropped = False

        async def send_or_drop(message: Message) -> None:
            nonlocal status, dropped
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # Only a write that took effect loses its answer: that is the case a
                # client cannot tell from "never happened" without looking.
                dropped = droppable and status < 400 and faults.drop_write_response()
            if dropped and message["type"] == "http.response.body":
                raise ResponseDropped("simulated fault: the answer was lost after the write")
            await send(message)

        try:
            await self.app(scope, receive, send_or_drop)
        except ResponseDropped:
            sim.stats.dropped_responses += 1
            self._log(endpoint, status, started, fault="dropped_response")
            raise
        self._log(endpoint, status, started)

    def _route_of(self, scope: Scope) -> str:
        # Matched here rather than read from the routed scope, so that calls answered
        # 503 before routing are counted under their endpoint too.
        partial = NO_ROUTE
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", NO_ROUTE))
            if match is Match.PARTIAL and partial == NO_ROUTE:
                partial = str(getattr(route, "path", NO_ROUTE))
        return partial

    @staticmethod
    def _log(endpoint: str, status: int, started: float, *, fault: str | None = None) -> None:
        log.info(
            "simulator.request",
            endpoint=endpoint,
            status=status,
            fault=fault,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
