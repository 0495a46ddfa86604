"""Stock, synchronous waits and the connection test, over real HTTP."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.kit.errors import problem_type
from tests.support.bridge import Bridge

CONFIGURATION = "i9-9900K-64Gb-2x1024NVMe"


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    # A long stock cache keeps DCImanager's side of the arithmetic fixed while the
    # test moves orders; a short readiness timeout keeps the outage test quick.
    return engine_settings.model_copy(
        update={"stock_cache_seconds": 300, "readiness_timeout_seconds": 0.2}
    )


def _row(stock: dict[str, object], configuration: str) -> dict[str, int]:
    items = stock["items"]
    assert isinstance(items, list)
    row: dict[str, int] = next(i for i in items if i["configuration"] == configuration)
    return row


async def test_stock_subtracts_servers_promised_to_provisioning_orders(bridge: Bridge) -> None:
    before = _row((await bridge.api.get("/api/v1/stock")).json(), CONFIGURATION)
    assert before["reserved"] == 0
    assert before["available"] == before["dcimanager_free"] == 6

    await bridge.sim_faults(down=True)  # provisioning cannot get past its first step
    orders = [await bridge.create(f"svc-stock-{n}") for n in range(2)]
    await bridge.create("svc-other", configuration="E-2288G-32Gb-2x480SSD")
    during = _row((await bridge.api.get("/api/v1/stock")).json(), CONFIGURATION)
    assert during["dcimanager_free"] == 6
    assert during["reserved"] == 2
    assert during["available"] == 4

    await bridge.sim_faults(down=False)
    for order in orders:
        await bridge.wait_order(order["id"], lambda o: o["status"] == "active")
    after = _row((await bridge.api.get("/api/v1/stock")).json(), CONFIGURATION)
    assert after["reserved"] == 0


async def test_prefer_wait_answers_when_the_operation_settles(bridge: Bridge) -> None:
    created = await bridge.api.post(
        "/api/v1/orders",
        json={
            "external_id": "svc-wait",
            "customer": {"external_id": "c-wait", "email": "wait@example.com"},
            "configuration": CONFIGURATION,
            "os_template_id": 1,
        },
        headers={"Prefer": "wait=30"},
    )
    assert created.status_code == 200, created.text
    assert created.headers["preference-applied"] == "wait=30"
    order = created.json()
    assert order["status"] == "active"

    suspended = await bridge.api.post(
        f"/api/v1/orders/{order['id']}/suspend",
        json={"reason": "non_payment"},
        headers={"Prefer": "respond-async, wait=30"},
    )
    assert suspended.status_code == 200
    assert suspended.json()["status"] == "succeeded"


async def test_prefer_wait_gives_202_when_time_runs_out(bridge: Bridge) -> None:
    await bridge.sim_faults(latency_ms=400)
    response = await bridge.api.post(
        "/api/v1/orders",
        json={
            "external_id": "svc-slow",
            "customer": {"external_id": "c-slow", "email": "slow@example.com"},
            "configuration": CONFIGURATION,
            "os_template_id": 1,
        },
        headers={"Prefer": "wait=1"},
    )
    assert response.status_code == 202
    assert response.headers["preference-applied"] == "wait=1"
    assert response.json()["status"] == "provisioning"


async def test_ping_checks_the_dcimanager_login(bridge: Bridge) -> None:
    ok = await bridge.api.get("/api/v1/ping")
    assert ok.status_code == 200
    assert ok.json()["dci_mode"] == "simulator"
    assert ok.json()["api_client"] == "billing"

    await bridge.sim_faults(down=True)
    down = await bridge.api.get("/api/v1/ping")
    assert down.status_code == 503
    assert down.json()["type"] == problem_type("dcimanager_unavailable")


async def test_readyz_names_dcimanager_when_it_is_down(bridge: Bridge) -> None:
    await bridge.sim_faults(down=True)
    response = await bridge.api.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["dcimanager"]["status"] == "failing"
    assert checks["database"]["status"] == "ok", checks
    assert checks["worker"]["status"] == "ok"
