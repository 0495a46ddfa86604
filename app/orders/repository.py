"""All SQL about orders, customers and the operations billing can see."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Row, Text, and_, bindparam, cast, select, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import selectinload

from app.auth.models import ApiClient
from app.customers.models import Customer
from app.kit.db import is_postgres, prebuilt_upsert
from app.orders.models import (
    Operation,
    OperationKind,
    OperationStatus,
    OperationStep,
    Order,
    OrderStatus,
)

_UNFINISHED = (OperationStatus.QUEUED, OperationStatus.RUNNING)
_customers = Customer.__table__.c
_orders = Order.__table__.c
_operations = Operation.__table__.c
_steps = OperationStep.__table__.c
_clients = ApiClient.__table__.c

# Orders with their customer, operations and steps in one statement, a row per
# step, as plain rows: an order has a handful of operations of a few steps each,
# so the joined rows stay few, and this is the API's most frequent read, where a
# saved round trip or ORM object counts. The JSON columns come as their text, to
# be decoded once per order or operation rather than once per step row.
_HISTORY = (
    select(
        _orders.id,
        _orders.external_id,
        _orders.status,
        _orders.configuration,
        _orders.os_template_id,
        _orders.ipv4_count,
        _orders.hostname,
        _orders.dci_server_id,
        cast(_orders.ip_addresses, Text).label("ip_addresses"),
        _orders.suspension_reason,
        _orders.failure_reason,
        _orders.created_at,
        _orders.updated_at,
        _customers.external_id.label("customer_external_id"),
        _customers.email.label("customer_email"),
        _customers.name.label("customer_name"),
        _operations.id.label("operation_id"),
        _operations.kind.label("operation_kind"),
        _operations.status.label("operation_status"),
        cast(_operations.params, Text).label("operation_params"),
        _operations.attempts.label("operation_attempts"),
        _operations.error_code.label("operation_error_code"),
        _operations.error.label("operation_error"),
        _operations.created_at.label("operation_created_at"),
        _operations.started_at.label("operation_started_at"),
        _operations.finished_at.label("operation_finished_at"),
        _steps.name.label("step_name"),
        _steps.status.label("step_status"),
        _steps.attempts.label("step_attempts"),
        _steps.dci_task_id.label("step_dci_task_id"),
        _steps.last_error.label("step_last_error"),
        _steps.next_attempt_at.label("step_next_attempt_at"),
        _steps.started_at.label("step_started_at"),
        _steps.finished_at.label("step_finished_at"),
    )
    .select_from(Order.__table__)
    .join(Customer.__table__, _customers.id == _orders.customer_id)
    .outerjoin(Operation.__table__, _operations.order_id == _orders.id)
    .outerjoin(OperationStep.__table__, _steps.operation_id == _operations.id)
)
HistoryRow = Row[*tuple[Any, ...]]
# The API client holding a key, with its order's history if it has that order: a
# row of the client alone (history columns NULL) when it has not, none when the
# key is unknown or its client disabled. The key's check and the read in one
# round trip, for the order read billing polls.
_HISTORY_FOR_KEY = (
    select(
        _clients.id.label("caller_id"),
        _clients.name.label("caller_name"),
        cast(_clients.scopes, Text).label("caller_scopes"),
        *_HISTORY.selected_columns,
    )
    # A flat chain of joins rather than the client joined to _HISTORY's joins:
    # SQLite then walks the indexes in the order wanted, where the nested form
    # makes it materialise the join and sort it (a third more time).
    .select_from(
        ApiClient.__table__.outerjoin(
            Order.__table__,
            and_(_orders.api_client_id == _clients.id, _orders.id == bindparam("order_id")),
        )
        .outerjoin(Customer.__table__, _customers.id == _orders.customer_id)
        .outerjoin(Operation.__table__, _operations.order_id == _orders.id)
        .outerjoin(OperationStep.__table__, _steps.operation_id == _operations.id)
    )
    .where(_clients.key_hash == bindparam("key_hash"), _clients.enabled == true())
    .order_by(_operations.id, _steps.position)
)
_ONE_HISTORY = _HISTORY.where(
    _orders.id == bindparam("order_id"), _orders.api_client_id == bindparam("api_client_id")
).order_by(_operations.id, _steps.position)
_ONE_HISTORY_BY_EXTERNAL_ID = _HISTORY.where(
    _orders.api_client_id == bindparam("api_client_id"),
    _orders.external_id == bindparam("external_id"),
).order_by(_operations.id, _steps.position)


def _customer_upsert(insert: Callable[[Any], Any]) -> Any:
    statement = insert(Customer.__table__)
    return statement.on_conflict_do_update(
        index_elements=[_customers.api_client_id, _customers.external_id],
        set_={"external_id": statement.excluded.external_id},
    ).returning(_customers.id, _customers.email, _customers.name)


def _order_insert(insert: Callable[[Any], Any]) -> Any:
    return (
        insert(Order.__table__)
        .on_conflict_do_nothing(index_elements=[_orders.api_client_id, _orders.external_id])
        .returning(_orders.id)
    )


_CUSTOMER_UPSERT = prebuilt_upsert(_customer_upsert)
_ORDER_INSERT = prebuilt_upsert(_order_insert)
_NEW_CUSTOMER = ("api_client_id", "external_id", "email", "name", "created_at", "updated_at")
_NEW_ORDER = (
    "api_client_id",
    "external_id",
    "configuration",
    "os_template_id",
    "ipv4_count",
    "hostname",
    "ssh_keys",
    "ip_addresses",
    "status",
    "callback_url",
    "created_at",
    "updated_at",
)

_NEW_CUSTOMER_KEYS, _NEW_ORDER_KEYS = frozenset(_NEW_CUSTOMER), frozenset(_NEW_ORDER)


def _customer_and_order() -> Any:
    """PostgreSQL: ``_CUSTOMER_UPSERT`` then ``_ORDER_INSERT`` for that customer, in
    one statement (one round trip instead of two). The customer's values come as
    ``customer_<column>``, the order's as ``<column>``; a row of the customer with
    ``order_id`` NULL when the order's external id is taken."""
    customer = (
        _customer_upsert(postgresql.insert)
        .values({n: bindparam(f"customer_{n}", type_=_customers[n].type) for n in _NEW_CUSTOMER})
        .cte("new_customer")
    )
    order = _order_insert(
        lambda table: postgresql.insert(table).from_select(
            [*_NEW_ORDER, "customer_id"],
            select(
                *(bindparam(name, type_=_orders[name].type) for name in _NEW_ORDER),
                customer.c.id,
            ),
        )
    ).cte("new_order")
    return select(
        customer.c.id, customer.c.email, customer.c.name, order.c.id.label("order_id")
    ).select_from(customer.outerjoin(order, true()))


