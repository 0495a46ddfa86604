"""Orders under DCImanager faults: lost answers to writes and 503 storms."""

from __future__ import annotations

import pytest

from tests.support.bridge import Bridge

ORDERS = 6


async def _provision_and_terminate_all(bridge: Bridge, prefix: str) -> None:
    created = [await bridge.create(f"{prefix}-{n}") for n in range(ORDERS)]
    active = [
        await bridge.wait_order(order["id"], lambda o: o["status"] in ("active", "failed"))
        for order in created
    ]
    assert [order["status"] for order in active] == ["active"] * ORDERS, [
        order["failure_reason"] for order in active
    ]

    state = await bridge.sim_state()
    by_id = {server["id"]: server for server in state["servers"]}
    for order in active:
        server = by_id[order["server_id"]]
        assert server["owner_email"] == order["customer"]["email"]
        assert server["os_install_count"] == 1, "an OS install was repeated"
        assert sorted(server["ips"]) == order["ip_addresses"]
        assert len(server["ips"]) == 2, "an IP was allocated twice or lost"
    assert len({order["server_id"] for order in active}) == ORDERS

    for order in active:
        await bridge.request(order["id"], "terminate")
    for order in active:
        done = await bridge.wait_order(
            order["id"],
            lambda o: o["status"] == "terminated" or o["operations"][-1]["status"] == "failed",
        )
        assert done["status"] == "terminated", done["operations"][-1]["error"]

    state = await bridge.sim_state()
    assert state["ips"] == [], "IPs leaked after termination"
    for order in active:
        server = next(s for s in state["servers"] if s["id"] == order["server_id"])
        assert server["owner_email"] is None
        assert server["wipe_count"] == 1, "a wipe was repeated or skipped"


async def test_lost_answers_to_writes_never_duplicate_an_effect(bridge: Bridge) -> None:
    await bridge.sim_faults(seed=7, drop_write_response_rate=0.3)
    await _provision_and_terminate_all(bridge, "svc-drop")
    state = await bridge.sim_state()
    assert state["calls"]["dropped_responses"] > 0, "the fault never fired"


async def test_a_503_storm_slows_orders_down_but_fails_none(bridge: Bridge) -> None:
    await bridge.sim_faults(seed=11, error_503_rate=0.3)
    await _provision_and_terminate_all(bridge, "svc-503")
    state = await bridge.sim_state()
    assert state["calls"]["injected_503"] > 0, "the fault never fired"


pytestmark = pytest.mark.usefixtures("db_engine")
