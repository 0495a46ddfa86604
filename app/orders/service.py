"""Accepting billing's requests: validate, record, enqueue. The worker does the rest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.auth.models import Caller
from app.auth.service import hash_key
from app.config import Settings
from app.kit.crypto import SecretBox
from app.kit.models import utcnow
from app.kit.pagination import decode_cursor, split_page
from app.orchestration.service import QueuedOperation, enqueue
from app.orders import lifecycle
from app.orders.exceptions import (
    InvalidOrderState,
    OperationNotFound,
    OrderNotFound,
    UnknownConfiguration,
)
from app.orders.models import OperationKind, OperationStatus, OrderStatus, StepStatus
from app.orders.repository import HistoryRow, OrderRepository, history_for_key
from app.orders.schemas import (
    CustomerOut,
    OperationOut,
    OrderCreate,
    OrderOut,
    StepOut,
)

log = structlog.get_logger(__name__)

_CURSOR_KIND = "o"


async def create_order(
    session: AsyncSession,
    *,
    client: Caller,
    data: OrderCreate,
    known_configurations: frozenset[str] | None,
    settings: Settings,
    secrets: SecretBox,
) -> tuple[OrderOut, bool]:
    """The order and whether it is new; billing's retry gets the existing one back.

    ``known_configurations`` (None: DCImanager never answered, so the order is
    accepted unchecked) is asked for before this request's transaction begins, so
    nothing is held while DCImanager answers.
    """
    repository = OrderRepository(session)
    if known_configurations is not None and data.configuration not in known_configurations:
        existing = await _existing_order(repository, client=client, external_id=data.external_id)
        if existing is not None:
            return existing, False
        raise UnknownConfiguration(data.configuration, known_configurations)

    now = utcnow()
    customer, order_id = await repository.insert_order(
        customer={
            "api_client_id": client.id,
            "external_id": data.customer.external_id,
            "email": data.customer.email,
            "name": data.customer.name,
            "created_at": now,
            "updated_at": now,
        },
        order={
            "api_client_id": client.id,
            "external_id": data.external_id,
            "configuration": data.configuration,
            "os_template_id": data.os_template_id,
            "ipv4_count": data.ipv4_count,
            "hostname": data.hostname,
            "ssh_keys": list(data.ssh_keys),
            "ip_addresses": [],
            "status": OrderStatus.PROVISIONING,
            "callback_url": str(data.callback_url) if data.callback_url else None,
            "created_at": now,
            "updated_at": now,
        },
    )
    if order_id is None:
        # Billing's retry, or a concurrent twin that won the insert. Nothing of this
        # attempt stays (a customer it created would otherwise outlive it).
        await session.rollback()
        existing = await _existing_order(repository, client=client, external_id=data.external_id)
        if existing is None:  # pragma: no cover - the conflict was with a committed row
            raise RuntimeError(f"order {data.external_id!r} conflicted but cannot be read")
        return existing, False

    operation = await enqueue(
        session,
        order_id=order_id,
        kind=OperationKind.PROVISION,
        params={"os_template_id": data.os_template_id, "ssh_keys": list(data.ssh_keys)},
        settings=settings,
        secrets=secrets,
        password=data.password.get_secret_value() if data.password else None,
    )
    structlog.contextvars.bind_contextvars(order_id=order_id)
    log.info("order.accepted", external_id=data.external_id, configuration=data.configuration)
    # Built from what was just written: reading it back would double the work.
    return (
        OrderOut(
            id=order_id,
            external_id=data.external_id,
            status=OrderStatus.PROVISIONING,
            customer=CustomerOut(
                external_id=data.customer.external_id,
                email=customer.email,
                name=customer.name,
            ),
            configuration=data.configuration,
            os_template_id=data.os_template_id,
            ipv4_count=data.ipv4_count,
            hostname=data.hostname,
            server_id=None,
            ip_addresses=[],
            suspension_reason=None,
            failure_reason=None,
            created_at=now,
            updated_at=now,
            operations=[queued_operation_out(operation)],
        ),
        True,
    )


async def _existing_order(
    repository: OrderRepository, *, client: Caller, external_id: str
) -> OrderOut | None:
    rows = await repository.history_by_external_id(api_client_id=client.id, external_id=external_id)
    return orders_from_history(rows)[0] if rows else None


def queued_operation_out(operation: QueuedOperation) -> OperationOut:
    return OperationOut(
        id=operation.id,
        order_id=operation.order_id,
        kind=operation.kind,
        status=OperationStatus.QUEUED,
        params=operation.params,
        attempts=0,
        error_code=None,
        error=None,
        created_at=operation.created_at,
        started_at=None,
        finished_at=None,
        steps=[
            StepOut(
                name=name,
                status=StepStatus.PENDING,
                attempts=0,
                dci_task_id=None,
                last_error=None,
                next_attempt_at=None,
                started_at=None,
                finished_at=None,
            )
            for name in operation.step_names
        ],
    )


async def request_operation(
    session: AsyncSession,
    *,
    client: Caller,
    order_id: int,
    kind: OperationKind,
    params: dict[str, Any],
    settings: Settings,
    secrets: SecretBox,
    password: str | None = None,
) -> OperationOut:
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
        order_id=order.id,
        kind=kind,
        params=params,
        settings=settings,
        secrets=secrets,
        password=password,
    )
    structlog.contextvars.bind_contextvars(order_id=order.id, operation_id=operation.id)
    log.info(f"{kind.value}.accepted")
    return queued_operation_out(operation)


async def provision_operation_id(session: AsyncSession, order_id: int) -> int:
    return await OrderRepository(session).provision_operation_id(order_id)


async def get_order(session: AsyncSession, *, client: Caller, order_id: int) -> OrderOut:
    rows = await OrderRepository(session).history(order_id=order_id, api_client_id=client.id)
    if not rows:
        raise OrderNotFound(order_id)
    return orders_from_history(rows)[0]


async def get_order_for_key(
    connection: AsyncConnection, *, raw_key: str, order_id: int
) -> tuple[Caller | None, OrderOut | None]:
    """The key's client (None: no enabled client has it) and that client's order
    (None: it has no such order), read together."""
    rows = await history_for_key(connection, key_hash=hash_key(raw_key), order_id=order_id)
    if not rows:
        return None, None
    first = rows[0]
    caller = Caller(
        id=first.caller_id, name=first.caller_name, scopes=tuple(json.loads(first.caller_scopes))
    )
    if first.id is None:
        return caller, None
    return caller, orders_from_history(rows)[0]


async def list_orders(
    session: AsyncSession,
    *,
    client: Caller,
    external_id: str | None,
    status: OrderStatus | None,
    customer_external_id: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[OrderOut], str | None]:
    repository = OrderRepository(session)
    ids = await repository.page_ids(
        api_client_id=client.id,
        external_id=external_id,
        status=status,
        customer_external_id=customer_external_id,
        before_id=decode_cursor(_CURSOR_KIND, cursor) if cursor else None,
        limit=limit + 1,
    )
    page, next_cursor = split_page(ids, kind=_CURSOR_KIND, limit=limit, id_of=int)
    if not page:
        return [], None
    return orders_from_history(await repository.histories(page)), next_cursor


async def get_operation(
    session: AsyncSession, *, client: Caller, operation_id: int
) -> OperationOut:
    operation = await OrderRepository(session).operation_for_client(
        operation_id=operation_id, api_client_id=client.id
    )
    if operation is None:
        raise OperationNotFound(operation_id)
    return OperationOut.model_validate(operation)


def orders_from_history(rows: Sequence[HistoryRow]) -> list[OrderOut]:
    """Orders from ``OrderRepository``'s history rows (one per step, grouped by order
    and operation, in order). Built as plain data and validated once per order:
    pydantic checks the whole tree in one call, where a model per step would each
    take a call of their own."""
    orders: dict[int, dict[str, Any]] = {}
    operations: dict[int, dict[str, Any]] = {}
    for row in rows:
        order = orders.get(row.id)
        if order is None:
            order = orders[row.id] = {
                "id": row.id,
                "external_id": row.external_id,
                "status": row.status,
                "customer": {
                    "external_id": row.customer_external_id,
                    "email": row.customer_email,
                    "name": row.customer_name,
                },
                "configuration": row.configuration,
                "os_template_id": row.os_template_id,
                "ipv4_count": row.ipv4_count,
                "hostname": row.hostname,
                "server_id": row.dci_server_id,
                "ip_addresses": json.loads(row.ip_addresses),
                "suspension_reason": row.suspension_reason,
                "failure_reason": row.failure_reason,
                "created_at": row.created_at,
                "updated_at": row.updated_at,
                "operations": [],
            }
        if row.operation_id is None:
            continue
        operation = operations.get(row.operation_id)
        if operation is None:
            operation = operations[row.operation_id] = {
                "id": row.operation_id,
                "order_id": row.id,
                "kind": row.operation_kind,
                "status": row.operation_status,
                "params": json.loads(row.operation_params),
                "attempts": row.operation_attempts,
                "error_code": row.operation_error_code,
                "error": row.operation_error,
                "created_at": row.operation_created_at,
                "started_at": row.operation_started_at,
                "finished_at": row.operation_finished_at,
                "steps": [],
            }
            order["operations"].append(operation)
        if row.step_name is not None:
            operation["steps"].append(
                {
                    "name": row.step_name,
                    "status": row.step_status,
                    "attempts": row.step_attempts,
                    "dci_task_id": row.step_dci_task_id,
                    "last_error": row.step_last_error,
                    "next_attempt_at": row.step_next_attempt_at,
                    "started_at": row.step_started_at,
                    "finished_at": row.step_finished_at,
                }
            )
    return [OrderOut.model_validate(order) for order in orders.values()]
