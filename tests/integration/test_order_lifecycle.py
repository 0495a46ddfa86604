"""Orders end to end over real HTTP: dcibridge with its worker and embedded simulator."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.errors import problem_type
from app.orders.models import Operation
from tests.support.bridge import Bridge, order_body

CONFIGURATION = "i9-9900K-64Gb-2x1024NVMe"


def _is(status: str):  # type: ignore[no-untyped-def]
    return lambda order: (
        order["status"] == status
        and all(op["status"] in ("succeeded", "failed") for op in order["operations"])
    )


async def test_a_new_customer_costs_one_user_lookup_and_one_creation(bridge: Bridge) -> None:
    before = Counter((await bridge.sim_state())["calls"]["by_endpoint"])
    created = await bridge.create("svc-new-user")
    order = await bridge.wait_order(created["id"], _is("active"))
    state = await bridge.sim_state()
    calls = Counter(state["calls"]["by_endpoint"])
    calls.subtract(before)
    assert (calls["GET /api/dci/v3/user"], calls["POST /api/dci/v3/user"]) == (1, 1)
    # The id from the creation's answer is the user the server went to.
    server = await bridge.sim_server(order["server_id"])
    assert server["owner_email"] == "svc-new-user@customers.example.com"


async def test_full_lifecycle(bridge: Bridge) -> None:
    free_before = (await bridge.sim_state())["free_servers"][CONFIGURATION]
    created = await bridge.create("svc-1", password="Sup3r-Secret-pw")
    assert created["status"] == "provisioning"
    assert [op["kind"] for op in created["operations"]] == ["provision"]
    assert [s["name"] for s in created["operations"][0]["steps"]] == [
        "ensure_user",
        "claim_server",
        "set_owner",
        "allocate_ips",
        "install_os",
        "ports_up",
        "power_on",
    ]

    order = await bridge.wait_order(created["id"], _is("active"))
    server = await bridge.sim_server(order["server_id"])
    assert server["owner_email"] == "svc-1@customers.example.com"
    assert server["os_install_count"] == 1
    assert server["os_template"]["id"] == 1
    assert server["power_status"] == "on"
    assert all(port["admin_status"] == "up" for port in server["ports"])
    assert sorted(server["ips"]) == order["ip_addresses"]
    assert len(order["ip_addresses"]) == 2
    assert (await bridge.sim_state())["free_servers"][CONFIGURATION] == free_before - 1
    assert "Sup3r-Secret-pw" not in str(order)

    await bridge.request(order["id"], "suspend", reason="non_payment")
    order = await bridge.wait_order(order["id"], _is("suspended"))
    assert order["suspension_reason"] == "non_payment"
    server = await bridge.sim_server(order["server_id"])
    assert all(port["admin_status"] == "down" for port in server["ports"])
    assert server["power_status"] == "on"

    await bridge.request(order["id"], "unsuspend", reason="non_payment")
    order = await bridge.wait_order(order["id"], _is("active"))
    assert order["suspension_reason"] is None
    server = await bridge.sim_server(order["server_id"])
    assert all(port["admin_status"] == "up" for port in server["ports"])

    await bridge.request(order["id"], "reinstall", os_template_id=2, ssh_keys=[])
    order = await bridge.settle(order["id"])
    assert order["os_template_id"] == 2
    server = await bridge.sim_server(order["server_id"])
    assert server["os_install_count"] == 2
    assert server["os_template"]["id"] == 2

    await bridge.request(order["id"], "power", action="off")
    await bridge.settle(order["id"])
    assert (await bridge.sim_server(order["server_id"]))["power_status"] == "off"
    await bridge.request(order["id"], "power", action="on")
    order = await bridge.settle(order["id"])
    assert (await bridge.sim_server(order["server_id"]))["power_status"] == "on"
    await bridge.request(order["id"], "power", action="reset")
    order = await bridge.settle(order["id"])
    assert order["operations"][-1]["status"] == "succeeded"

    await bridge.request(order["id"], "terminate")
    order = await bridge.wait_order(order["id"], _is("terminated"))
    server = await bridge.sim_server(order["server_id"])
    assert server["owner_email"] is None
    assert server["ips"] == []
    assert server["wipe_count"] == 1
    assert server["power_status"] == "off"
    state = await bridge.sim_state()
    assert state["ips"] == []
    assert state["free_servers"][CONFIGURATION] == free_before
    assert order["ip_addresses"] == []


async def test_same_external_id_returns_the_existing_order(bridge: Bridge) -> None:
    first = await bridge.create("svc-dup")
    again = await bridge.api.post("/api/v1/orders", json=order_body("svc-dup"))
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    await bridge.wait_order(first["id"], _is("active"))
    state = await bridge.sim_state()
    owned = [s for s in state["servers"] if s["owner_email"] == "svc-dup@customers.example.com"]
    assert len(owned) == 1


async def test_nonsense_transitions_are_409(bridge: Bridge) -> None:
    order = await bridge.create("svc-409")
    response = await bridge.api.post(f"/api/v1/orders/{order['id']}/unsuspend", json={})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == problem_type("invalid_order_state")

    await bridge.request(order["id"], "suspend", reason="abuse")
    refused = await bridge.api.post(
        f"/api/v1/orders/{order['id']}/unsuspend", json={"reason": "non_payment"}
    )
    assert refused.status_code == 409
    assert "does not lift" in refused.json()["detail"]

    await bridge.request(order["id"], "terminate")
    await bridge.wait_order(order["id"], _is("terminated"))
    twice = await bridge.api.post(f"/api/v1/orders/{order['id']}/terminate", json={})
    assert twice.status_code == 409


async def test_unknown_configuration_lists_the_known_ones(bridge: Bridge) -> None:
    response = await bridge.api.post(
        "/api/v1/orders", json=order_body("svc-x", configuration="no-such-box")
    )
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == problem_type("unknown_configuration")
    assert CONFIGURATION in body["known_configurations"]


async def test_text_with_nul_and_ids_past_64_bits_are_refused_before_the_database(
    bridge: Bridge,
) -> None:
    # PostgreSQL cannot store NUL in text and the driver cannot bind an integer
    # past 64 bits: both must be a 422 on every database, never a 500.
    customer = {"external_id": "c", "email": "a@b.cd"}
    refusals = {
        ("body", "external_id"): order_body("svc-\x00", hostname=None, customer=customer),
        ("body", "customer", "name"): order_body(
            "svc-nul-name", customer={**customer, "name": "a\x00"}
        ),
        ("body", "customer", "email"): order_body(
            "svc-nul-email", customer={**customer, "email": "a\x00@b.cd"}
        ),
        ("body", "ssh_keys", 0): order_body("svc-nul-key", ssh_keys=["ssh-ed25519 A\x00"]),
        ("body", "os_template_id"): order_body("svc-huge", os_template_id=2**64),
        ("body", "password"): order_body("svc-nul-pass", password="Secret\x00Pass-1"),
    }
    for location, body in refusals.items():
        response = await bridge.api.post("/api/v1/orders", json=body)
        assert response.status_code == 422, (location, response.text)
        assert [tuple(err["loc"]) for err in response.json()["errors"]] == [location]
        assert "Secret" not in response.text
    for name in ("external_id", "customer_external_id"):
        listed = await bridge.api.get("/api/v1/orders", params={name: "svc\x00"})
        assert listed.status_code == 422, (name, listed.text)
    order = await bridge.create("svc-after-refusals")
    reinstall = await bridge.api.post(
        f"/api/v1/orders/{order['id']}/reinstall", json={"os_template_id": 2**63}
    )
    assert reinstall.status_code == 422
    listed = await bridge.api.get("/api/v1/orders")
    assert [item["external_id"] for item in listed.json()["items"]] == ["svc-after-refusals"]
    assert (await bridge.settle(order["id"]))["status"] == "active"


async def test_out_of_stock_fails_fast_with_a_reason(bridge: Bridge) -> None:
    free = (await bridge.sim_state())["free_servers"][CONFIGURATION]
    orders = [await bridge.create(f"svc-stock-{n}", ipv4_count=0) for n in range(free + 1)]
    settled = [await bridge.settle(order["id"]) for order in orders]
    statuses = sorted(order["status"] for order in settled)
    assert statuses.count("active") == free
    assert statuses.count("failed") == 1
    failed = next(order for order in settled if order["status"] == "failed")
    assert failed["failure_reason"].startswith("out_of_stock")
    assert failed["operations"][0]["error_code"] == "out_of_stock"


async def test_failed_install_compensates_and_releases_the_server(bridge: Bridge) -> None:
    free_before = (await bridge.sim_state())["free_servers"][CONFIGURATION]
    await bridge.sim_faults(fail_rate={"os_install": 1.0})
    order = await bridge.create("svc-broken")
    order = await bridge.wait_order(order["id"], _is("failed"))
    operation = order["operations"][0]
    assert operation["error_code"] == "os_install_failed"
    assert [s["name"] for s in operation["steps"]][-2:] == ["remove_ips", "release_owner"]
    assert all(s["status"] == "succeeded" for s in operation["steps"][-2:])
    server = await bridge.sim_server(order["server_id"])
    assert server["owner_email"] is None
    assert server["ips"] == []
    assert (await bridge.sim_state())["ips"] == []
    # Released, but DCImanager keeps a server whose install failed out of stock
    # (state "error") until an operator looks at it.
    assert server["state"] == "error"
    assert (await bridge.sim_state())["free_servers"][CONFIGURATION] == free_before - 1


async def test_terminate_does_not_touch_a_server_reassigned_behind_our_back(
    bridge: Bridge,
) -> None:
    order = await bridge.create("svc-guard")
    order = await bridge.wait_order(order["id"], _is("active"))
    server_id = order["server_id"]
    await _reassign(bridge, server_id, to_email="someone-else@example.net")

    await bridge.request(order["id"], "terminate")
    order = await bridge.settle(order["id"])
    terminate = order["operations"][-1]
    assert terminate["status"] == "failed"
    assert terminate["error_code"] == "server_reassigned"
    assert order["status"] == "active"
    server = await bridge.sim_server(server_id)
    assert server["owner_email"] == "someone-else@example.net"
    assert server["wipe_count"] == 0
    assert server["power_status"] == "on"
    assert len(server["ips"]) == 2


async def test_password_is_encrypted_at_rest_and_erased_after_use(
    bridge: Bridge, session: AsyncSession
) -> None:
    await bridge.sim_faults(latency_ms=200)  # keep the install pending while we look
    order = await bridge.create("svc-pw", password="Plain-Text-Never-9")
    query = select(Operation.secret_ciphertext).where(Operation.id == order["operations"][0]["id"])
    # Short transactions: an open one would hold SQLite's write lock.
    async with session.begin():
        stored = (await session.execute(query)).scalar_one()
    assert stored is not None
    assert "Plain-Text-Never-9" not in stored
    await bridge.sim_faults(latency_ms=0)
    await bridge.wait_order(order["id"], _is("active"))
    async with session.begin():
        assert (await session.execute(query)).scalar_one() is None


async def test_orders_are_listed_and_paginated_per_client(bridge: Bridge) -> None:
    ids = [(await bridge.create(f"svc-list-{n}", ipv4_count=0))["id"] for n in range(3)]
    first = (await bridge.api.get("/api/v1/orders", params={"limit": 2})).json()
    assert [item["id"] for item in first["items"]] == sorted(ids, reverse=True)[:2]
    second = (
        await bridge.api.get("/api/v1/orders", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [item["id"] for item in second["items"]] == [min(ids)]
    assert second["next_cursor"] is None
    by_external = (
        await bridge.api.get("/api/v1/orders", params={"external_id": "svc-list-1"})
    ).json()
    assert [item["external_id"] for item in by_external["items"]] == ["svc-list-1"]
    bad = await bridge.api.get("/api/v1/orders", params={"cursor": "garbage"})
    assert bad.status_code == 422


async def _reassign(bridge: Bridge, server_id: int, *, to_email: str) -> None:
    """Change the owner directly in DCImanager, as an operator might."""
    base = bridge.simulator_url
    async with httpx.AsyncClient(base_url=base) as dci:
        login = await dci.post(
            "/api/auth/v4/public/token",
            json={"email": "admin@dcimanager.local", "password": "dcisim-admin"},
        )
        token = login.json()["token"]
        headers = {"x-xsrf-token": token, "isp-box-instance": "true"}
        dci.cookies.set("ses6", token)
        user = await dci.post(
            "/api/dci/v3/user", headers=headers, json={"email": to_email, "password": "x1234567"}
        )
        assert (
            await dci.delete(f"/api/dci/v3/server/{server_id}/owner", headers=headers)
        ).is_success
        owner = await dci.post(
            f"/api/dci/v3/server/{server_id}/owner",
            headers=headers,
            json={"owner": user.json()["id"]},
        )
        assert owner.is_success, owner.text


pytestmark = pytest.mark.usefixtures("db_engine")
