"""Free-server searches of one configuration asked at once share a call; none takes
an answer read before it was asked."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.dci.exceptions import DCIRetryableError
from app.dci.free_servers import FreeServerSearches
from app.dci.models import Server
from tests.unit.dci.fakes import FakeDCI, make_client


class HeldSearch:
    """Records each call and answers it only when told, so that searches queue up."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.answers: list[asyncio.Future[list[Server]]] = []

    async def __call__(self, configuration: str, limit: int) -> list[Server]:
        self.calls.append((configuration, limit))
        answer: asyncio.Future[list[Server]] = asyncio.get_running_loop().create_future()
        self.answers.append(answer)
        return await answer

    def answer(self, call: int, server_ids: range | list[int]) -> None:
        self.answers[call].set_result([Server(id=i) for i in server_ids])


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_search_goes_out_at_once_with_its_own_limit() -> None:
    search = HeldSearch()
    searches = FreeServerSearches(search=search)
    found = asyncio.create_task(searches.find("small", 3))
    await settle()
    assert search.calls == [("small", 3)]
    search.answer(0, [4, 5, 6])
    assert [s.id for s in await found] == [4, 5, 6]


async def test_searches_asked_during_a_call_leave_together_after_it() -> None:
    search = HeldSearch()
    searches = FreeServerSearches(search=search)
    first = asyncio.create_task(searches.find("small", 2))
    await settle()
    queued = [asyncio.create_task(searches.find("small", limit)) for limit in (5, 3, 4)]
    await settle()
    # They wait rather than take the answer of a call sent before they asked.
    assert search.calls == [("small", 2)]
    search.answer(0, [1, 2])
    assert [s.id for s in await first] == [1, 2]
    await settle()
    # One call: the largest limit, plus one server for each other search.
    assert search.calls == [("small", 2), ("small", 5 + 2)]
    search.answer(1, range(10, 17))
    answers = await asyncio.gather(*queued)
    assert all([s.id for s in a] == list(range(10, 17)) for a in answers)
    # Each search owns its list: one claim reordering its candidates moves no other's.
    answers[0].reverse()
    assert [s.id for s in answers[1]] == list(range(10, 17))


async def test_configurations_do_not_wait_for_each_other() -> None:
    search = HeldSearch()
    searches = FreeServerSearches(search=search)
    small = asyncio.create_task(searches.find("small", 1))
    large = asyncio.create_task(searches.find("large", 1))
    await settle()
    assert search.calls == [("small", 1), ("large", 1)]
    search.answer(1, [9])
    assert [s.id for s in await large] == [9]
    assert not small.done()
    search.answer(0, [1])
    assert [s.id for s in await small] == [1]


async def test_a_failed_call_fails_its_searches_only() -> None:
    search = HeldSearch()
    searches = FreeServerSearches(search=search)
    failing = asyncio.create_task(searches.find("small", 1))
    await settle()
    queued = asyncio.create_task(searches.find("small", 1))
    await settle()
    unavailable = DCIRetryableError("503", method="GET", path="/api/dci/v3/server", status=503)
    search.answers[0].set_exception(unavailable)
    with pytest.raises(DCIRetryableError):
        await failing
    await settle()
    search.answer(1, [3])
    assert [s.id for s in await queued] == [3]


async def test_a_cancelled_search_leaves_the_others_their_answer() -> None:
    search = HeldSearch()
    searches = FreeServerSearches(search=search)
    first = asyncio.create_task(searches.find("small", 1))
    await settle()
    gone, kept = (asyncio.create_task(searches.find("small", 1)) for _ in range(2))
    await settle()
    gone.cancel()
    search.answer(0, [1])
    await first
    await settle()
    search.answer(1, [2, 3])
    assert [s.id for s in await kept] == [2, 3]
    assert gone.cancelled()


async def test_the_client_sends_queued_searches_as_one_list_call() -> None:
    fake = FakeDCI()
    released = asyncio.Event()
    limits: list[str] = []

    async def hold(request: httpx.Request) -> None:
        await released.wait()

    def listed(request: httpx.Request) -> httpx.Response:
        limits.append(request.url.params["limit"])
        count = int(request.url.params["limit"])
        return httpx.Response(200, json={"list": [{"id": i} for i in range(count)], "size": 99})

    fake.routes["GET /api/dci/v3/server"] = listed
    fake.hold = hold
    async with make_client(fake) as client:

        def find(limit: int) -> asyncio.Task[Any]:
            return asyncio.create_task(client.find_free_servers(configuration="c", limit=limit))

        first = find(1)
        await asyncio.sleep(0.01)
        queued = [find(4), find(2)]
        await asyncio.sleep(0.01)
        released.set()
        await asyncio.gather(first, *queued)
    assert limits == ["1", "5"]
    assert [len(task.result()) for task in queued] == [5, 5]
