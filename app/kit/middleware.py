"""ASGI middleware: request id, access log, and the last-resort 500 problem."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit.errors import internal_error_response
from app.kit.metrics import HTTP_LATENCY, HTTP_REQUESTS

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is echoed only when it is short and plain, so it cannot inject into logs.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = structlog.get_logger("app.http")


def _route_template(scope: Scope) -> str:
    """The matched route's template ("/api/v1/orders/{order_id}"), which keeps metric
    label values few. A route inside an included router knows only its own part of
    the path, so the prefix is whatever precedes the part its pattern matches."""
    route = scope.get("route")
    pattern = getattr(route, "path_regex", None)
    template = getattr(route, "path_format", None)
    if pattern is None or template is None:
        return "unmatched"
    path: str = scope["path"]
    for cut, char in enumerate(path):
        if char == "/" and pattern.match(path[cut:]):
            return path[:cut] + str(template)
    return str(template)


class RequestContextMiddleware:
    """Binds ``request_id`` for every log line of a request and echoes it back.

    It also turns an unhandled exception into a problem+json 500 here, inside the
    middleware, so that even that answer carries the request id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _ACCEPTABLE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as exc:
            log.exception("http.unhandled_error", path=scope["path"], exc_type=type(exc).__name__)
            if response_started:
                raise
            await internal_error_response(scope["path"])(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            HTTP_REQUESTS.labels(scope["method"], route, str(status_code)).inc()
            HTTP_LATENCY.labels(scope["method"], route).observe(elapsed)
            log.info(
                "http.request.completed",
                method=scope["method"],
                path=scope["path"],
                status=status_code,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
