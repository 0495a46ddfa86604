"""The worker's side of the inbox: decide each stored event once, in its own transaction.

Deciding an event and requesting its operation commit together, with the event
row and the order row locked, so an event acts at most once however many workers
run, and events about one order are decided one at a time (each sees the
payment signals the ones before it recorded). A worker that dies holding a
claimed event loses its lease and the event is decided by the next one.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import structlog
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import ApiClient
from app.auth.repository import ApiClientRepository
from app.config import Settings
from app.kit.backoff import full_jitter_delay
from app.kit.crypto import SecretBox
from app.kit.models import utcnow
from app.orders import lifecycle
from app.orders.exceptions import InvalidOrderState
from app.orders.models import OperationKind, Order, OrderStatus
from app.orders.repository import OrderRepository
from app.orders.service import request_operation
from app.webhooks.models import (
    PaymentSignal,
    WebhookEvent,
    WebhookEventStatus,
    WebhookProvider,
)
from app.webhooks.policy import (
    Interpretation,
    OrderReference,
    Plan,
    interpret_generic,
    interpret_stripe,
    plan,
    stale,
)
from app.webhooks.repository import WebhookRepository

log = structlog.get_logger(__name__)

BATCH_SIZE = 20
# DCIBRIDGE_DEBUG_CRASH_AT value (crash-safety tests only): SIGKILL right after a
# claim is committed, before any claimed event is decided.
CRASH_AFTER_CLAIM = "webhook:after_claim"
_OPPOSITE = {
    PaymentSignal.FAILURE: PaymentSignal.SUCCESS,
    PaymentSignal.SUCCESS: PaymentSignal.FAILURE,
}
_MAX_ORDER_ID_DIGITS = 18  # below 2**63: never overflows the driver


class SourceNotConfigured(Exception):
    """The event's source (or its API client) is not configured now: retried, then failed."""


def _describe(exc: Exception) -> str:
    """A short, body-free account of a failure: SQL errors carry their parameters."""
    if isinstance(exc, StatementError):
        cause = exc.orig
        text = f"{type(cause).__name__}: {cause}" if cause is not None else type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0][:300] if text else type(exc).__name__


