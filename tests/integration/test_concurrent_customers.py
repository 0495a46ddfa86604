"""Orders of one new customer sent at the same moment share one customer, over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer
from app.orders.models import Order
from app.orders.repository import OrderRepository
from tests.conftest import ApiKeyFactory
from tests.support.bridge import order_body

ORDERS = "/api/v1/orders"
ROUNDS = 5
ORDERS_PER_CUSTOMER = 3


@pytest.fixture
async def billing(api: httpx.AsyncClient, make_api_key: ApiKeyFactory) -> httpx.AsyncClient:
    api.headers["Authorization"] = f"Bearer {await make_api_key(name='billing')}"
    # The stock check first, so that the orders below meet in the database rather
    # than queue one behind another for DCImanager.
    assert (await api.get("/api/v1/stock")).status_code == 200
    return api


def _customer(external_id: str, email: str) -> dict[str, str]:
    return {"external_id": external_id, "email": email, "name": "Customer"}


async def _customers_and_orders(
    session: AsyncSession, external_id: str
) -> tuple[list[Customer], list[Order]]:
    # A short transaction: an open one would hold SQLite's write lock.
    async with session.begin():
        customers = list(
            (await session.execute(select(Customer).where(Customer.external_id == external_id)))
            .scalars()
            .all()
        )
        orders = list(
            (
                await session.execute(
                    select(Order)
                    .join(Customer, Customer.id == Order.customer_id)
                    .where(Customer.external_id == external_id)
                )
            )
            .scalars()
            .all()
        )
    return customers, orders


async def test_orders_of_one_new_customer_sent_together_are_all_accepted(
    billing: httpx.AsyncClient, session: AsyncSession
) -> None:
    for round_ in range(ROUNDS):
        customer = _customer(f"cust-together-{round_}", f"together-{round_}@example.com")
        bodies = [
            order_body(f"svc-together-{round_}-{n}", customer=customer)
            for n in range(ORDERS_PER_CUSTOMER)
        ]
        responses = await asyncio.gather(*(billing.post(ORDERS, json=body) for body in bodies))

        assert [r.status_code for r in responses] == [202] * ORDERS_PER_CUSTOMER, [
            r.text for r in responses
        ]
        customers, orders = await _customers_and_orders(session, customer["external_id"])
        assert len(customers) == 1
        assert {order.customer_id for order in orders} == {customers[0].id}
        assert len(orders) == ORDERS_PER_CUSTOMER


@pytest.fixture
def customer_created_after_lookup(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The first lookup of ``rival``'s external id misses, and its row is created
    right after it, as by another request's committed insert: the insert that
    follows is certain to meet the unique constraint."""
    rival = _customer("cust-raced", "first@example.com")
    original = OrderRepository.customer
    missed = False

    async def lookup(self: OrderRepository, *, api_client_id: int, external_id: str) -> Any:
        nonlocal missed
        if external_id != rival["external_id"] or missed:
            return await original(self, api_client_id=api_client_id, external_id=external_id)
        missed = True
        row = {**rival, "api_client_id": api_client_id}
        engine = self.session.bind
        if engine.dialect.name == "sqlite":
            # SQLite lets one transaction write at a time, and this request's holds
            # the lock: the row can only come in through it.
            await self.session.execute(insert(Customer).values(**row))
        else:
            async with AsyncSession(engine) as other, other.begin():
                await other.execute(insert(Customer).values(**row))
        return None

    monkeypatch.setattr(OrderRepository, "customer", lookup)
    return rival


async def test_an_order_whose_new_customer_was_created_meanwhile_joins_that_customer(
    billing: httpx.AsyncClient,
    session: AsyncSession,
    customer_created_after_lookup: dict[str, str],
) -> None:
    rival = customer_created_after_lookup
    body = order_body("svc-raced", customer=_customer(rival["external_id"], "second@example.com"))

    response = await billing.post(ORDERS, json=body)

    assert response.status_code == 202, response.text
    # The customer as first created; the later request's details do not overwrite it.
    assert response.json()["customer"]["email"] == rival["email"]
    customers, orders = await _customers_and_orders(session, rival["external_id"])
    assert len(customers) == 1
    assert [order.external_id for order in orders] == ["svc-raced"]
