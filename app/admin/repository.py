"""All SQL of the dashboard: its own tables, and the read models of its pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.admin.models import AdminLoginFailure, AdminSession, AdminUser, AuditLog
from app.auth.models import ApiClient
from app.callbacks.models import CallbackEvent
from app.customers.models import Customer
from app.orchestration.models import WorkerHeartbeat
from app.orders.models import (
    Operation,
    OperationKind,
    OperationStatus,
    OperationStep,
    Order,
    OrderStatus,
)
from app.webhooks.models import WebhookEvent, WebhookEventStatus

_UNFINISHED = (OperationStatus.QUEUED, OperationStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class OrderFilter:
    status: OrderStatus | None = None
    # Matched against the customer's email (substring) and external id (exact).
    customer: str | None = None
    # Billing's service id (order.external_id), substring.
    external_id: str | None = None
    server_id: int | None = None


@dataclass(frozen=True, slots=True)
class OrderRow:
    order: Order
    customer_email: str
    customer_external_id: str
    api_client: str


@dataclass(frozen=True, slots=True)
class StuckOperation:
    operation: Operation
    last_activity: datetime


class AdminRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *objects: object) -> None:
        self.session.add_all(objects)
        await self.session.flush()

    # -- users and sessions ------------------------------------------------------------

    async def user_by_username(self, username: str) -> AdminUser | None:
        statement = select(AdminUser).where(AdminUser.username == username)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def session_by_token_hash(self, token_hash: str) -> tuple[AdminSession, AdminUser] | None:
        statement = (
            select(AdminSession, AdminUser)
            .join(AdminUser, AdminUser.id == AdminSession.admin_user_id)
            .where(AdminSession.token_hash == token_hash)
        )
        row = (await self.session.execute(statement)).one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def delete_session(self, session_id: int) -> None:
        await self.session.execute(delete(AdminSession).where(AdminSession.id == session_id))

    async def delete_expired_sessions(self, *, now: datetime, idle_before: datetime) -> None:
        await self.session.execute(
            delete(AdminSession).where(
                or_(AdminSession.expires_at <= now, AdminSession.last_seen_at < idle_before)
            )
        )

    # -- the login rate limit --------------------------------------------------------------

    async def login_failures_since(
        self, *, username: str, client_ip: str, since: datetime
    ) -> tuple[int, int, datetime | None]:
        """Failures for the username, for the address, and the oldest of either."""
        statement = select(
            func.count().filter(AdminLoginFailure.username == username),
            func.count().filter(AdminLoginFailure.client_ip == client_ip),
            func.min(AdminLoginFailure.at),
        ).where(
            AdminLoginFailure.at >= since,
            or_(AdminLoginFailure.username == username, AdminLoginFailure.client_ip == client_ip),
        )
        by_user, by_ip, oldest = (await self.session.execute(statement)).one()
        return int(by_user), int(by_ip), oldest

    async def forget_login_failures(self, *, before: datetime, username: str | None = None) -> None:
        condition = AdminLoginFailure.at < before
        if username is not None:
            condition = or_(condition, AdminLoginFailure.username == username)
        await self.session.execute(delete(AdminLoginFailure).where(condition))

    # -- audit ---------------------------------------------------------------------------

    async def audit_for_order(self, order_id: int) -> Sequence[AuditLog]:
        statement = (
            select(AuditLog).where(AuditLog.order_id == order_id).order_by(AuditLog.id.desc())
        )
        return (await self.session.execute(statement)).scalars().all()

    async def recent_audit(self, limit: int) -> Sequence[AuditLog]:
        statement = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
        return (await self.session.execute(statement)).scalars().all()

    # -- the overview ------------------------------------------------------------------

    async def order_counts(self) -> dict[str, int]:
        statement = select(Order.status, func.count()).group_by(Order.status)
        rows = (await self.session.execute(statement)).all()
        return {str(status): int(count) for status, count in rows}

    async def unfinished_operation_counts(self) -> dict[str, int]:
        statement = (
            select(Operation.status, func.count())
            .where(Operation.status.in_(_UNFINISHED))
            .group_by(Operation.status)
        )
        rows = (await self.session.execute(statement)).all()
        return {str(status): int(count) for status, count in rows}

    async def failed_operations_since(self, since: datetime) -> int:
        statement = select(func.count()).where(
            Operation.status == OperationStatus.FAILED, Operation.finished_at >= since
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def retryable_failures(self, limit: int) -> Sequence[Operation]:
        """Failed operations that are their order's latest, i.e. that can be retried."""
        latest = select(func.max(Operation.id)).group_by(Operation.order_id).scalar_subquery()
        statement = (
            select(Operation)
            .where(Operation.status == OperationStatus.FAILED, Operation.id.in_(latest))
            .order_by(Operation.finished_at.desc(), Operation.id.desc())
            .limit(limit)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def stuck_operations(self, *, quiet_since: datetime, limit: int) -> list[StuckOperation]:
        """Unfinished operations none of whose steps was written since ``quiet_since``.

        A worker writes a step on every attempt and on every poll of a DCImanager
        task, so silence means nobody is working on it.
        """
        last_activity = func.coalesce(func.max(OperationStep.updated_at), Operation.updated_at)
        statement = (
            select(Operation, last_activity)
            .outerjoin(OperationStep, OperationStep.operation_id == Operation.id)
            .where(Operation.status.in_(_UNFINISHED))
            .group_by(Operation.id)
            .having(last_activity < quiet_since)
            .order_by(last_activity)
            .limit(limit)
        )
        rows = (await self.session.execute(statement)).all()
        return [StuckOperation(operation=row[0], last_activity=row[1]) for row in rows]

    async def worker_heartbeats(self) -> Sequence[WorkerHeartbeat]:
        statement = select(WorkerHeartbeat).order_by(WorkerHeartbeat.heartbeat_at.desc())
        return (await self.session.execute(statement)).scalars().all()

    async def callback_counts(self) -> dict[str, int]:
        statement = select(CallbackEvent.status, func.count()).group_by(CallbackEvent.status)
        rows = (await self.session.execute(statement)).all()
        return {str(status): int(count) for status, count in rows}

    async def order_creation_times(self, since: datetime) -> list[datetime]:
        statement = select(Order.created_at).where(Order.created_at >= since)
        return list((await self.session.execute(statement)).scalars())

    async def provision_runs(self, since: datetime) -> list[tuple[datetime, datetime]]:
        """(accepted, finished) of every provision that succeeded since ``since``."""
        statement = select(Operation.created_at, Operation.finished_at).where(
            Operation.kind == OperationKind.PROVISION,
            Operation.status == OperationStatus.SUCCEEDED,
            Operation.finished_at >= since,
        )
        rows = (await self.session.execute(statement)).all()
        return [(accepted, finished) for accepted, finished in rows if finished is not None]

    # -- orders --------------------------------------------------------------------------

    async def search_orders(
        self, criteria: OrderFilter, *, offset: int, limit: int
    ) -> tuple[list[OrderRow], int]:
        statement = (
            select(Order, Customer.email, Customer.external_id, ApiClient.name)
            .join(Customer, Customer.id == Order.customer_id)
            .join(ApiClient, ApiClient.id == Order.api_client_id)
        )
        if criteria.status is not None:
            statement = statement.where(Order.status == criteria.status)
        if criteria.customer:
            statement = statement.where(
                or_(
                    Customer.email.ilike(f"%{_escape_like(criteria.customer)}%", escape="\\"),
                    Customer.external_id == criteria.customer,
                )
            )
        if criteria.external_id:
            pattern = f"%{_escape_like(criteria.external_id)}%"
            statement = statement.where(Order.external_id.ilike(pattern, escape="\\"))
        if criteria.server_id is not None:
            statement = statement.where(Order.dci_server_id == criteria.server_id)
        total = (
            await self.session.execute(select(func.count()).select_from(statement.subquery()))
        ).scalar_one()
        page = statement.order_by(Order.id.desc()).offset(offset).limit(limit)
        rows = (await self.session.execute(page)).all()
        return (
            [
                OrderRow(order=o, customer_email=email, customer_external_id=cust, api_client=c)
                for o, email, cust, c in rows
            ],
            int(total),
        )

    async def order_with_history(self, order_id: int) -> Order | None:
        statement = (
            select(Order)
            .where(Order.id == order_id)
            .options(
                selectinload(Order.customer),
                selectinload(Order.operations).selectinload(Operation.steps),
            )
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def api_client(self, api_client_id: int) -> ApiClient | None:
        return await self.session.get(ApiClient, api_client_id)

    async def operation(self, operation_id: int) -> Operation | None:
        return await self.session.get(Operation, operation_id, populate_existing=True)

    async def callbacks_for_order(self, order_id: int) -> Sequence[CallbackEvent]:
        statement = (
            select(CallbackEvent)
            .where(CallbackEvent.order_id == order_id)
            .options(selectinload(CallbackEvent.attempt_log))
            .order_by(CallbackEvent.id.desc())
        )
        return (await self.session.execute(statement)).scalars().all()

    async def callback(self, event_id: int) -> CallbackEvent | None:
        return await self.session.get(CallbackEvent, event_id, populate_existing=True)

    # -- the payment webhook inbox -----------------------------------------------------

    async def webhook_counts(self) -> dict[str, int]:
        statement = select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)
        rows = (await self.session.execute(statement)).all()
        return {str(status): int(count) for status, count in rows}

    async def webhook_event(self, event_id: int) -> WebhookEvent | None:
        return await self.session.get(WebhookEvent, event_id, populate_existing=True)

    async def webhook_events(
        self, *, order_id: int | None, status: WebhookEventStatus | None, limit: int
    ) -> Sequence[WebhookEvent]:
        statement = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(limit)
        if order_id is not None:
            statement = statement.where(WebhookEvent.order_id == order_id)
        if status is not None:
            statement = statement.where(WebhookEvent.status == status)
        return (await self.session.execute(statement)).scalars().all()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
