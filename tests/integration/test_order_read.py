"""``GET /orders/{id}`` checks the key in the statement that reads the order: the
verdicts must still be those of every other endpoint, in the same order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as api_keys
from app.auth.scopes import Scope
from app.orders.models import Operation, OperationStep, Order
from tests.conftest import ApiKeyFactory
from tests.integration.test_api_basics import assert_problem
from tests.support.bridge import order_body

ORDERS = "/api/v1/orders"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def place_order(api: httpx.AsyncClient, key: str, external_id: str) -> int:
    response = await api.post(ORDERS, json=order_body(external_id), headers=bearer(key))
    assert response.status_code == 202, response.text
    order_id: int = response.json()["id"]
    return order_id


async def test_the_owner_reads_its_order_with_its_history(
    api: httpx.AsyncClient, make_api_key: ApiKeyFactory
) -> None:
    key = await make_api_key()
    order_id = await place_order(api, key, "read-own")
    response = await api.get(f"{ORDERS}/{order_id}", headers=bearer(key))
    assert response.status_code == 200
    order = response.json()
    assert order["id"] == order_id
    assert order["external_id"] == "read-own"
    assert order["customer"]["external_id"] == "cust-read-own"
    [provision] = order["operations"]
    assert provision["kind"] == "provision"
    assert provision["steps"], "the queued operation lists its steps"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer dcb_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer"],
    ids=["missing", "unknown", "wrong-scheme", "empty"],
)
async def test_a_missing_or_unknown_key_is_401_whether_or_not_the_order_exists(
    api: httpx.AsyncClient, make_api_key: ApiKeyFactory, authorization: str | None
) -> None:
    order_id = await place_order(api, await make_api_key(), "read-401")
    headers = {"Authorization": authorization} if authorization else {}
    for path in (f"{ORDERS}/{order_id}", f"{ORDERS}/{order_id + 1000}"):
        response = await api.get(path, headers=headers)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_disabled_client_is_401_at_once(
    api: httpx.AsyncClient, make_api_key: ApiKeyFactory, session: AsyncSession
) -> None:
    key = await make_api_key(name="leaving")
    order_id = await place_order(api, key, "read-revoked")
    assert (await api.get(f"{ORDERS}/{order_id}", headers=bearer(key))).status_code == 200
    await api_keys.revoke_client(session, name="leaving")
    await session.commit()
    assert_problem(await api.get(f"{ORDERS}/{order_id}", headers=bearer(key)), 401, "unauthorized")


async def test_a_key_without_the_read_scope_is_403_before_any_404(
    api: httpx.AsyncClient, make_api_key: ApiKeyFactory
) -> None:
    key = await make_api_key(scopes=(Scope.ORDERS_WRITE,))
    order_id = await place_order(api, key, "read-403")
    for path in (f"{ORDERS}/{order_id}", f"{ORDERS}/{order_id + 1000}"):
        body = assert_problem(await api.get(path, headers=bearer(key)), 403, "insufficient_scope")
        assert body["required_scope"] == "orders:read"


async def test_another_clients_order_is_404_like_a_missing_one(
    api: httpx.AsyncClient, make_api_key: ApiKeyFactory
) -> None:
    owner, stranger = await make_api_key(), await make_api_key()
    order_id = await place_order(api, owner, "read-404")
    assert_problem(
        await api.get(f"{ORDERS}/{order_id}", headers=bearer(stranger)), 404, "not_found"
    )
    missing = await api.get(f"{ORDERS}/{order_id + 1000}", headers=bearer(owner))
    assert_problem(missing, 404, "not_found")


async def test_the_read_gives_the_stored_order_field_for_field(
    api: httpx.AsyncClient, make_api_key: ApiKeyFactory, session: AsyncSession
) -> None:
    """The read decodes the JSON columns once per order and operation, and SQLite's
    timestamps by a parser of its own: what it answers must be what is stored,
    JSON values and instants alike, on every database."""
    key = await make_api_key()
    order_id = await place_order(api, key, "read-fields")
    order = await session.get(Order, order_id)
    assert order is not None
    order.ip_addresses = ["203.0.113.7", "2001:db8::7"]
    operation = (
        await session.execute(select(Operation).where(Operation.order_id == order_id))
    ).scalar_one()
    operation.params = {"os_template_id": 12, "ssh_keys": ["k1"], "nested": {"a": [1, None]}}
    stamp = datetime(2026, 11, 29, 15, 40, 2, 731000, tzinfo=UTC)
    steps = (
        (
            await session.execute(
                select(OperationStep)
                .where(OperationStep.operation_id == operation.id)
                .order_by(OperationStep.position)
            )
        )
        .scalars()
        .all()
    )
    steps[0].started_at = stamp
    steps[0].finished_at = stamp.replace(microsecond=0)
    await session.commit()

    response = await api.get(f"{ORDERS}/{order_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ip_addresses"] == ["203.0.113.7", "2001:db8::7"]
    [read_operation] = body["operations"]
    assert read_operation["params"] == operation.params
    assert [step["name"] for step in read_operation["steps"]] == [step.name for step in steps]
    first = read_operation["steps"][0]
    assert datetime.fromisoformat(first["started_at"]) == stamp
    assert datetime.fromisoformat(first["finished_at"]) == stamp.replace(microsecond=0)
    for instant in (body["created_at"], body["updated_at"], read_operation["created_at"]):
        assert datetime.fromisoformat(instant).utcoffset() == timedelta(0)
    assert datetime.fromisoformat(body["created_at"]) == order.created_at
