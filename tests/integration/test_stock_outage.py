"""Orders sent together while DCImanager is down share one stock refresh, over real HTTP."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from app.kit.errors import problem_type
from app.main import create_app
from tests.conftest import ApiKeyFactory
from tests.support.bridge import Bridge, order_body
from tests.support.live_server import live_server

CACHE_SECONDS = 2.0
CONCURRENT_ORDERS = 5
STOCK_CALL = "GET /api/dci/v3/server/configuration"


@pytest.fixture
async def bridge(settings: Settings, make_api_key: ApiKeyFactory) -> AsyncIterator[Bridge]:
    # No worker: only the API's own calls to DCImanager are counted. No 503
    # retries, and a slow DCImanager, so that one refresh is one call and
    # lasts until every order of a burst is waiting for it.
    app = create_app(
        settings.model_copy(
            update={"stock_cache_seconds": CACHE_SECONDS, "dci_retry_503_seconds": 0}
        )
    )
    key = await make_api_key(name="billing")
    with live_server(app) as base_url:
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            bridge = Bridge(api=client, simulator_url=f"{base_url}/simulator")
            await bridge.sim_faults(latency_ms=300)
            yield bridge


async def _calls(bridge: Bridge) -> Counter[str]:
    return Counter((await bridge.sim_state())["calls"]["by_endpoint"])


async def _order_burst(bridge: Bridge, prefix: str) -> None:
    responses = await asyncio.gather(
        *(
            bridge.api.post("/api/v1/orders", json=order_body(f"{prefix}-{n}"))
            for n in range(CONCURRENT_ORDERS)
        )
    )
    assert [r.status_code for r in responses] == [202] * CONCURRENT_ORDERS, [
        r.text for r in responses
    ]


async def test_orders_during_an_outage_share_one_refresh_and_use_the_last_snapshot(
    bridge: Bridge,
) -> None:
    warm = await bridge.api.get("/api/v1/stock")
    assert warm.status_code == 200
    await bridge.sim_faults(down=True)
    await asyncio.sleep(CACHE_SECONDS + 0.1)
    before = await _calls(bridge)

    await _order_burst(bridge, "svc-stale")
    # The snapshot from before the outage still tells a configuration that does
    # not exist from one that does.
    unknown = await bridge.api.post(
        "/api/v1/orders", json=order_body("svc-unknown", configuration="no-such-configuration")
    )
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["type"] == problem_type("unknown_configuration")
    stock = await bridge.api.get("/api/v1/stock")
    assert stock.status_code == 200
    assert stock.json()["dcimanager_checked_at"] == warm.json()["dcimanager_checked_at"]

    assert (await _calls(bridge)) - before == Counter({STOCK_CALL: 1})


async def test_orders_during_an_outage_without_a_snapshot_fail_fast_after_one_refresh(
    bridge: Bridge,
) -> None:
    await bridge.sim_faults(down=True)
    before = await _calls(bridge)

    # As before: accepted unchecked rather than refused over an outage.
    await _order_burst(bridge, "svc-unchecked")
    stock = await bridge.api.get("/api/v1/stock")
    assert stock.status_code == 503
    assert stock.json()["type"] == problem_type("dcimanager_unavailable")

    # The one call is the login that the refresh could not get past.
    assert sum(((await _calls(bridge)) - before).values()) == 1
