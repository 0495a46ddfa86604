from __future__ import annotations

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.orders.models import (
    Operation,
    OperationKind,
    OperationStatus,
    OperationStep,
    Order,
    OrderStatus,
    StepStatus,
)


async def reserved_by_configuration(session: AsyncSession) -> dict[str, int]:
    """Provisioning orders that will take a server DCImanager still counts as free.

    That is every running or queued provision whose ``set_owner`` step has not
    succeeded: once the owner is set, DCImanager itself no longer counts the
    server as free.
    """
    statement = (
        select(Order.configuration, func.count(Order.id))
        .join(Operation, and_(Operation.order_id == Order.id))
        .join(
            OperationStep,
            and_(OperationStep.operation_id == Operation.id, OperationStep.name == "set_owner"),
        )
        .where(
            Order.status == OrderStatus.PROVISIONING,
            Operation.kind == OperationKind.PROVISION,
            Operation.status.in_((OperationStatus.QUEUED, OperationStatus.RUNNING)),
            OperationStep.status != StepStatus.SUCCEEDED,
        )
        .group_by(Order.configuration)
    )
    rows = (await session.execute(statement)).all()
    return {configuration: int(count) for configuration, count in rows}
