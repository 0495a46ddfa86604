"""All SQL about orders, customers and the operations billing can see."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from app.customers.models import Customer
from app.orders.models import Operation, OperationKind, OperationStatus, Order, OrderStatus

_UNFINISHED = (OperationStatus.QUEUED, OperationStatus.RUNNING)
_HISTORY = (
    selectinload(Order.customer),
    selectinload(Order.operations).selectinload(Operation.steps),
)
# One order's history in a single statement: an order has a handful of operations
# of a few steps each, so the joined rows stay few, and every statement saved is a
# database round trip saved on the API's most frequent read.
_ONE_HISTORY = (
    joinedload(Order.customer, innerjoin=True),
    joinedload(Order.operations).joinedload(Operation.steps),
)


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

    async def with_history(
        self, order_id: int, *, api_client_id: int | None = None
    ) -> Order | None:
        """The order with its customer, operations and their steps; with
        ``api_client_id``, only if it belongs to that client."""
        statement = (
            select(Order)
            .where(Order.id == order_id)
            .options(*_ONE_HISTORY)
            .execution_options(populate_existing=True)
        )
        if api_client_id is not None:
            statement = statement.where(Order.api_client_id == api_client_id)
        return (await self.session.execute(statement)).unique().scalar_one_or_none()

    async def list_for_client(
        self,
        *,
        api_client_id: int,
        external_id: str | None,
        status: OrderStatus | None,
        customer_external_id: str | None,
        before_id: int | None,
        limit: int,
    ) -> Sequence[Order]:
        statement = (
            select(Order)
            .where(Order.api_client_id == api_client_id)
            .options(*_HISTORY)
            .order_by(Order.id.desc())
            .limit(limit)
        )
        if external_id is not None:
            statement = statement.where(Order.external_id == external_id)
        if status is not None:
            statement = statement.where(Order.status == status)
        if customer_external_id is not None:
            statement = statement.join(Customer, Customer.id == Order.customer_id).where(
                Customer.external_id == customer_external_id
            )
        if before_id is not None:
            statement = statement.where(Order.id < before_id)
        return (await self.session.execute(statement)).scalars().all()

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

    async def customer(self, *, api_client_id: int, external_id: str) -> Customer | None:
        statement = select(Customer).where(
            Customer.api_client_id == api_client_id, Customer.external_id == external_id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def customer_or_new(
        self, *, api_client_id: int, external_id: str, email: str, name: str
    ) -> Customer:
        """The client's customer with this external id, created if there is none yet.

        An existing customer is returned as it is: billing's later details do not
        overwrite the ones the customer was first created with.
        """
        customer = await self.customer(api_client_id=api_client_id, external_id=external_id)
        if customer is not None:
            return customer
        customer = Customer(
            api_client_id=api_client_id, external_id=external_id, email=email, name=name
        )
        try:
            # Only the insert is undone if it loses, not the caller's transaction.
            async with self.session.begin_nested():
                await self.add(customer)
        except IntegrityError:
            # Another request for the same new customer inserted it between the
            # lookup and this insert (on PostgreSQL the insert waited for that
            # request to commit, so its row is visible now).
            raced = await self.customer(api_client_id=api_client_id, external_id=external_id)
            if raced is None:
                raise
            return raced
        return customer

    async def add(self, *objects: object) -> None:
        self.session.add_all(objects)
        await self.session.flush()
