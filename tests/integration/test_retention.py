"""The worker's housekeeping deletes delivered callbacks and settled webhook events
once they outlive their retention, and nothing that is still needed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import runtime as runtime_module
from app.auth.models import ApiClient
from app.callbacks.models import CallbackAttempt, CallbackEvent, CallbackStatus
from app.callbacks.repository import CallbackRepository
from app.config import Settings
from app.kit.db import create_sessionmaker
from app.kit.models import utcnow
from app.runtime import Runtime, build_runtime, create_embedded_simulator
from app.webhooks.models import (
    PaymentSignal,
    WebhookEvent,
    WebhookEventStatus,
    WebhookProvider,
)
from tests.support.rows import active_order

_ids = count()
DELIVERED, PENDING, FAILED = CallbackStatus.DELIVERED, CallbackStatus.PENDING, CallbackStatus.FAILED
FAILURE, SUCCESS = PaymentSignal.FAILURE, PaymentSignal.SUCCESS


@pytest.fixture
async def runtime(settings: Settings, db_engine: AsyncEngine) -> AsyncIterator[Runtime]:
    async with build_runtime(settings, simulator=create_embedded_simulator(settings)) as built:
        yield built


async def _housekeep(runtime: Runtime) -> None:
    for chore in runtime.housekeeping():
        await chore()


async def _client_and_order(session: AsyncSession) -> tuple[int, int]:
    client = ApiClient(
        name=f"billing-{next(_ids)}", key_prefix="dcb_x", key_hash=f"{next(_ids):064d}", scopes=[]
    )
    session.add(client)
    await session.flush()
    order_id = await active_order(session, api_client_id=client.id, external_id="o-1")
    return client.id, order_id


def _callback(
    client_id: int, order_id: int, status: CallbackStatus, delivered_at: datetime | None
) -> CallbackEvent:
    return CallbackEvent(
        message_id=f"msg_{next(_ids)}",
        api_client_id=client_id,
        order_id=order_id,
        type="order.provisioned",
        payload={},
        url="https://billing.example.net/hook",
        status=status,
        deliver_until=utcnow() + timedelta(days=1),
        delivered_at=delivered_at,
    )


async def _ids_of(engine: AsyncEngine, model: type[CallbackEvent] | type[WebhookEvent]) -> set[int]:
    async with create_sessionmaker(engine)() as session:
        return set((await session.scalars(select(model.id))).all())


async def test_delivered_callbacks_go_after_their_retention_in_batches(
    runtime: Runtime, db_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "PURGE_BATCH_ROWS", 2)
    now = utcnow()
    retention = timedelta(days=runtime.settings.callback_retention_days)
    old, recent = now - retention - timedelta(hours=1), now - retention + timedelta(hours=1)
    async with create_sessionmaker(db_engine)() as session, session.begin():
        client_id, order_id = await _client_and_order(session)
        expired = [_callback(client_id, order_id, DELIVERED, old) for _ in range(5)]
        kept = [
            _callback(client_id, order_id, status, delivered_at)
            for status, delivered_at in ((DELIVERED, recent), (PENDING, None), (FAILED, None))
        ]
        session.add_all(expired + kept)
        await session.flush()
        session.add(
            CallbackAttempt(event_id=expired[0].id, attempted_at=old, status_code=200, latency_ms=3)
        )

    # One batch deletes no more than its limit, oldest first.
    async with create_sessionmaker(db_engine)() as session, session.begin():
        deleted = await CallbackRepository(session).delete_delivered(
            before=now - retention, limit=2
        )
    assert deleted == 2
    assert await _ids_of(db_engine, CallbackEvent) == {event.id for event in expired[2:] + kept}

    await _housekeep(runtime)

    assert await _ids_of(db_engine, CallbackEvent) == {event.id for event in kept}
    async with create_sessionmaker(db_engine)() as session:
        assert await session.scalar(select(func.count()).select_from(CallbackAttempt)) == 0


async def test_settled_webhook_events_go_but_each_orders_latest_signal_stays(
    runtime: Runtime, db_engine: AsyncEngine
) -> None:
    now = utcnow()
    old = now - timedelta(days=runtime.settings.webhook_retention_days, hours=1)
    recent = now - timedelta(days=1)
    days = timedelta(days=1)
    status = WebhookEventStatus
    # (kept?, on the order?, status, payment signal, occurred, last changed)
    cases = [
        (False, True, status.PROCESSED, FAILURE, old - 2 * days, old),  # a newer failure exists
        (True, True, status.PROCESSED, FAILURE, old - days, old),  # the order's latest failure
        (True, True, status.PROCESSED, SUCCESS, old - 3 * days, old),  # its latest success
        (False, True, status.IGNORED, None, old, old),
        (False, False, status.UNMATCHED, None, old, old),
        (True, True, status.FAILED, None, old, old),  # left for the operator
        (True, True, status.IGNORED, None, old, recent),  # settled within the retention
        (True, True, status.RECEIVED, None, old, old),  # not processed yet
    ]
    async with create_sessionmaker(db_engine)() as session, session.begin():
        _, order_id = await _client_and_order(session)
        events = [
            (
                kept,
                WebhookEvent(
                    provider=WebhookProvider.GENERIC,
                    source="shop",
                    event_id=f"evt-{next(_ids)}",
                    type="payment.failed",
                    occurred_at=occurred_at,
                    payload={},
                    status=event_status,
                    order_id=order_id if on_order else None,
                    payment_signal=signal,
                    updated_at=updated_at,
                ),
            )
            for kept, on_order, event_status, signal, occurred_at, updated_at in cases
        ]
        session.add_all([event for _, event in events])
        await session.flush()
        expected = {event.id for kept, event in events if kept}

    await _housekeep(runtime)

    assert await _ids_of(db_engine, WebhookEvent) == expected
