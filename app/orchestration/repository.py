"""All SQL of the work queue: claiming, leasing, releasing, heartbeats."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    JSON,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from app.customers.models import Customer
from app.kit.db import is_postgres, upsert_into
from app.orchestration.models import WorkerHeartbeat
from app.orders.models import (
    LIVE_STATUSES,
    Operation,
    OperationKind,
    OperationStatus,
    OperationStep,
    Order,
    OrderStatus,
    StepStatus,
)

UNFINISHED = (OperationStatus.QUEUED, OperationStatus.RUNNING)


class LoadedOperation(NamedTuple):
    operation: Operation
    order: Order
    customer: Customer
    steps: list[OperationStep]


_OPERATIONS = cast(Table, Operation.__table__)
_ORDERS = cast(Table, Order.__table__)
# Built once: the values come as execution parameters.
_INSERT_OPERATION = insert(_OPERATIONS).returning(_OPERATIONS.c.id)
_STEP_TABLE = cast(Table, OperationStep.__table__)
_STEP_COLUMNS = ("operation_id", "position", "name", "status", "attempts", "result")
_STEP_TIMES = ("created_at", "updated_at")
_OPERATION_COLUMNS = (
    "order_id",
    "kind",
    "status",
    "params",
    "secret_ciphertext",
    "attempts",
    "created_at",
    "updated_at",
)


def _insert_operation_with_steps() -> Any:
    """PostgreSQL: the operation and its steps in one statement (one round trip),
    the steps' positions and names as two arrays."""
    operation = (
        insert(_OPERATIONS)
        .values(
            {name: bindparam(name, type_=_OPERATIONS.c[name].type) for name in _OPERATION_COLUMNS}
        )
        .returning(_OPERATIONS.c.id)
        .cte("new_operation")
    )
    steps = (
        func.unnest(
            bindparam("step_positions", type_=ARRAY(Integer)),
            bindparam("step_names", type_=ARRAY(String)),
        )
        .table_valued("position", "name")
        .render_derived(name="new_step")
    )
    pending = select(
        operation.c.id, steps.c.position, steps.c.name, *_pending_step_values()
    ).select_from(operation.join(steps, true()))
    new_steps = insert(_STEP_TABLE).from_select(_STEP_COLUMNS + _STEP_TIMES, pending)
    return select(operation.c.id).add_cte(new_steps.cte("new_steps"))


def _pending_step_values() -> list[Any]:
    return [
        bindparam("step_status", type_=_STEP_TABLE.c.status.type),
        bindparam("attempts"),
        bindparam("step_result", type_=_STEP_TABLE.c.result.type),
        *(bindparam(name, type_=_STEP_TABLE.c[name].type) for name in _STEP_TIMES),
    ]


def _insert_steps_from_json() -> Any:
    """SQLite: an operation's pending steps in one statement, whatever their number,
    their names as one JSON array (``json_each`` numbers them from 0). Each value is
    converted once, not once per step."""
    steps = func.json_each(bindparam("step_names", type_=JSON)).table_valued("key", "value")
    pending = select(
        bindparam("operation_id", type_=Integer),
        steps.c.key,
        steps.c.value,
        *_pending_step_values(),
    )
    return insert(_STEP_TABLE).from_select(_STEP_COLUMNS + _STEP_TIMES, pending)


_INSERT_OPERATION_WITH_STEPS = _insert_operation_with_steps()
_INSERT_STEPS_FROM_JSON = _insert_steps_from_json()


# Built once: an alias built per statement costs more than the statement.
_EARLIER = aliased(Operation, name="earlier_operation")
_SET_OWNER = aliased(OperationStep, name="set_owner_step")