_CUSTOMER_AND_ORDER = _customer_and_order()


async def history_for_key(
    connection: AsyncConnection, *, key_hash: str, order_id: int
) -> Sequence[HistoryRow]:
    """``_HISTORY_FOR_KEY``'s rows, on a plain connection: the order read billing
    polls, where a session's cost counts."""
    parameters = {"key_hash": key_hash, "order_id": order_id}
    return (await connection.execute(_HISTORY_FOR_KEY, parameters)).all()


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_for_client(
        self, *, order_id: int, api_client_id: int, lock: bool = False
    ) -> Order | None:
        statement = select(Order).where(Order.id == order_id, Order.api_client_id == api_client_id)
        if lock:
            # Serialises concurrent requests on one order (SQLite already serialises writers).
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_by_external_id(self, *, api_client_id: int, external_id: str) -> Order | None:
        statement = select(Order).where(
            Order.api_client_id == api_client_id, Order.external_id == external_id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def history(self, *, order_id: int, api_client_id: int) -> Sequence[HistoryRow]:
        """The client's order with its history (``_HISTORY``'s rows); none if the
        order is not the client's."""
        parameters = {"order_id": order_id, "api_client_id": api_client_id}
        return (await self.session.execute(_ONE_HISTORY, parameters)).all()

    async def history_by_external_id(
        self, *, api_client_id: int, external_id: str
    ) -> Sequence[HistoryRow]:
        parameters = {"api_client_id": api_client_id, "external_id": external_id}
        return (await self.session.execute(_ONE_HISTORY_BY_EXTERNAL_ID, parameters)).all()

    async def page_ids(
        self,
        *,
        api_client_id: int,
        external_id: str | None,
        status: OrderStatus | None,
        customer_external_id: str | None,
        before_id: int | None,
        limit: int,
    ) -> Sequence[int]:
        """Ids of the client's orders matching the filters, newest first."""
        statement = (
            select(_orders.id)
            .where(_orders.api_client_id == api_client_id)
            .order_by(_orders.id.desc())
            .limit(limit)
        )
        if external_id is not None:
            statement = statement.where(_orders.external_id == external_id)
        if status is not None:
            statement = statement.where(_orders.status == status)
        if customer_external_id is not None:
            statement = statement.join(
                Customer.__table__, _customers.id == _orders.customer_id
            ).where(_customers.external_id == customer_external_id)
        if before_id is not None:
            statement = statement.where(_orders.id < before_id)
        return (await self.session.execute(statement)).scalars().all()

    async def histories(self, order_ids: Sequence[int]) -> Sequence[HistoryRow]:
        """``_HISTORY``'s rows of these orders, newest order first."""
        statement = _HISTORY.where(_orders.id.in_(order_ids)).order_by(
            _orders.id.desc(), _operations.id, _steps.position
        )
        return (await self.session.execute(statement)).all()

    async def unfinished_operations(self, order_id: int) -> Sequence[Operation]:
        statement = (
            select(Operation)
            .where(Operation.order_id == order_id, Operation.status.in_(_UNFINISHED))
            .order_by(Operation.id)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def provision_operation_id(self, order_id: int) -> int:
        statement = select(Operation.id).where(
            Operation.order_id == order_id, Operation.kind == OperationKind.PROVISION
        )
        return (await self.session.execute(statement)).scalar_one()

    async def operation_for_client(
        self, *, operation_id: int, api_client_id: int
    ) -> Operation | None:
        statement = (
            select(Operation)
            .join(Order, Order.id == Operation.order_id)
            .where(Operation.id == operation_id, Order.api_client_id == api_client_id)
            .options(selectinload(Operation.steps))
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def insert_order(
        self, *, customer: dict[str, Any], order: dict[str, Any]
    ) -> tuple[Row[Any], int | None]:
        """The order's customer (``_customer_for_order``) and the new order's id: None
        when the client already has an order with this external id (the database
        decides, so concurrent twins cannot both win). ``customer`` holds
        ``_NEW_CUSTOMER``'s values, ``order`` ``_NEW_ORDER``'s."""
        if customer.keys() != _NEW_CUSTOMER_KEYS or order.keys() != _NEW_ORDER_KEYS:
            # PostgreSQL's statement is built for exactly these columns: another
            # value would be dropped there, and stored on SQLite.
            raise ValueError("insert_order takes _NEW_CUSTOMER's and _NEW_ORDER's values")
        if is_postgres(self.session):
            parameters = {f"customer_{name}": value for name, value in customer.items()}
            row = (await self.session.execute(_CUSTOMER_AND_ORDER, parameters | order)).one()
            return row, row.order_id
        found = await self._customer_for_order(customer)
        statement = _ORDER_INSERT(self.session)
        order_id = (
            await self.session.execute(statement, order | {"customer_id": found.id})
        ).scalar_one_or_none()
        return found, order_id

    async def _customer_for_order(self, values: dict[str, Any]) -> Row[Any]:
        """The client's customer with this external id (id, email, name), created if
        there is none yet, in one statement.

        An existing customer is returned as it is: billing's later details do not
        overwrite the ones the customer was first created with. The conflict's
        no-op update is what makes RETURNING give the existing row; on PostgreSQL
        it also waits for a concurrent request creating the same customer.
        """
        statement = _CUSTOMER_UPSERT(self.session)
        return (await self.session.execute(statement, values)).one()
