"""The stock cache during a DCImanager outage: one refresh shared, failures remembered."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

import pytest

from app.dci.client import DCIClient
from app.dci.exceptions import DCIRetryableError
from app.dci.models import ConfigurationStock, Page
from app.stock.cache import StockCache

TTL = 5.0
CONFIGURATION = "i9-9900K-64Gb-2x1024NVMe"


def _page(free: dict[str, int]) -> Page[ConfigurationStock]:
    return Page[ConfigurationStock](
        items=[ConfigurationStock(configuration=c, free_server_count=n) for c, n in free.items()]
    )


def _unreachable() -> DCIRetryableError:
    return DCIRetryableError(
        "DCImanager GET /server/configuration: not reachable (ConnectError)",
        method="GET",
        path="/api/dci/v3/server/configuration",
    )


@dataclass
class FakeDCI:
    """Answers with ``answer`` (raising it if it is an exception) once ``gate`` opens."""

    answer: Page[ConfigurationStock] | Exception
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    called: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    async def free_servers_by_configuration(self) -> Page[ConfigurationStock]:
        self.calls += 1
        self.called.set()
        await self.gate.wait()
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache(dci: FakeDCI, clock: FakeClock, *, timeout: float = 5.0) -> StockCache:
    return StockCache(cast(DCIClient, dci), ttl_seconds=TTL, timeout=timeout, clock=clock)


async def test_concurrent_callers_share_one_failing_refresh() -> None:
    dci = FakeDCI(answer=_unreachable())
    dci.gate.clear()
    cache = _cache(dci, FakeClock())

    callers = [asyncio.create_task(cache.known_configurations()) for _ in range(5)]
    await dci.called.wait()
    await asyncio.sleep(0.01)  # every caller is waiting by now
    dci.gate.set()

    assert await asyncio.gather(*callers) == [None] * 5
    assert dci.calls == 1


async def test_concurrent_callers_share_one_timed_out_refresh() -> None:
    dci = FakeDCI(answer=_page({CONFIGURATION: 3}))
    dci.gate.clear()  # never opens: DCImanager does not answer at all
    cache = _cache(dci, FakeClock(), timeout=0.05)

    results = await asyncio.gather(*(cache.snapshot() for _ in range(5)))

    assert results == [None] * 5
    assert dci.calls == 1


async def test_after_a_failed_refresh_callers_fail_fast_until_the_period_ends() -> None:
    clock = FakeClock()
    dci = FakeDCI(answer=_unreachable())
    cache = _cache(dci, clock)

    assert await cache.snapshot() is None
    clock.now += TTL - 0.1
    assert await cache.snapshot() is None
    assert dci.calls == 1

    dci.answer = _page({CONFIGURATION: 3})
    clock.now += 0.2
    assert await cache.known_configurations() == frozenset({CONFIGURATION})
    assert dci.calls == 2


async def test_after_a_failed_refresh_the_last_good_snapshot_is_served() -> None:
    clock = FakeClock()
    dci = FakeDCI(answer=_page({CONFIGURATION: 3}))
    cache = _cache(dci, clock)
    good = await cache.snapshot()
    assert good is not None

    dci.answer = _unreachable()
    clock.now += TTL + 1
    stale = await asyncio.gather(*(cache.snapshot() for _ in range(3)))
    assert stale == [good] * 3
    assert dci.calls == 2

    clock.now += TTL - 0.1
    assert await cache.known_configurations() == frozenset({CONFIGURATION})
    assert dci.calls == 2


async def test_a_caller_that_gives_up_does_not_cancel_the_refresh_for_the_others() -> None:
    dci = FakeDCI(answer=_page({CONFIGURATION: 3}))
    dci.gate.clear()
    cache = _cache(dci, FakeClock())

    first = asyncio.create_task(cache.snapshot())
    await dci.called.wait()
    second = asyncio.create_task(cache.snapshot())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    dci.gate.set()

    snapshot = await second
    assert snapshot is not None
    assert snapshot.free == {CONFIGURATION: 3}
    assert dci.calls == 1


async def test_an_unexpected_error_reaches_the_callers_and_is_not_remembered() -> None:
    dci = FakeDCI(answer=RuntimeError("bug"))
    cache = _cache(dci, FakeClock())

    with pytest.raises(RuntimeError):
        await cache.snapshot()

    dci.answer = _page({CONFIGURATION: 3})
    assert await cache.known_configurations() == frozenset({CONFIGURATION})
    assert dci.calls == 2
