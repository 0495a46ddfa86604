"""GET /metrics: Prometheus text, with shared-state gauges read at scrape time."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.exceptions import InvalidApiKey
from app.callbacks.models import CallbackStatus
from app.callbacks.repository import CallbackRepository
from app.kit import metrics
from app.kit.models import utcnow
from app.orchestration.repository import UNFINISHED, QueueRepository

router = APIRouter(include_in_schema=False)


async def refresh_shared_gauges(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    now = utcnow()
    async with sessionmaker() as session, session.begin():
        queue = QueueRepository(session)
        depth = await queue.unfinished_by_status()
        oldest = await queue.oldest_runnable_since(now)
        heartbeat = await queue.latest_heartbeat()
        callbacks = await CallbackRepository(session).count_by_status()
    for status in UNFINISHED:
        metrics.QUEUE_DEPTH.labels(status.value).set(depth.get(status.value, 0))
    metrics.OLDEST_RUNNABLE_AGE.set(max((now - oldest).total_seconds(), 0) if oldest else 0)
    if heartbeat is not None:
        metrics.WORKER_HEARTBEAT_AGE.set((now - heartbeat).total_seconds())
    for callback_status in CallbackStatus:
        metrics.CALLBACK_EVENTS.labels(callback_status.value).set(
            callbacks.get(callback_status.value, 0)
        )


@router.get("/metrics")
async def prometheus_metrics(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Response:
    token = request.app.state.settings.metrics_token
    if token is not None:
        expected = f"Bearer {token.get_secret_value()}"
        if authorization is None or not hmac.compare_digest(authorization, expected):
            raise InvalidApiKey()
    await refresh_shared_gauges(request.app.state.sessionmaker)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
