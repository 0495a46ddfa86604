"""Delivering queued callbacks, signed per Standard Webhooks, with backoff for a day."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from app.auth.models import ApiClient
from app.callbacks.models import CallbackAttempt, CallbackEvent, CallbackStatus
from app.callbacks.repository import CallbackRepository
from app.config import Settings
from app.kit.backoff import full_jitter_delay
from app.kit.crypto import SecretBox
from app.kit.metrics import CALLBACK_DELIVERIES
from app.kit.models import utcnow

log = structlog.get_logger(__name__)

USER_AGENT = "dcibridge-callbacks/1"


def signed_request(
    event: CallbackEvent, *, secret: str, now: datetime
) -> tuple[bytes, dict[str, str]]:
    """The body and Standard Webhooks headers; the id stays the same on every attempt."""
    body = json.dumps(event.payload, separators=(",", ":"), sort_keys=True)
    signature = Webhook(secret).sign(msg_id=event.message_id, timestamp=now, data=body)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers


class CallbackDeliverer:
    name = "callbacks"

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        secrets: SecretBox,
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._http = http
        self._secrets = secrets
        self._settings = settings
        self._lease = timedelta(seconds=settings.callback_timeout_seconds * 3)

    async def run_due(self) -> int:
        """Deliver what is due now; the number of events tried."""
        async with self._sessionmaker() as session, session.begin():
            claimed = await CallbackRepository(session).claim_due(
                now=utcnow(), lease=self._lease, limit=self._settings.callback_max_concurrent
            )
        if claimed:
            await asyncio.gather(*(self._deliver(event_id) for event_id in claimed))
        return len(claimed)

    async def _deliver(self, event_id: int) -> None:
        async with self._sessionmaker() as session, session.begin():
            event = await CallbackRepository(session).get(event_id)
            if event is None or event.status is not CallbackStatus.PENDING:
                return
            client = await session.get(ApiClient, event.api_client_id)
            secret = (
                self._secrets.decrypt(client.callback_secret_ciphertext)
                if client is not None and client.callback_secret_ciphertext
                else None
            )
        structlog.contextvars.bind_contextvars(order_id=event.order_id)
        now = utcnow()
        status_code: int | None = None
        error: str | None = None
        started = time.perf_counter()
        if secret is None:
            error = "the API client has no callback signing secret"
        else:
            body, headers = signed_request(event, secret=secret, now=now)
            try:
                response = await self._http.post(event.url, content=body, headers=headers)
                status_code = response.status_code
                if not response.is_success:
                    error = f"HTTP {status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        await self._record(event_id, now, status_code, latency_ms, error)

    async def _record(
        self,
        event_id: int,
        attempted_at: datetime,
        status_code: int | None,
        latency_ms: float,
        error: str | None,
    ) -> None:
        async with self._sessionmaker() as session, session.begin():
            repository = CallbackRepository(session)
            event = await repository.get(event_id)
            if event is None:
                return
            repository.add_attempt(
                CallbackAttempt(
                    event_id=event.id,
                    attempted_at=attempted_at,
                    status_code=status_code,
                    latency_ms=latency_ms,
                    error=error,
                )
            )
            event.attempts += 1
            event.last_status_code = status_code
            event.last_error = error
            event.lease_expires_at = None
            now = utcnow()
            CALLBACK_DELIVERIES.labels("delivered" if error is None else "failed_attempt").inc()
            if error is None:
                event.status = CallbackStatus.DELIVERED
                event.delivered_at = now
                event.next_attempt_at = None
                log.info("callback.delivered", type=event.type, attempts=event.attempts)
                return
            delay = full_jitter_delay(
                event.attempts,
                base=self._settings.callback_retry_base_seconds,
                cap=self._settings.callback_retry_max_seconds,
            )
            retry_at = now + timedelta(seconds=delay)
            if retry_at > event.deliver_until:
                event.status = CallbackStatus.FAILED
                event.next_attempt_at = None
                log.error("callback.gave_up", type=event.type, attempts=event.attempts, error=error)
                return
            event.next_attempt_at = retry_at
            log.warning("callback.retrying", type=event.type, error=error, delay=round(delay, 2))
