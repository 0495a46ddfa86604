"""Turning an accepted request into durable work: the operation and its steps."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.kit.crypto import SecretBox
from app.orchestration.flows import steps_for
from app.orders.models import Operation, OperationKind, OperationStep, Order


async def enqueue(
    session: AsyncSession,
    *,
    order: Order,
    kind: OperationKind,
    params: dict[str, Any],
    settings: Settings,
    secrets: SecretBox,
    password: str | None = None,
) -> Operation:
    """Write the operation and its steps in the caller's transaction (no dual write)."""
    operation = Operation(
        order_id=order.id,
        kind=kind,
        params=params,
        secret_ciphertext=secrets.encrypt(password) if password else None,
    )
    session.add(operation)
    await session.flush()
    session.add_all(
        OperationStep(operation_id=operation.id, name=name, position=position, result={})
        for position, name in enumerate(steps_for(kind, settings))
    )
    await session.flush()
    return operation
