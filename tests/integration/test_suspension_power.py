"""Whether a suspension powers the server off is a setting; unsuspension undoes
exactly what the suspension did."""

from __future__ import annotations

from collections import Counter

import pytest

from app.config import Settings
from tests.support.bridge import Bridge

POWER_OFF = "POST /api/dci/v3/server/{server_id}/power_off"
POWER_ON = "POST /api/dci/v3/server/{server_id}/power_on"


@pytest.fixture(params=[False, True], ids=["ports-only", "power-off"])
def engine_settings(engine_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return engine_settings.model_copy(update={"suspend_powers_off": request.param})


async def test_suspend_and_unsuspend_follow_the_power_setting(
    bridge: Bridge, engine_settings: Settings
) -> None:
    order = await bridge.create("svc-power", ipv4_count=0)
    order = await bridge.wait_order(order["id"], lambda o: o["status"] == "active")
    before = Counter((await bridge.sim_state())["calls"]["by_endpoint"])

    await bridge.request(order["id"], "suspend", reason="non_payment")
    order = await bridge.settle(order["id"])
    server = await bridge.sim_server(order["server_id"])
    assert all(port["admin_status"] == "down" for port in server["ports"])
    expected_power = "off" if engine_settings.suspend_powers_off else "on"
    assert server["power_status"] == expected_power

    await bridge.request(order["id"], "unsuspend", reason="non_payment")
    order = await bridge.settle(order["id"])
    assert order["status"] == "active"
    server = await bridge.sim_server(order["server_id"])
    assert server["power_status"] == "on"
    assert all(port["admin_status"] == "up" for port in server["ports"])

    calls = Counter((await bridge.sim_state())["calls"]["by_endpoint"]) - before
    powered = 1 if engine_settings.suspend_powers_off else 0
    assert calls[POWER_OFF] == powered
    assert calls[POWER_ON] == powered


pytestmark = pytest.mark.usefixtures("db_engine")
