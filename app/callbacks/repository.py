"""All SQL of the callback outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, selectinload

from app.callbacks.models import CallbackAttempt, CallbackEvent, CallbackStatus
from app.kit.db import delete_oldest, is_postgres

# Built once: an alias built per statement costs more than the statement.
_EARLIER = aliased(CallbackEvent, name="earlier_event")


class CallbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim_due(self, *, now: datetime, lease: timedelta, limit: int) -> list[int]:
        """Lease due events so that one delivery runs at a time per event, across workers.

        An order's events go out in the order they happened: billing that simply
        applies each one must not see "unsuspended" before "suspended".
        """
        due = (
            select(CallbackEvent.id)
            .where(
                CallbackEvent.status == CallbackStatus.PENDING,
                CallbackEvent.next_attempt_at <= now,
                or_(
                    CallbackEvent.lease_expires_at.is_(None),
                    CallbackEvent.lease_expires_at < now,
                ),
                ~exists().where(
                    _EARLIER.order_id == CallbackEvent.order_id,
                    _EARLIER.id < CallbackEvent.id,
                    _EARLIER.status == CallbackStatus.PENDING,
                ),
            )
            .order_by(CallbackEvent.next_attempt_at, CallbackEvent.id)
            .limit(limit)
        )
        if is_postgres(self.session):
            due = due.with_for_update(skip_locked=True)
        statement = (
            update(CallbackEvent)
            .where(CallbackEvent.id.in_(due.scalar_subquery()))
            .values(lease_expires_at=now + lease)
            .returning(CallbackEvent.id)
            .execution_options(synchronize_session=False)
        )
        return list((await self.session.execute(statement)).scalars())

    async def get(self, event_id: int) -> CallbackEvent | None:
        return await self.session.get(CallbackEvent, event_id, populate_existing=True)

    async def get_for_client(self, *, event_id: int, api_client_id: int) -> CallbackEvent | None:
        statement = (
            select(CallbackEvent)
            .where(CallbackEvent.id == event_id, CallbackEvent.api_client_id == api_client_id)
            .options(selectinload(CallbackEvent.attempt_log))
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_for_client(
        self,
        *,
        api_client_id: int,
        order_id: int | None,
        status: CallbackStatus | None,
        before_id: int | None,
        limit: int,
    ) -> Sequence[CallbackEvent]:
        statement = (
            select(CallbackEvent)
            .where(CallbackEvent.api_client_id == api_client_id)
            .options(selectinload(CallbackEvent.attempt_log))
            .order_by(CallbackEvent.id.desc())
            .limit(limit)
        )
        if order_id is not None:
            statement = statement.where(CallbackEvent.order_id == order_id)
        if status is not None:
            statement = statement.where(CallbackEvent.status == status)
        if before_id is not None:
            statement = statement.where(CallbackEvent.id < before_id)
        return (await self.session.execute(statement)).scalars().all()

    async def count_by_status(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(CallbackEvent.status, func.count()).group_by(CallbackEvent.status)
        )
        return {status.value: int(count) for status, count in rows.all()}

    def add_attempt(self, attempt: CallbackAttempt) -> None:
        self.session.add(attempt)

    async def delete_delivered(self, *, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` events delivered before ``before`` (their attempt log
        goes with them); how many went."""
        return await delete_oldest(
            self.session,
            CallbackEvent,
            CallbackEvent.status == CallbackStatus.DELIVERED,
            CallbackEvent.delivered_at < before,
            limit=limit,
        )
