"""Rows written straight into the database, for tests about what reads or deletes them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer
from app.orders.models import Order, OrderStatus


async def active_order(
    session: AsyncSession, *, api_client_id: int, external_id: str, server_id: int | None = None
) -> int:
    """An active order of the client's (and its customer); the order's id."""
    customer = Customer(
        api_client_id=api_client_id, external_id=f"c-{external_id}", email="c@example.com"
    )
    session.add(customer)
    await session.flush()
    order = Order(
        api_client_id=api_client_id,
        external_id=external_id,
        customer_id=customer.id,
        configuration="i9-9900K-64Gb-2x1024NVMe",
        os_template_id=1,
        ssh_keys=[],
        ip_addresses=[],
        status=OrderStatus.ACTIVE,
        dci_server_id=server_id,
    )
    session.add(order)
    await session.flush()
    return order.id
