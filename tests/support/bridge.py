"""Driving a running dcibridge (with its embedded simulator) over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

TERMINAL_ORDER_STATUSES = {"active", "suspended", "terminated", "failed"}
FINAL_OPERATION_STATUSES = {"succeeded", "failed", "cancelled"}


def order_body(external_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": external_id,
        "customer": {
            "external_id": f"cust-{external_id}",
            "email": f"{external_id}@customers.example.com",
            "name": "Test Customer",
        },
        "configuration": "i9-9900K-64Gb-2x1024NVMe",
        "os_template_id": 1,
        "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0 test@example"],
        "ipv4_count": 2,
        "hostname": f"{external_id}.example.com",
    }
    body.update(overrides)
    return body


@dataclass
class Bridge:
    """The API (as a billing client with a key) and the simulator behind it."""

    api: httpx.AsyncClient
    simulator_url: str

    async def sim_state(self) -> dict[str, Any]:
        response = await self.api.get(f"{self.simulator_url}/_sim/state")
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    async def sim_faults(self, **faults: Any) -> None:
        response = await self.api.post(f"{self.simulator_url}/_sim/faults", json=faults)
        response.raise_for_status()

    async def sim_server(self, server_id: int) -> dict[str, Any]:
        state = await self.sim_state()
        return next(server for server in state["servers"] if server["id"] == server_id)

    async def order(self, order_id: int) -> dict[str, Any]:
        response = await self.api.get(f"/api/v1/orders/{order_id}")
        response.raise_for_status()
        order: dict[str, Any] = response.json()
        return order

    async def create(self, external_id: str, **overrides: Any) -> dict[str, Any]:
        response = await self.api.post("/api/v1/orders", json=order_body(external_id, **overrides))
        assert response.status_code == 202, response.text
        order: dict[str, Any] = response.json()
        return order

    async def request(self, order_id: int, verb: str, **body: Any) -> dict[str, Any]:
        response = await self.api.post(f"/api/v1/orders/{order_id}/{verb}", json=body)
        assert response.status_code == 202, response.text
        operation: dict[str, Any] = response.json()
        return operation

    async def wait_order(
        self,
        order_id: int,
        until: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            order = await self.order(order_id)
            if until(order):
                return order
            if time.monotonic() > deadline:
                raise AssertionError(f"order {order_id} did not get there in time: {order}")
            await asyncio.sleep(0.1)

    async def settle(self, order_id: int, *, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until every operation of the order has finished."""
        return await self.wait_order(
            order_id,
            lambda order: all(
                op["status"] in FINAL_OPERATION_STATUSES for op in order["operations"]
            ),
            timeout=timeout,
        )
