"""Concurrent reads of single servers share filtered list calls, and fall back to
single reads whenever the list's answer cannot stand in for them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from app.dci.client import DCIClient
from app.dci.exceptions import DCIAuthError, DCINotFound
from app.dci.models import Server
from app.dci.server_reads import ServerReads
from tests.unit.dci.fakes import FakeDCI, error, make_client

LIST_PATH = "/api/dci/v3/server"


def whole_server(server_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": server_id,
        "state": "ok",
        "operation": None,
        "owner_email": None,
        "power_status": "on",
        "switch_connection": [],
        "ip": [],
        **fields,
    }


class Servers:
    """Answers single reads and id-filtered lists of servers 1..20; holds every call
    until told, so that the reads asked meanwhile queue up."""

    def __init__(self, fake: FakeDCI, *, item: Any = whole_server) -> None:
        self.released = asyncio.Event()
        self.item = item
        self.filters: list[str] = []
        fake.routes[f"GET {LIST_PATH}"] = self.listed
        for server_id in range(1, 21):
            fake.routes[f"GET {LIST_PATH}/{server_id}"] = self.single
        fake.hold = self.hold

    async def hold(self, request: httpx.Request) -> None:
        await self.released.wait()

    def single(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=whole_server(int(request.url.path.rsplit("/", 1)[1])))

    def listed(self, request: httpx.Request) -> httpx.Response:
        where = request.url.params["where"]
        self.filters.append(where)
        ids = [int(term.split(" EQ ")[1]) for term in where.split(" OR ")]
        return httpx.Response(
            200, json={"list": [self.item(i) for i in ids if i <= 20], "size": len(ids)}
        )


def single_reads(fake: FakeDCI) -> int:
    return sum(
        1 for r in fake.requests if r.method == "GET" and r.url.path.startswith(f"{LIST_PATH}/")
    )


async def held_reads(client: DCIClient, servers: Servers, ids: list[int]) -> list[Any]:
    """Read 1 goes out alone and is held there; ``ids`` are asked meanwhile."""
    first = [asyncio.create_task(client.get_server(server_id=1))]
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(client.get_server(server_id=i)) for i in ids]
    await asyncio.sleep(0.01)
    servers.released.set()
    return await asyncio.gather(*first, *rest, return_exceptions=True)


async def read_while_one_is_held(
    fake: FakeDCI, servers: Servers, ids: list[int], **client_options: Any
) -> list[Any]:
    async with make_client(fake, **client_options) as client:
        return await held_reads(client, servers, ids)


async def test_reads_asked_while_a_call_is_out_leave_together_in_one_list_call() -> None:
    fake = FakeDCI()
    servers = Servers(fake)
    ids = [5, 3, 5, 9, 12]
    answers = await read_while_one_is_held(fake, servers, ids)

    assert [server.id for server in answers] == [1, *ids]
    # The first went out alone (nothing was on the wire); the rest queued behind it.
    assert single_reads(fake) == 1
    assert servers.filters == ["id EQ 5 OR id EQ 3 OR id EQ 9 OR id EQ 12"]
    listed = fake.calls("GET", LIST_PATH)[0]
    assert listed.url.params["limit"] == "4"


async def test_a_server_missing_from_the_list_is_read_on_its_own() -> None:
    fake = FakeDCI()
    servers = Servers(fake)
    answers = await read_while_one_is_held(fake, servers, [4, 21])
    # 21 is not in the list's answer, and its own read says it does not exist.
    assert answers[1].id == 4
    assert isinstance(answers[2], DCINotFound)
    assert [r.url.path for r in fake.requests if r.url.path.endswith("/21")] == [f"{LIST_PATH}/21"]


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param("partial_items", id="items-lack-fields"),
        pytest.param("bad_filter", id="filter-refused"),
    ],
)
async def test_an_answer_that_cannot_stand_in_for_single_reads_turns_batching_off(
    refusal: str,
) -> None:
    fake = FakeDCI()
    if refusal == "partial_items":
        servers = Servers(fake, item=lambda i: {"id": i, "state": "ok"})
    else:
        servers = Servers(fake)
        fake.routes[f"GET {LIST_PATH}"] = error(400, 2002, "Unknown field in where")
    async with make_client(fake) as client:
        answers = await held_reads(client, servers, [3, 4])
        assert [server.id for server in answers] == [1, 3, 4]
        assert single_reads(fake) == 3

        # From then on every read is a single one, however many wait together.
        later = await asyncio.gather(*(client.get_server(server_id=i) for i in (5, 6, 7)))
    assert [server.id for server in later] == [5, 6, 7]
    assert len(fake.calls("GET", LIST_PATH)) == 1
    assert single_reads(fake) == 6


async def test_with_batching_off_every_read_is_its_own_call() -> None:
    fake = FakeDCI()
    servers = Servers(fake)
    answers = await read_while_one_is_held(fake, servers, [3, 4, 4], batch_server_reads=False)
    assert [server.id for server in answers] == [1, 3, 4, 4]
    assert fake.calls("GET", LIST_PATH) == []
    assert single_reads(fake) == 4


async def test_a_refused_login_on_the_list_call_fails_its_reads_but_keeps_batching() -> None:
    fake = FakeDCI()
    servers = Servers(fake)
    fake.routes[f"GET {LIST_PATH}"] = error(403, 3001, "Access denied")
    async with make_client(fake) as client:
        answers = await held_reads(client, servers, [3, 4])
        assert answers[0].id == 1
        assert all(isinstance(answer, DCIAuthError) for answer in answers[1:])

        # Batching is still on: the next reads that queue up leave as one list call.
        fake.routes[f"GET {LIST_PATH}"] = servers.listed
        servers.released.clear()
        again = await held_reads(client, servers, [5, 6])
    assert [answer.id for answer in again] == [1, 5, 6]
    assert servers.filters == ["id EQ 5 OR id EQ 6"]


async def test_a_failed_list_call_fails_the_reads_that_waited_for_it() -> None:
    fake = FakeDCI()
    servers = Servers(fake)
    fake.routes[f"GET {LIST_PATH}"] = httpx.ConnectError("connection refused")
    answers = await read_while_one_is_held(fake, servers, [3, 4])
    assert answers[0].id == 1
    assert all(isinstance(answer, Exception) for answer in answers[1:])


async def test_a_full_batch_leaves_beside_the_call_already_out() -> None:
    held = asyncio.Event()
    calls: list[list[int]] = []

    async def read_one(server_id: int) -> Server:
        calls.append([server_id])
        await held.wait()
        return Server(id=server_id)

    async def read_many(ids: Sequence[int]) -> list[Server]:
        calls.append(list(ids))
        return [Server(id=i) for i in ids]

    reads = ServerReads(read_one=read_one, read_many=read_many, batch_size=3)
    first = asyncio.create_task(reads.get(1))
    await asyncio.sleep(0.01)
    # Two reads wait behind the held one: not a full batch yet.
    waiting = [asyncio.create_task(reads.get(i)) for i in (2, 3)]
    await asyncio.sleep(0.01)
    assert calls == [[1]]
    # The third makes the batch full: it goes out without waiting for read 1.
    waiting.append(asyncio.create_task(reads.get(4)))
    assert [s.id for s in await asyncio.gather(*waiting)] == [2, 3, 4]
    assert calls == [[1], [2, 3, 4]]
    assert not first.done()
    held.set()
    assert (await first).id == 1
