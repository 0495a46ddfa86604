"""An in-memory stand-in for DCImanager, seen through ``httpx.MockTransport``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from app.dci.auth import Credentials
from app.dci.backoff import BackoffPolicy
from app.dci.client import DCIClient

BASE_URL = "https://dci.example"
EMAIL = "billing@example.com"
PASSWORD = "pw-Zq8!never-logged"
LOGIN_PATH = "/api/auth/v4/public/token"


def error(status: int, code: int, msg: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "msg": msg, "value": {}}})


@dataclass
class FakeClock:
    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeDCI:
    """Issues tokens ``tok-1``, ``tok-2``...; only the newest unexpired one is accepted.

    ``routes`` maps ``"METHOD /path"`` to a reply, a list of replies consumed in
    order (the last one repeats), or a function of the request.
    """

    def __init__(self) -> None:
        # Any: mypy cannot type the mixed reply lists the tests write inline.
        self.routes: dict[str, Any] = {}
        self.requests: list[httpx.Request] = []
        self.logins = 0
        self.token: str | None = None
        self.login_reply: httpx.Response | None = None
        # Awaited before answering anything but a login, to line up concurrent callers.
        self.hold: Callable[[httpx.Request], Awaitable[None]] | None = None

    def expire_token(self) -> None:
        """Make the current token stale, as DCImanager does when a session times out."""
        self.token = None

    def calls(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST" and request.url.path.endswith(LOGIN_PATH):
            if self.login_reply is not None:
                return self.login_reply
            self.logins += 1
            self.token = f"tok-{self.logins}"
            return httpx.Response(201, json={"id": 1, "token": self.token})
        if self.hold is not None:
            await self.hold(request)
        if self.token is None or request.headers.get("x-xsrf-token") != self.token:
            return error(401, 3001, "Unauthorized")
        key = f"{request.method} {request.url.path}"
        route = self.routes.get(key)
        if route is None:
            return error(404, 1106, "Request handler not found")
        reply = _next_reply(route, request)
        if isinstance(reply, Awaitable):
            reply = await reply
        if isinstance(reply, Exception):
            raise reply
        assert isinstance(reply, httpx.Response)
        return reply

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def _next_reply(route: Any, request: httpx.Request) -> Any:
    if isinstance(route, list):
        return route.pop(0) if len(route) > 1 else route[0]
    if isinstance(route, httpx.Response | Exception):
        return route
    return route(request)


def make_client(
    fake: FakeDCI,
    *,
    budget: float = 60.0,
    clock: FakeClock | None = None,
    max_concurrent: int | None = None,
    batch_server_reads: bool = True,
) -> DCIClient:
    clock = clock or FakeClock()
    http = httpx.AsyncClient(base_url=BASE_URL, transport=fake.transport())
    return DCIClient(
        http,
        credentials=Credentials(email=EMAIL, password=SecretStr(PASSWORD)),
        backoff=BackoffPolicy(
            budget_seconds=budget, sleep=clock.sleep, clock=clock, jitter=lambda: 1.0
        ),
        max_concurrent=max_concurrent,
        batch_server_reads=batch_server_reads,
    )


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None
