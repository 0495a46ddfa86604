"""All SQL of the webhook inbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, defer

from app.kit.db import delete_oldest, is_postgres, upsert_into
from app.orders.models import Order
from app.webhooks.models import (
    PaymentSignal,
    WebhookEvent,
    WebhookEventStatus,
    WebhookProvider,
)

_SETTLED = (
    WebhookEventStatus.PROCESSED,
    WebhookEventStatus.IGNORED,
    WebhookEventStatus.UNMATCHED,
)
_NEWER = aliased(WebhookEvent, name="newer_event")


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_once(self, values: dict[str, Any]) -> int | None:
        """Store an event unless its (provider, source, event_id) is already stored.

        The new row's id, or None for a duplicate. ``ON CONFLICT DO NOTHING`` keeps
        concurrent deliveries of one event from failing or aborting the transaction.
        """
        statement = (
            upsert_into(self.session, WebhookEvent)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["provider", "source", "event_id"])
            .returning(WebhookEvent.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def find(
        self, *, provider: WebhookProvider, source: str, event_id: str
    ) -> WebhookEvent | None:
        statement = select(WebhookEvent).where(
            WebhookEvent.provider == provider,
            WebhookEvent.source == source,
            WebhookEvent.event_id == event_id,
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def claim_due(self, *, now: datetime, lease: timedelta, limit: int) -> list[int]:
        """Lease received events that are due, oldest first, so one worker handles each."""
        due = (
            select(WebhookEvent.id)
            .where(
                WebhookEvent.status == WebhookEventStatus.RECEIVED,
                WebhookEvent.next_attempt_at <= now,
                or_(
                    WebhookEvent.lease_expires_at.is_(None),
                    WebhookEvent.lease_expires_at < now,
                ),
            )
            .order_by(WebhookEvent.next_attempt_at, WebhookEvent.id)
            .limit(limit)
        )
        if is_postgres(self.session):
            due = due.with_for_update(skip_locked=True)
        statement = (
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(due.scalar_subquery()))
            .values(lease_expires_at=now + lease)
            .returning(WebhookEvent.id)
            .execution_options(synchronize_session=False)
        )
        return sorted((await self.session.execute(statement)).scalars())

    async def get(self, event_id: int, *, lock: bool = False) -> WebhookEvent | None:
        statement = (
            select(WebhookEvent)
            .where(WebhookEvent.id == event_id)
            .execution_options(populate_existing=True)
        )
        if lock:
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def lock_order(self, order_id: int) -> Order | None:
        """The order, locked until commit: one event per order is decided at a time."""
        statement = (
            select(Order)
            .where(Order.id == order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def latest_signal(
        self, *, order_id: int, signal: PaymentSignal, excluding: int
    ) -> datetime | None:
        """When the newest decided event of this kind about the order happened."""
        statement = select(func.max(WebhookEvent.occurred_at)).where(
            WebhookEvent.order_id == order_id,
            WebhookEvent.payment_signal == signal,
            WebhookEvent.id != excluding,
        )
        latest: datetime | None = (await self.session.execute(statement)).scalar_one_or_none()
        return latest

    async def list(
        self,
        *,
        status: WebhookEventStatus | None,
        source: str | None,
        event_id: str | None,
        order_id: int | None,
        before_id: int | None,
        limit: int,
    ) -> Sequence[WebhookEvent]:
        # Payloads (up to the body limit each) are for the single-event view only.
        statement = (
            select(WebhookEvent)
            .options(defer(WebhookEvent.payload, raiseload=True))
            .order_by(WebhookEvent.id.desc())
            .limit(limit)
        )
        if event_id is not None:
            statement = statement.where(WebhookEvent.event_id == event_id)
        if status is not None:
            statement = statement.where(WebhookEvent.status == status)
        if source is not None:
            statement = statement.where(WebhookEvent.source == source)
        if order_id is not None:
            statement = statement.where(WebhookEvent.order_id == order_id)
        if before_id is not None:
            statement = statement.where(WebhookEvent.id < before_id)
        return (await self.session.execute(statement)).scalars().all()

    async def delete_settled(self, *, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` settled events last changed before ``before``; how
        many went.

        An order's newest event of each payment signal stays, however old: late
        events are put in order against it (``latest_signal``).
        """
        superseded = exists().where(
            _NEWER.order_id == WebhookEvent.order_id,
            _NEWER.payment_signal == WebhookEvent.payment_signal,
            _NEWER.occurred_at > WebhookEvent.occurred_at,
        )
        return await delete_oldest(
            self.session,
            WebhookEvent,
            WebhookEvent.status.in_(_SETTLED),
            WebhookEvent.updated_at < before,
            or_(
                WebhookEvent.payment_signal.is_(None),
                WebhookEvent.order_id.is_(None),
                superseded,
            ),
            limit=limit,
        )
