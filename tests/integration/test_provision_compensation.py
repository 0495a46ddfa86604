"""A provision given up after its OS install may have started: the server is wiped
before it goes back to the pool."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import Settings
from tests.support.bridge import Bridge


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    # One attempt per step: "the last allowed attempt" comes at once.
    return engine_settings.model_copy(update={"step_max_attempts": 1})


async def test_a_provision_given_up_after_the_install_may_have_started_wipes_before_release(
    bridge: Bridge,
) -> None:
    """The install's start is carried out but its answer lost, on the step's last
    attempt: the order fails, and its server goes back to the pool only wiped, like
    a terminated one, never with the failed order's system on it."""
    # Slow DCImanager calls leave time to switch faults between two steps.
    await bridge.sim_faults(latency_ms=700)
    order = await bridge.create("svc-lost-install")
    await _wait_step(bridge, order["id"], "allocate_ips", "succeeded")
    await bridge.sim_faults(drop_write_response_rate=1.0)
    await _wait_step(bridge, order["id"], "install_os", "failed")
    await bridge.sim_faults(drop_write_response_rate=0.0, latency_ms=0)
    order = await bridge.wait_order(order["id"], _failed_and_settled)
    operation = order["operations"][0]
    assert operation["error_code"] == "retries_exhausted", operation
    undo = [s["name"] for s in operation["steps"]][-4:]
    assert undo == ["power_off", "wipe_disks", "remove_ips", "release_owner"]
    assert all(s["status"] == "succeeded" for s in operation["steps"][-4:]), operation
    server = await bridge.sim_server(order["server_id"])
    assert server["os_install_count"] == 1
    assert server["wipe_count"] == 1
    assert server["owner_email"] is None
    assert server["ips"] == []
    assert server["state"] == "ok"


async def _wait_step(bridge: Bridge, order_id: int, step: str, status: str) -> None:
    def reached(order: dict[str, Any]) -> bool:
        steps = {s["name"]: s["status"] for s in order["operations"][0]["steps"]}
        return steps.get(step) == status

    await bridge.wait_order(order_id, reached)


def _failed_and_settled(order: dict[str, Any]) -> bool:
    return order["status"] == "failed" and all(
        op["status"] in ("succeeded", "failed") for op in order["operations"]
    )