class WebhookProcessor:
    """A worker ``Poller``: turns received events into operations on orders."""

    name = "webhooks"

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        secrets: SecretBox,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._secrets = secrets
        self._lease = timedelta(seconds=settings.lease_seconds)

    async def run_due(self) -> int:
        """Decide what is due now; how many events were claimed."""
        async with self._sessionmaker() as session, session.begin():
            claimed = await WebhookRepository(session).claim_due(
                now=utcnow(), lease=self._lease, limit=BATCH_SIZE
            )
        if claimed and self._settings.debug_crash_at == CRASH_AFTER_CLAIM:
            log.warning("worker.debug_crash", moment=CRASH_AFTER_CLAIM, events=claimed)
            os.kill(os.getpid(), signal.SIGKILL)
        for event_id in claimed:
            await self.process(event_id)
        return len(claimed)

    async def process(self, event_id: int) -> None:
        try:
            async with self._sessionmaker() as session, session.begin():
                await self._decide(session, event_id)
        except Exception as exc:
            await self._record_failure(event_id, exc)
        finally:
            structlog.contextvars.unbind_contextvars(
                "webhook_event_id", "webhook_source", "order_id", "operation_id"
            )

    # -- deciding ------------------------------------------------------------------------

    async def _decide(self, session: AsyncSession, event_id: int) -> None:
        repository = WebhookRepository(session)
        event = await repository.get(event_id, lock=True)
        if event is None or event.status is not WebhookEventStatus.RECEIVED:
            return  # decided meanwhile (a slow holder whose lease ran out)
        structlog.contextvars.bind_contextvars(
            webhook_event_id=event.id, webhook_source=event.source
        )
        meaning = self._interpret(event)
        todo = plan(meaning, self._settings)
        if todo.kind is None and todo.signal is None:
            self._finish(event, WebhookEventStatus.IGNORED, todo.why_not)
            return
        client = await self._api_client(session, event)
        event.api_client_id = client.id
        if meaning.reference is None:
            self._finish(event, WebhookEventStatus.UNMATCHED, meaning.problem)
            return
        order_id = await self._find_order(session, client, meaning.reference)
        order = await repository.lock_order(order_id) if order_id is not None else None
        if order is None:
            self._finish(
                event,
                WebhookEventStatus.UNMATCHED,
                f"no order {meaning.reference.value[:255]!r} for API client {client.name!r}",
            )
            return
        structlog.contextvars.bind_contextvars(order_id=order.id)
        event.order_id = order.id
        event.action = todo.kind.value if todo.kind is not None else None
        why_not = await self._why_not(session, event, order, todo)
        # Recorded whatever happens next: later events are ordered against it.
        event.payment_signal = todo.signal
        if why_not is not None:
            self._finish(event, WebhookEventStatus.IGNORED, why_not)
            return
        assert todo.kind is not None
        try:
            async with session.begin_nested():
                operation = await request_operation(
                    session,
                    client=client.as_caller(),
                    order_id=order.id,
                    kind=todo.kind,
                    params=todo.params,
                    settings=self._settings,
                    secrets=self._secrets,
                )
        except InvalidOrderState as refused:
            # Not an error: e.g. a payment does not lift an abuse suspension.
            self._finish(event, WebhookEventStatus.IGNORED, refused.detail)
            return
        event.operation_id = operation.id
        self._finish(event, WebhookEventStatus.PROCESSED, None)

    def _interpret(self, event: WebhookEvent) -> Interpretation:
        if event.provider is WebhookProvider.STRIPE:
            return interpret_stripe(
                event.payload, metadata_key=self._settings.stripe_order_metadata_key
            )
        return interpret_generic(event.payload)

    async def _api_client(self, session: AsyncSession, event: WebhookEvent) -> ApiClient:
        if event.provider is WebhookProvider.STRIPE:
            name = self._settings.stripe_api_client if self._settings.stripe_secrets else None
        else:
            source = self._settings.generic_webhook_sources.get(event.source)
            name = source.api_client if source is not None else None
        if name is None:
            raise SourceNotConfigured(f"webhook source {event.source!r} is not configured")
        client = await ApiClientRepository(session).get_by_name(name)
        if client is None:
            raise SourceNotConfigured(
                f"webhook source {event.source!r} names API client {name!r}, which does not exist"
            )
        return client

    async def _find_order(
        self, session: AsyncSession, client: ApiClient, reference: OrderReference
    ) -> int | None:
        """Billing's external_id first; failing that, a number may be dcibridge's order id."""
        orders = OrderRepository(session)
        order = await orders.get_by_external_id(
            api_client_id=client.id, external_id=reference.value
        )
        if (
            order is None
            and reference.by_id_too
            and reference.value.isascii()
            and reference.value.isdigit()
            and len(reference.value) <= _MAX_ORDER_ID_DIGITS
        ):
            order = await orders.get_for_client(
                order_id=int(reference.value), api_client_id=client.id
            )
        return order.id if order is not None else None

    async def _why_not(
        self, session: AsyncSession, event: WebhookEvent, order: Order, todo: Plan
    ) -> str | None:
        """Why the planned operation is not requested, or None to request it."""
        if todo.signal is not None:
            opposite = (
                PaymentSignal.FAILURE
                if todo.signal is PaymentSignal.SUCCESS
                else PaymentSignal.SUCCESS
            )
            latest = await WebhookRepository(session).latest_signal(
                order_id=order.id, signal=opposite, excluding=event.id
            )
            out_of_date = stale(todo, event.occurred_at, latest)
            if out_of_date is not None:
                return f"out of date: {out_of_date}"
        if todo.kind is None:
            return todo.why_not
        return await _no_op(session, order, todo)

    # -- bookkeeping -----------------------------------------------------------------------

    def _finish(self, event: WebhookEvent, status: WebhookEventStatus, reason: str | None) -> None:
        event.status = status
        event.reason = reason
        event.attempts += 1
        event.next_attempt_at = None
        event.lease_expires_at = None
        event.processed_at = utcnow()
        log.info(
            f"webhook.{status.value}",
            event_id=event.event_id,
            type=event.type,
            action=event.action,
            operation_id=event.operation_id,
            reason=reason,
        )

    async def _record_failure(self, event_id: int, exc: Exception) -> None:
        reason = _describe(exc)
        if isinstance(exc, SourceNotConfigured | StatementError):
            log.error("webhook.processing_failed", error=reason)
        else:
            log.exception("webhook.processing_failed", error=reason)
        try:
            async with self._sessionmaker() as session, session.begin():
                event = await WebhookRepository(session).get(event_id, lock=True)
                if event is None or event.status is not WebhookEventStatus.RECEIVED:
                    return
                event.attempts += 1
                event.reason = reason
                event.lease_expires_at = None
                now = utcnow()
                if event.attempts >= self._settings.webhook_max_attempts:
                    event.status = WebhookEventStatus.FAILED
                    event.next_attempt_at = None
                    event.processed_at = now
                    log.error("webhook.failed", event_id=event.event_id, attempts=event.attempts)
                    return
                delay = full_jitter_delay(
                    event.attempts,
                    base=self._settings.webhook_retry_base_seconds,
                    cap=self._settings.webhook_retry_max_seconds,
                )
                event.next_attempt_at = now + timedelta(seconds=delay)
                log.warning("webhook.retrying", attempts=event.attempts, delay=round(delay, 2))
        except Exception:  # the lease runs out and the event is tried again
            log.exception("webhook.failure_not_recorded")


async def _no_op(session: AsyncSession, order: Order, todo: Plan) -> str | None:
    """Why the operation would change nothing, judged on the state the order is heading for."""
    pending = await OrderRepository(session).unfinished_operations(order.id)
    try:
        heading = lifecycle.projected(
            lifecycle.state_of(order), ((op.kind, op.params) for op in pending)
        )
    except lifecycle.TransitionRefused:
        return None  # request_operation gives the verdict
    status, held = heading.status, heading.suspension_reason
    match todo.kind:
        case OperationKind.SUSPEND if status is OrderStatus.SUSPENDED:
            assert todo.reason is not None
            if held is not None and lifecycle.stronger(held, todo.reason) is held:
                return f"already suspended ({held.value})"
        case OperationKind.UNSUSPEND if status is OrderStatus.ACTIVE:
            return "the order is not suspended"
        case OperationKind.TERMINATE if status is OrderStatus.TERMINATED:
            return "already terminated"
        case _:
            pass
    return None
