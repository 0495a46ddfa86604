"""The aiohttp-backed httpx transport against a real socket server on loopback.

What matters most is how network failures are reported: the DCImanager client
repeats a write only after a failure that proves the request was never sent
(httpx's connect errors), so a dropped answer must never look like one.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from app.kit.http_transport import AiohttpTransport

NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class LoopbackServer:
    """Answers each request with ``answer(seen)``: raw response bytes, or None to hang up."""

    answer: Callable[[Seen], Awaitable[bytes | None]]
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {
                    name.strip().lower(): value.strip()
                    for name, value in (line.split(":", 1) for line in lines if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(method, target, headers, body)
                self.requests.append(seen)
                response = await self.answer(seen)
                if response is None:
                    break
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[LoopbackServer]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()


def response(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def client(port: int, *, max_connections: int = 4, **timeouts: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        transport=AiohttpTransport(limits=httpx.Limits(max_connections=max_connections)),
        timeout=httpx.Timeout(5.0, **timeouts),
    )


async def echo(seen: Seen) -> bytes:
    described = {"method": seen.method, "target": seen.target, "body": seen.body.decode()}
    return response(
        "201 Created", json.dumps(described).encode(), "Content-Type: application/json", "X-Seen: 1"
    )


async def test_requests_and_answers_pass_through_unchanged() -> None:
    async with LoopbackServer(echo).running() as server, client(server.port) as http:
        answer = await http.post(
            "/api/dci/v3/server/7/owner",
            params={"where": "(id EQ 7)"},
            json={"owner": 3},
            headers={"X-Token": "abc"},
        )
    assert answer.status_code == 201
    assert answer.reason_phrase == "Created"
    assert answer.headers["x-seen"] == "1"
    assert answer.json() == {
        "method": "POST",
        "target": "/api/dci/v3/server/7/owner?where=%28id+EQ+7%29",
        "body": '{"owner":3}',
    }
    sent = server.requests[0]
    assert sent.headers["x-token"] == "abc"
    assert sent.headers["content-type"] == "application/json"


async def test_a_compressed_answer_is_decoded_by_httpx() -> None:
    async def compressed(_: Seen) -> bytes:
        return response("200 OK", gzip.compress(b'{"list": []}'), "Content-Encoding: gzip")

    async with LoopbackServer(compressed).running() as server, client(server.port) as http:
        answer = await http.get("/api/dci/v3/server")
    assert answer.json() == {"list": []}


async def test_connections_are_kept_and_reused() -> None:
    async with LoopbackServer(echo).running() as server, client(server.port) as http:
        for _ in range(5):
            (await http.get("/")).raise_for_status()
    assert len(server.requests) == 5
    assert server.connections == 1


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with LoopbackServer(echo).running() as server:
        port = server.port
    async with client(port) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post("/", json={})


async def test_an_answer_dropped_after_the_request_arrived_is_not_a_connect_error() -> None:
    async def hang_up(_: Seen) -> None:
        return None

    async with LoopbackServer(hang_up).running() as server, client(server.port) as http:
        with pytest.raises(httpx.TransportError) as raised:
            await http.post("/api/dci/v3/server/7/ip", json={"family": "ipv4"})
    assert not isinstance(raised.value, NEVER_SENT)
    assert len(server.requests) == 1  # the write did reach the server


async def test_a_slow_answer_is_a_read_timeout() -> None:
    async def slow(seen: Seen) -> bytes:
        await asyncio.sleep(1.0)
        return await echo(seen)

    async with LoopbackServer(slow).running() as server, client(server.port, read=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/")


async def test_the_pool_bound_holds_and_waiting_too_long_for_it_is_never_sent() -> None:
    release = asyncio.Event()

    async def held(seen: Seen) -> bytes:
        await release.wait()
        return await echo(seen)

    async with (
        LoopbackServer(held).running() as server,
        client(server.port, max_connections=1, pool=0.2) as http,
    ):
        first = asyncio.create_task(http.get("/first"))
        await asyncio.sleep(0.1)
        with pytest.raises(NEVER_SENT):
            await http.post("/second", json={})
        release.set()
        assert (await first).status_code == 201
    assert [seen.target for seen in server.requests] == ["/first"]
