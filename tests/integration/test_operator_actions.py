"""The operator's levers on operations: retry a failure, cancel, give up."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit.db import create_sessionmaker
from app.orchestration import service
from tests.support.bridge import Bridge


async def test_retrying_a_failed_provision_finishes_it_without_doubling_anything(
    bridge: Bridge, db_engine: AsyncEngine
) -> None:
    await bridge.sim_faults(fail_rate={"os_install": 1.0})
    order = await bridge.create("svc-retry-op")
    order = await bridge.wait_order(order["id"], lambda o: o["status"] == "failed")
    operation_id = order["operations"][0]["id"]

    await bridge.sim_faults(fail_rate={})
    async with create_sessionmaker(db_engine)() as session, session.begin():
        await service.retry_operation(session, operation_id=operation_id)
    order = await bridge.wait_order(order["id"], lambda o: o["status"] in ("active", "failed"))
    assert order["status"] == "active", order["failure_reason"]
    [operation] = order["operations"]
    assert [s["name"] for s in operation["steps"]] == [
        "ensure_user",
        "claim_server",
        "set_owner",
        "allocate_ips",
        "install_os",
        "ports_up",
        "power_on",
    ]
    state = await bridge.sim_state()
    owned = [s for s in state["servers"] if s["owner_email"] == order["customer"]["email"]]
    assert len(owned) == 1
    assert len(owned[0]["ips"]) == 2
    assert len(state["ips"]) == 2


async def test_cancel_a_queued_operation_and_mark_a_stuck_one_failed(
    bridge: Bridge, db_engine: AsyncEngine
) -> None:
    await bridge.sim_faults(down=True)  # the provision cannot make progress
    order = await bridge.create("svc-stuck")
    queued = await bridge.request(order["id"], "terminate")
    sessionmaker = create_sessionmaker(db_engine)

    async with sessionmaker() as session, session.begin():
        await service.cancel_operation(session, operation_id=queued["id"])
    async with sessionmaker() as session, session.begin():
        with pytest.raises(service.OperationActionRefused):
            await service.retry_operation(session, operation_id=order["operations"][0]["id"])

    async with sessionmaker() as session, session.begin():
        await service.mark_operation_failed(
            session, operation_id=order["operations"][0]["id"], reason="DCImanager offline"
        )
    order = await bridge.order(order["id"])
    assert order["status"] == "failed"
    assert [op["status"] for op in order["operations"]] == ["failed", "cancelled"]
    assert order["operations"][0]["error_code"] == "marked_failed"
