"""Calls beyond the cap wait inside dcibridge, and every one of them is still made."""

from __future__ import annotations

import asyncio

import httpx

from tests.unit.dci.fakes import FakeDCI, make_client

CAP = 3
CALLS = 20


async def test_no_more_calls_are_in_flight_than_the_cap() -> None:
    fake = FakeDCI()
    in_flight = 0
    peak = 0

    async def slow_answer(request: httpx.Request) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        # Long enough for every caller to have asked before the first answer comes.
        await asyncio.sleep(0.02)
        in_flight -= 1

    fake.hold = slow_answer
    for server_id in range(CALLS):
        fake.routes[f"GET /api/dci/v3/server/{server_id}"] = httpx.Response(
            200, json={"id": server_id}
        )
    async with make_client(fake, max_concurrent=CAP) as client:
        await client.get_server(server_id=0)  # logs in first
        servers = await asyncio.gather(
            *(client.get_server(server_id=server_id) for server_id in range(CALLS))
        )

    assert [server.id for server in servers] == list(range(CALLS))
    assert peak == CAP