# The statements every step runs, built once with their values as parameters:
# building one and computing its cache key cost more CPU than executing it. The
# updates name the table, not the model: nothing in the session needs syncing,
# and the ORM's bulk-update machinery costs as much again.
_RENEW = (
    update(_OPERATIONS)
    .where(
        _OPERATIONS.c.id == bindparam("operation_id"),
        _OPERATIONS.c.lease_owner == bindparam("worker_id"),
    )
    .values(lease_expires_at=bindparam("lease_until"))
)
_RELEASE = (
    update(_OPERATIONS)
    .where(
        _OPERATIONS.c.id.in_(bindparam("operation_ids", expanding=True)),
        _OPERATIONS.c.lease_owner == bindparam("worker_id"),
    )
    .values(lease_owner=None, lease_expires_at=None)
)
# One row per step: the operation, order and customer repeat on each, and the ORM
# builds them once. One statement instead of two saves a round trip in every step
# transaction.
_OPERATION_WITH_STEPS = (
    select(Operation, Order, Customer, OperationStep)
    .join(Order, Order.id == Operation.order_id)
    .join(Customer, Customer.id == Order.customer_id)
    .outerjoin(OperationStep, OperationStep.operation_id == Operation.id)
    .where(Operation.id == bindparam("operation_id"))
    .order_by(OperationStep.position)
    .with_for_update(of=Operation)
    .execution_options(populate_existing=True)
)
_STEPS = (
    select(OperationStep)
    .where(OperationStep.operation_id == bindparam("operation_id"))
    .order_by(OperationStep.position)
    .execution_options(populate_existing=True)
)
_SERVERS_AWAITING_OWNER = (
    select(Order.dci_server_id)
    .join(Operation, Operation.order_id == Order.id)
    .join(_SET_OWNER, _SET_OWNER.operation_id == Operation.id)
    .where(
        Order.configuration == bindparam("configuration"),
        Order.status == OrderStatus.PROVISIONING,
        Order.dci_server_id.is_not(None),
        Operation.kind == OperationKind.PROVISION,
        Operation.status.in_(UNFINISHED),
        _SET_OWNER.name == "set_owner",
        _SET_OWNER.status != StepStatus.SUCCEEDED,
    )
)
_SERVERS_HELD = select(_ORDERS.c.dci_server_id).where(
    _ORDERS.c.dci_server_id.in_(bindparam("server_ids", expanding=True)),
    _ORDERS.c.status.in_(LIVE_STATUSES),
)
_POINT_ORDER_AT_SERVER = (
    update(_ORDERS)
    .where(_ORDERS.c.id == bindparam("order_id"), _ORDERS.c.dci_server_id.is_(None))
    .values(dci_server_id=bindparam("server_id"))
)


def _runnable(now: datetime) -> list[ColumnElement[bool]]:
    return [
        Operation.status.in_(UNFINISHED),
        or_(Operation.next_run_at.is_(None), Operation.next_run_at <= now),
        or_(Operation.lease_expires_at.is_(None), Operation.lease_expires_at < now),
        # One operation at a time per order, in arrival order.
        ~exists().where(
            _EARLIER.order_id == Operation.order_id,
            _EARLIER.id < Operation.id,
            _EARLIER.status.in_(UNFINISHED),
        ),
    ]


class QueueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(
        self, *, worker_id: str, now: datetime, lease: timedelta, limit: int
    ) -> list[int]:
        """Lease up to ``limit`` runnable operations to ``worker_id``.

        PostgreSQL skips rows other workers are claiming at this moment; SQLite
        serialises writers, so the conditional update alone is enough there.
        """
        candidates = select(Operation.id).where(*_runnable(now)).order_by(Operation.id)
        candidates = candidates.limit(limit)
        if is_postgres(self.session):
            candidates = candidates.with_for_update(skip_locked=True)
        statement = (
            update(Operation)
            .where(Operation.id.in_(candidates.scalar_subquery()))
            .where(or_(Operation.lease_expires_at.is_(None), Operation.lease_expires_at < now))
            .values(lease_owner=worker_id, lease_expires_at=now + lease)
            .returning(Operation.id)
            .execution_options(synchronize_session=False)
        )
        return list((await self.session.execute(statement)).scalars())

    async def renew(
        self, *, operation_id: int, worker_id: str, now: datetime, lease: timedelta
    ) -> bool:
        result = await self.session.execute(
            _RENEW,
            {"operation_id": operation_id, "worker_id": worker_id, "lease_until": now + lease},
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew_all(
        self, *, operation_ids: Sequence[int], worker_id: str, now: datetime, lease: timedelta
    ) -> list[int]:
        """Extend the leases ``worker_id`` still holds among ``operation_ids``; which ones."""
        result = await self.session.execute(
            update(Operation)
            .where(Operation.id.in_(operation_ids), Operation.lease_owner == worker_id)
            .values(lease_expires_at=now + lease)
            .returning(Operation.id)
            .execution_options(synchronize_session=False)
        )
        return list(result.scalars())

    async def release(self, *, operation_ids: Sequence[int], worker_id: str) -> None:
        await self.session.execute(
            _RELEASE, {"operation_ids": list(operation_ids), "worker_id": worker_id}
        )

    async def add_operation(
        self,
        *,
        order_id: int,
        kind: OperationKind,
        params: dict[str, Any],
        secret_ciphertext: str | None,
        step_names: Sequence[str],
        now: datetime,
    ) -> int:
        """A queued operation and its pending steps: one statement on PostgreSQL, two
        on SQLite."""
        operation_values = {
            "order_id": order_id,
            "kind": kind,
            "status": OperationStatus.QUEUED,
            "params": params,
            "secret_ciphertext": secret_ciphertext,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        if is_postgres(self.session):
            parameters = {
                **operation_values,
                "step_positions": list(range(len(step_names))),
                "step_names": list(step_names),
                "step_status": StepStatus.PENDING,
                "step_result": {},
            }
            result = await self.session.execute(_INSERT_OPERATION_WITH_STEPS, parameters)
            return int(result.scalar_one())
        operation_id: int = (
            await self.session.execute(_INSERT_OPERATION, operation_values)
        ).scalar_one()
        await self.session.execute(
            _INSERT_STEPS_FROM_JSON,
            {
                "operation_id": operation_id,
                "step_names": list(step_names),
                "step_status": StepStatus.PENDING,
                "attempts": 0,
                "step_result": {},
                "created_at": now,
                "updated_at": now,
            },
        )
        return operation_id

    async def operation_with_steps(self, operation_id: int) -> LoadedOperation | None:
        """The operation with its order, customer and steps (in position order), fresh
        from the database, in one statement; the operation's row stays locked until
        commit, so that the lease it carries can be renewed on it
        (``OperationRunner._take``)."""
        result = await self.session.execute(_OPERATION_WITH_STEPS, {"operation_id": operation_id})
        rows = result.all()
        if not rows:
            return None
        operation, order, customer, _ = rows[0]
        steps = [row[3] for row in rows if row[3] is not None]
        return LoadedOperation(operation, order, customer, steps)

    async def steps(self, operation_id: int) -> list[OperationStep]:
        result = await self.session.execute(_STEPS, {"operation_id": operation_id})
        return list(result.scalars())

    async def servers_awaiting_owner(self, configuration: str) -> set[int]:
        """Servers our orders claimed that DCImanager may still list as free.

        Once a provision's ``set_owner`` step succeeded, DCImanager shows the owner
        and never offers the server again; only the claims before that (usually a
        handful, however many orders are in flight) can appear among its free ones.
        """
        result = await self.session.execute(
            _SERVERS_AWAITING_OWNER, {"configuration": configuration}
        )
        return {server_id for server_id in result.scalars() if server_id is not None}

    async def claim_one_of(self, *, order_id: int, server_ids: Sequence[int]) -> int | None:
        """Point the order at the first of ``server_ids`` no live order holds.

        Servers live orders already hold are skipped in one query; the unique index
        still decides a race with a concurrent claimer (PostgreSQL), whose loser
        moves on to the next candidate inside this same transaction.
        """
        held = set(
            (await self.session.execute(_SERVERS_HELD, {"server_ids": list(server_ids)})).scalars()
        )
        for server_id in (candidate for candidate in server_ids if candidate not in held):
            try:
                async with self.session.begin_nested():
                    result = await self.session.execute(
                        _POINT_ORDER_AT_SERVER, {"order_id": order_id, "server_id": server_id}
                    )
            except IntegrityError:
                continue
            return server_id if result.rowcount else None  # type: ignore[attr-defined]
        return None

    async def beat(self, heartbeat: WorkerHeartbeat) -> None:
        values = {
            "id": heartbeat.id,
            "hostname": heartbeat.hostname,
            "pid": heartbeat.pid,
            "started_at": heartbeat.started_at,
            "heartbeat_at": heartbeat.heartbeat_at,
            "running_operations": heartbeat.running_operations,
        }
        statement = upsert_into(self.session, WorkerHeartbeat).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[WorkerHeartbeat.id],
            set_={
                "heartbeat_at": heartbeat.heartbeat_at,
                "running_operations": heartbeat.running_operations,
            },
        )
        await self.session.execute(statement)

    async def forget_worker(self, worker_id: str) -> None:
        await self.session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == worker_id))

    async def unfinished_by_status(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(Operation.status, func.count())
            .where(Operation.status.in_(UNFINISHED))
            .group_by(Operation.status)
        )
        return {status.value: int(count) for status, count in rows.all()}

    async def oldest_runnable_since(self, now: datetime) -> datetime | None:
        """When the longest-waiting runnable operation became runnable."""
        return await self.session.scalar(
            select(func.min(func.coalesce(Operation.next_run_at, Operation.created_at))).where(
                *_runnable(now)
            )
        )

    async def latest_heartbeat(self) -> datetime | None:
        return (await self.session.execute(select(func.max(WorkerHeartbeat.heartbeat_at)))).scalar()
