"""Orders of one new customer sent at the same moment share one customer, over real HTTP."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer
from app.orders.models import Order
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


async def test_an_order_for_a_customer_that_exists_joins_it_as_first_created(
    billing: httpx.AsyncClient, session: AsyncSession
) -> None:
    first = await billing.post(
        ORDERS, json=order_body("svc-first", customer=_customer("cust-known", "first@example.com"))
    )
    assert first.status_code == 202, first.text

    response = await billing.post(
        ORDERS,
        json=order_body("svc-second", customer=_customer("cust-known", "second@example.com")),
    )

    assert response.status_code == 202, response.text
    # The customer as first created; the later request's details do not overwrite it.
    assert response.json()["customer"]["email"] == "first@example.com"
    customers, orders = await _customers_and_orders(session, "cust-known")
    assert len(customers) == 1
    assert customers[0].email == "first@example.com"
    assert sorted(order.external_id for order in orders) == ["svc-first", "svc-second"]


async def test_a_retry_naming_another_customer_creates_no_customer(
    billing: httpx.AsyncClient, session: AsyncSession
) -> None:
    accepted = await billing.post(
        ORDERS, json=order_body("svc-retried", customer=_customer("cust-a", "a@example.com"))
    )
    assert accepted.status_code == 202, accepted.text

    retried = await billing.post(
        ORDERS, json=order_body("svc-retried", customer=_customer("cust-b", "b@example.com"))
    )

    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == accepted.json()["id"]
    assert retried.json()["customer"]["external_id"] == "cust-a"
    customers, _ = await _customers_and_orders(session, "cust-b")
    assert customers == []
