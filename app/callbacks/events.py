"""Events for billing, written to the outbox in the transaction of the change itself."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiClient
from app.callbacks.models import CallbackEvent, CallbackStatus
from app.config import Settings
from app.customers.models import Customer
from app.kit.models import utcnow
from app.orders.models import Operation, OperationKind, OperationStatus, Order

log = structlog.get_logger(__name__)

_SUCCESS_EVENTS = {
    OperationKind.PROVISION: "order.active",
    OperationKind.SUSPEND: "order.suspended",
    OperationKind.UNSUSPEND: "order.unsuspended",
    OperationKind.TERMINATE: "order.terminated",
    OperationKind.REINSTALL: "order.reinstalled",
}


def event_type(operation: Operation) -> str | None:
    """The event an operation's outcome produces, if billing cares about it."""
    if operation.status is OperationStatus.SUCCEEDED:
        return _SUCCESS_EVENTS.get(operation.kind)
    if operation.status is OperationStatus.FAILED:
        return "order.failed" if operation.kind is OperationKind.PROVISION else "operation.failed"
    return None


def payload(event: str, order: Order, customer: Customer, operation: Operation) -> dict[str, Any]:
    # Never a password: the order carries none, and params hold only public choices.
    return {
        "type": event,
        "timestamp": utcnow().isoformat(),
        "data": {
            "order": {
                "id": order.id,
                "external_id": order.external_id,
                "status": order.status.value,
                "customer_external_id": customer.external_id,
                "configuration": order.configuration,
                "server_id": order.dci_server_id,
                "ip_addresses": list(order.ip_addresses),
                "hostname": order.hostname,
                "suspension_reason": order.suspension_reason,
                "failure_reason": order.failure_reason,
            },
            "operation": {
                "id": operation.id,
                "kind": operation.kind.value,
                "status": operation.status.value,
                "error_code": operation.error_code,
                "error": operation.error,
            },
        },
    }


async def record_operation_outcome(
    session: AsyncSession, *, settings: Settings, order: Order, operation: Operation
) -> CallbackEvent | None:
    """Queue the callback for a settled operation, if any and if billing wants callbacks."""
    event = event_type(operation)
    if event is None:
        return None
    client = await session.get(ApiClient, order.api_client_id)
    url = order.callback_url or (client.callback_url if client is not None else None)
    if not url:
        return None
    customer = await session.get(Customer, order.customer_id)
    assert customer is not None
    now = utcnow()
    callback = CallbackEvent(
        message_id=f"msg_{uuid.uuid4().hex}",
        api_client_id=order.api_client_id,
        order_id=order.id,
        type=event,
        payload=payload(event, order, customer, operation),
        url=url,
        status=CallbackStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        deliver_until=now + timedelta(seconds=settings.callback_deliver_for_seconds),
    )
    session.add(callback)
    log.info("callback.queued", type=event, message_id=callback.message_id)
    return callback
