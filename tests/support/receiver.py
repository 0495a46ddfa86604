"""A real HTTP endpoint standing in for a billing platform that receives callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.live_server import live_server


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class CallbackReceiver:
    """Records every delivery; answers from ``script`` first ("500", "hang"), then 200."""

    script: list[str] = field(default_factory=list)
    hang_seconds: float = 5.0
    received: list[Received] = field(default_factory=list)
    url: str = ""

    async def _endpoint(self, request: Request) -> Response:
        self.received.append(Received(dict(request.headers), await request.body()))
        action = self.script.pop(0) if self.script else "200"
        if action == "hang":
            await asyncio.sleep(self.hang_seconds)
        return Response(status_code=int(action) if action.isdigit() else 200)

    @contextmanager
    def serving(self) -> Iterator[CallbackReceiver]:
        app = Starlette(routes=[Route("/hooks", self._endpoint, methods=["POST"])])
        with live_server(app, lifespan="off") as base_url:
            self.url = f"{base_url}/hooks"
            yield self

    async def wait_for(self, count: int, *, within: float = 30.0) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + within
        while len(self.received) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"got {len(self.received)} callbacks, wanted {count}")
            await asyncio.sleep(0.05)
        return self.received
