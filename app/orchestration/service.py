"""Turning an accepted request into durable work, and the operator's levers on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.kit.crypto import SecretBox
from app.kit.errors import DCIBridgeError, NotFound
from app.kit.models import utcnow
from app.orchestration.flows import PROVISION_STEPS, steps_for
from app.orchestration.repository import QueueRepository
from app.orders.models import (
    Operation,
    OperationKind,
    OperationStatus,
    OperationStep,
    Order,
    OrderStatus,
    StepStatus,
)


@dataclass(frozen=True, slots=True)
class QueuedOperation:
    """What was written: enough to answer billing without reading it back."""

    id: int
    order_id: int
    kind: OperationKind
    params: dict[str, Any]
    step_names: list[str]
    created_at: datetime


async def enqueue(
    session: AsyncSession,
    *,
    order_id: int,
    kind: OperationKind,
    params: dict[str, Any],
    settings: Settings,
    secrets: SecretBox,
    password: str | None = None,
) -> QueuedOperation:
    """Write the operation and its steps in the caller's transaction (no dual write)."""
    now = utcnow()
    step_names = steps_for(kind, settings)
    operation_id = await QueueRepository(session).add_operation(
        order_id=order_id,
        kind=kind,
        params=params,
        secret_ciphertext=secrets.encrypt(password) if password else None,
        step_names=step_names,
        now=now,
    )
    return QueuedOperation(
        id=operation_id,
        order_id=order_id,
        kind=kind,
        params=params,
        step_names=step_names,
        created_at=now,
    )


class OperationActionRefused(DCIBridgeError):
    status = 409
    code = "operation_action_refused"
    title = "This action does not apply to the operation in its current state"


async def _locked_operation(session: AsyncSession, operation_id: int) -> Operation:
    operation = await session.get(Operation, operation_id, with_for_update=True)
    if operation is None:
        raise NotFound(f"No operation {operation_id}.")
    return operation


async def retry_operation(session: AsyncSession, *, operation_id: int) -> Operation:
    """Run a failed operation again from its first step.

    Every step reconciles with DCImanager before acting, so starting over is
    safe: what is already in place is recognised and not done twice. Only the
    order's latest operation may be retried, so history is not rewritten.
    """
    operation = await _locked_operation(session, operation_id)
    if operation.status is not OperationStatus.FAILED:
        raise OperationActionRefused(f"operation {operation_id} is {operation.status.value}")
    latest = await session.scalar(
        select(func.max(Operation.id)).where(Operation.order_id == operation.order_id)
    )
    if latest != operation.id:
        raise OperationActionRefused("only the order's latest operation can be retried")
    order = await session.get(Order, operation.order_id, with_for_update=True)
    assert order is not None
    steps = (
        await session.scalars(
            select(OperationStep).where(OperationStep.operation_id == operation.id)
        )
    ).all()
    for step in steps:
        # The undo steps a failed provision added go; its own steps run again.
        if operation.params.get("compensating") and step.name not in PROVISION_STEPS:
            await session.delete(step)
            continue
        step.status = StepStatus.PENDING
        step.attempts = 0
        step.result = {}
        step.last_error = None
        step.next_attempt_at = None
        step.started_at = None
        step.finished_at = None
    if operation.kind is OperationKind.PROVISION:
        order.status = OrderStatus.PROVISIONING
        order.failure_reason = None
    operation.params = {k: v for k, v in operation.params.items() if k != "compensating"}
    operation.status = OperationStatus.QUEUED
    operation.error_code = None
    operation.error = None
    operation.next_run_at = None
    operation.finished_at = None
    operation.lease_owner = None
    operation.lease_expires_at = None
    await session.flush()
    return operation


async def cancel_operation(session: AsyncSession, *, operation_id: int) -> Operation:
    """Drop an operation nobody has started yet."""
    operation = await _locked_operation(session, operation_id)
    if operation.status is not OperationStatus.QUEUED or operation.lease_owner is not None:
        raise OperationActionRefused(
            "only a queued operation that no worker holds can be cancelled"
        )
    operation.status = OperationStatus.CANCELLED
    operation.finished_at = utcnow()
    operation.secret_ciphertext = None
    await session.flush()
    return operation


async def mark_operation_failed(
    session: AsyncSession, *, operation_id: int, reason: str
) -> Operation:
    """Give up on a stuck operation; DCImanager is left as it is for a human to inspect."""
    operation = await _locked_operation(session, operation_id)
    if operation.status not in (OperationStatus.QUEUED, OperationStatus.RUNNING):
        raise OperationActionRefused(f"operation {operation_id} is {operation.status.value}")
    order = await session.get(Order, operation.order_id, with_for_update=True)
    assert order is not None
    operation.status = OperationStatus.FAILED
    operation.error_code = "marked_failed"
    operation.error = reason
    operation.finished_at = utcnow()
    operation.lease_owner = None
    operation.lease_expires_at = None
    operation.secret_ciphertext = None
    for step in await session.scalars(
        select(OperationStep).where(
            OperationStep.operation_id == operation.id,
            OperationStep.status.in_((StepStatus.PENDING, StepStatus.WAITING, StepStatus.RUNNING)),
        )
    ):
        step.status = StepStatus.SKIPPED
    if operation.kind is OperationKind.PROVISION and order.status is OrderStatus.PROVISIONING:
        order.status = OrderStatus.FAILED
        order.failure_reason = f"marked_failed: {reason}"
    await session.flush()
    return operation
