"""Accepting billing's requests: validate, record, enqueue. The worker does the rest."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiClient
from app.config import Settings
from app.kit.crypto import SecretBox
from app.kit.pagination import decode_cursor, split_page
from app.orchestration.service import enqueue
from app.orders import lifecycle
from app.orders.exceptions import (
    InvalidOrderState,
    OperationNotFound,
    OrderNotFound,
    UnknownConfiguration,
)
from app.orders.models import Operation, OperationKind, Order, OrderStatus
from app.orders.repository import OrderRepository
from app.orders.schemas import (
    CustomerOut,
    OperationOut,
    OrderCreate,
    OrderOut,
)
from app.stock.cache import StockCache

log = structlog.get_logger(__name__)

_CURSOR_KIND = "o"


async def create_order(
    session: AsyncSession,
    *,
    client: ApiClient,
    data: OrderCreate,
    stock: StockCache,
    settings: Settings,
    secrets: SecretBox,
) -> tuple[Order, bool]:
    """The order and whether it is new; billing's retry gets the existing one back."""
    # DCImanager first, before this request's transaction begins: nothing is held
    # while it answers.
    known = await stock.known_configurations()
    repository = OrderRepository(session)
    existing = await repository.get_by_external_id(
        api_client_id=client.id, external_id=data.external_id
    )
    if existing is not None:
        return existing, False
    if known is not None and data.configuration not in known:
        raise UnknownConfiguration(data.configuration, known)

    try:
        # A customer created here is undone with the order if the order loses.
        async with session.begin_nested():
            customer = await repository.customer_or_new(
                api_client_id=client.id,
                external_id=data.customer.external_id,
                email=data.customer.email,
                name=data.customer.name,
            )
            order = Order(
                api_client_id=client.id,
                external_id=data.external_id,
                customer_id=customer.id,
                configuration=data.configuration,
                os_template_id=data.os_template_id,
                ipv4_count=data.ipv4_count,
                hostname=data.hostname,
                ssh_keys=list(data.ssh_keys),
                ip_addresses=[],
                callback_url=str(data.callback_url) if data.callback_url else None,
            )
            await repository.add(order)
    except IntegrityError:
        # A concurrent request with the same external id won the insert.
        raced = await repository.get_by_external_id(
            api_client_id=client.id, external_id=data.external_id
        )
        if raced is None:
            raise
        return raced, False

    await enqueue(
        session,
        order=order,
        kind=OperationKind.PROVISION,
        params={"os_template_id": data.os_template_id, "ssh_keys": list(data.ssh_keys)},
        settings=settings,
        secrets=secrets,
        password=data.password.get_secret_value() if data.password else None,
    )
    structlog.contextvars.bind_contextvars(order_id=order.id)
    log.info("order.accepted", external_id=order.external_id, configuration=order.configuration)
    return order, True


async def request_operation(
    session: AsyncSession,
    *,
    client: ApiClient,
    order_id: int,
    kind: OperationKind,
    params: dict[str, Any],
    settings: Settings,
    secrets: SecretBox,
    password: str | None = None,
) -> Operation:
    repository = OrderRepository(session)
    order = await repository.get_for_client(order_id=order_id, api_client_id=client.id, lock=True)
    if order is None:
        raise OrderNotFound(order_id)
    pending = await repository.unfinished_operations(order.id)
    try:
        after_pending = lifecycle.projected(
            lifecycle.state_of(order), ((op.kind, op.params) for op in pending)
        )
        lifecycle.apply(after_pending, kind, params)
    except lifecycle.TransitionRefused as refused:
        raise InvalidOrderState(
            refused.reason, order_status=order.status.value, pending_operations=len(pending)
        ) from None
    operation = await enqueue(
        session,
        order=order,
        kind=kind,
        params=params,
        settings=settings,
        secrets=secrets,
        password=password,
    )
    structlog.contextvars.bind_contextvars(order_id=order.id, operation_id=operation.id)
    log.info(f"{kind.value}.accepted")
    return operation


async def order_out(session: AsyncSession, order_id: int) -> OrderOut:
    order = await OrderRepository(session).with_history(order_id)
    if order is None:  # pragma: no cover - called with an order this request holds
        raise OrderNotFound(order_id)
    return to_order_out(order)


async def provision_operation_id(session: AsyncSession, order_id: int) -> int:
    return await OrderRepository(session).provision_operation_id(order_id)


async def get_order(session: AsyncSession, *, client: ApiClient, order_id: int) -> OrderOut:
    order = await OrderRepository(session).with_history(order_id, api_client_id=client.id)
    if order is None:
        raise OrderNotFound(order_id)
    return to_order_out(order)


async def list_orders(
    session: AsyncSession,
    *,
    client: ApiClient,
    external_id: str | None,
    status: OrderStatus | None,
    customer_external_id: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[OrderOut], str | None]:
    orders = await OrderRepository(session).list_for_client(
        api_client_id=client.id,
        external_id=external_id,
        status=status,
        customer_external_id=customer_external_id,
        before_id=decode_cursor(_CURSOR_KIND, cursor) if cursor else None,
        limit=limit + 1,
    )
    page, next_cursor = split_page(orders, kind=_CURSOR_KIND, limit=limit)
    return [to_order_out(order) for order in page], next_cursor


async def get_operation(
    session: AsyncSession, *, client: ApiClient, operation_id: int
) -> OperationOut:
    operation = await OrderRepository(session).operation_for_client(
        operation_id=operation_id, api_client_id=client.id
    )
    if operation is None:
        raise OperationNotFound(operation_id)
    return OperationOut.model_validate(operation)


def to_order_out(order: Order) -> OrderOut:
    return OrderOut(
        id=order.id,
        external_id=order.external_id,
        status=order.status,
        customer=CustomerOut.model_validate(order.customer),
        configuration=order.configuration,
        os_template_id=order.os_template_id,
        ipv4_count=order.ipv4_count,
        hostname=order.hostname,
        server_id=order.dci_server_id,
        ip_addresses=list(order.ip_addresses),
        suspension_reason=order.suspension_reason,
        failure_reason=order.failure_reason,
        created_at=order.created_at,
        updated_at=order.updated_at,
        operations=[OperationOut.model_validate(op) for op in order.operations],
    )
