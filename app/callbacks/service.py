from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import Caller
from app.callbacks.models import CallbackStatus
from app.callbacks.repository import CallbackRepository
from app.callbacks.schemas import CallbackOut
from app.config import Settings
from app.kit.errors import NotFound
from app.kit.models import utcnow
from app.kit.pagination import decode_cursor, split_page

_CURSOR_KIND = "c"


class CallbackNotFound(NotFound):
    def __init__(self, event_id: int) -> None:
        super().__init__(f"No callback {event_id} for this API client.")


async def get_callback(session: AsyncSession, *, client: Caller, event_id: int) -> CallbackOut:
    event = await CallbackRepository(session).get_for_client(
        event_id=event_id, api_client_id=client.id
    )
    if event is None:
        raise CallbackNotFound(event_id)
    return CallbackOut.model_validate(event)


async def list_callbacks(
    session: AsyncSession,
    *,
    client: Caller,
    order_id: int | None,
    status: CallbackStatus | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[CallbackOut], str | None]:
    events = await CallbackRepository(session).list_for_client(
        api_client_id=client.id,
        order_id=order_id,
        status=status,
        before_id=decode_cursor(_CURSOR_KIND, cursor) if cursor else None,
        limit=limit + 1,
    )
    page, next_cursor = split_page(events, kind=_CURSOR_KIND, limit=limit)
    return [CallbackOut.model_validate(event) for event in page], next_cursor


async def redeliver(
    session: AsyncSession, *, client: Caller, event_id: int, settings: Settings
) -> CallbackOut:
    """Send the event again (same ``webhook-id``), now, whatever became of it before."""
    repository = CallbackRepository(session)
    event = await repository.get_for_client(event_id=event_id, api_client_id=client.id)
    if event is None:
        raise CallbackNotFound(event_id)
    now = utcnow()
    event.status = CallbackStatus.PENDING
    event.next_attempt_at = now
    event.lease_expires_at = None
    event.deliver_until = max(
        event.deliver_until, now + timedelta(seconds=settings.callback_deliver_for_seconds)
    )
    await session.flush()
    return await get_callback(session, client=client, event_id=event_id)


async def purge_delivered(
    session: AsyncSession, *, settings: Settings, now: datetime, limit: int
) -> int:
    """Delete up to ``limit`` callbacks delivered longer ago than the retention."""
    before = now - timedelta(days=settings.callback_retention_days)
    return await CallbackRepository(session).delete_delivered(before=before, limit=limit)
