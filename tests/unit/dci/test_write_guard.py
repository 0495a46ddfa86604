"""The write guard: a worker that may have lost its lease sends no write at all."""

from __future__ import annotations

import httpx
import pytest

from app.dci.session import WRITE_GUARD
from tests.unit.dci.fakes import FakeClock, FakeDCI, error, make_client

SERVER_PATH = "/api/dci/v3/server/7"
POWER_OFF = "/api/dci/v3/server/7/power_off"
UNAVAILABLE = error(503, 5003, "Service temporarily unavailable")


class Stop(Exception):
    pass


def _refuse() -> None:
    raise Stop


async def test_a_refusing_guard_stops_writes_before_they_are_sent_and_lets_reads_pass() -> None:
    fake = FakeDCI()
    fake.routes[f"GET {SERVER_PATH}"] = httpx.Response(200, json={"id": 7})
    fake.routes[f"POST {POWER_OFF}"] = httpx.Response(200, json={"id": 7, "task": 9})
    token = WRITE_GUARD.set(_refuse)
    try:
        async with make_client(fake) as client:
            assert (await client.get_server(server_id=7)).id == 7
            with pytest.raises(Stop):
                await client.power_off(server_id=7)
    finally:
        WRITE_GUARD.reset(token)
    assert fake.calls("POST", POWER_OFF) == []
    assert len(fake.calls("GET", SERVER_PATH)) == 1


async def test_the_guard_is_asked_again_before_each_repeat_of_a_write() -> None:
    fake = FakeDCI()
    fake.routes[f"POST {POWER_OFF}"] = [UNAVAILABLE, UNAVAILABLE]
    asked: list[int] = []

    def allow_once() -> None:
        asked.append(1)
        if len(asked) > 1:  # the lease ran out while the first attempt was backing off
            raise Stop

    token = WRITE_GUARD.set(allow_once)
    try:
        async with make_client(fake, clock=FakeClock()) as client:
            with pytest.raises(Stop):
                await client.power_off(server_id=7)
    finally:
        WRITE_GUARD.reset(token)
    assert len(fake.calls("POST", POWER_OFF)) == 1
    assert len(asked) == 2
