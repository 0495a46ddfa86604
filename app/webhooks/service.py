"""Receiving payment webhooks: authenticate, store once, answer at once. The worker acts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.config import Settings
from app.kit.models import utcnow
from app.kit.pagination import decode_cursor, split_page
from app.webhooks import stripe
from app.webhooks.exceptions import (
    InvalidEvent,
    InvalidJson,
    InvalidSignature,
    InvalidWebhookEventState,
    WebhookEventNotFound,
    WebhookSourceNotFound,
)
from app.webhooks.models import WebhookEventStatus, WebhookProvider
from app.webhooks.repository import WebhookRepository
from app.webhooks.schemas import (
    GenericEventIn,
    StripeEventIn,
    WebhookAccepted,
    WebhookEventDetail,
    WebhookEventOut,
)

log = structlog.get_logger(__name__)

STRIPE_SOURCE = "stripe"
STANDARD_WEBHOOKS_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
REPROCESSABLE = frozenset({WebhookEventStatus.UNMATCHED, WebhookEventStatus.FAILED})
_CURSOR_KIND = "w"

EventT = TypeVar("EventT", bound=BaseModel)


# -- receiving ------------------------------------------------------------------------


def require_stripe(settings: Settings) -> list[str]:
    """The Stripe signing secrets; a deployment without any has no Stripe receiver (404)."""
    secrets = settings.stripe_secrets
    if not secrets:
        raise WebhookSourceNotFound("No Stripe webhook receiver is configured here.")
    return secrets


def require_generic(settings: Settings, source: str) -> list[str]:
    """A generic source's secrets; an unknown source is not found (404)."""
    configured = settings.generic_webhook_sources.get(source)
    if configured is None:
        raise WebhookSourceNotFound("No webhook source with this name is configured here.")
    return [secret.get_secret_value() for secret in configured.secrets]


def verify_stripe(
    body: bytes, header: str | None, *, secrets: list[str], settings: Settings
) -> None:
    try:
        stripe.verify(
            body, header, secrets, tolerance_seconds=settings.stripe_webhook_tolerance_seconds
        )
    except stripe.SignatureRejected as rejected:
        # The reason is for the operator; the sender learns nothing about which part failed.
        log.warning("webhook.invalid_signature", provider="stripe", why=rejected.reason)
        raise InvalidSignature() from None


def verify_generic(body: bytes, headers: Mapping[str, str], *, secrets: list[str]) -> None:
    """Standard Webhooks: any configured secret (several while rotating) may match."""
    wanted = {name: headers.get(name, "") for name in STANDARD_WEBHOOKS_HEADERS}
    why = "no matching signature"
    for secret in secrets:
        try:
            # json_parse=False: nothing in the body is read before it is authenticated.
            Webhook(secret).verify(body, wanted, json_parse=False)
            return
        except WebhookVerificationError as exc:
            why = str(exc)
        except ValueError:
            # Malformed signature lists, bad base64, or a body that is not UTF-8 (which
            # the library cannot verify): all just "not verified".
            why = "malformed headers or body"
    log.warning("webhook.invalid_signature", provider="generic", why=why)
    raise InvalidSignature()


def parse_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidJson("The body is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise InvalidJson("The body must be a JSON object.")
    return parsed


def validate(model: type[EventT], payload: dict[str, Any]) -> EventT:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidEvent(errors) from None


async def receive_stripe(
    session: AsyncSession, *, body: bytes, signature: str | None, settings: Settings
) -> WebhookAccepted:
    verify_stripe(body, signature, secrets=require_stripe(settings), settings=settings)
    payload = parse_object(body)
    event = validate(StripeEventIn, payload)
    return await _store(
        session,
        provider=WebhookProvider.STRIPE,
        source=STRIPE_SOURCE,
        event_id=event.id,
        event_type=event.type,
        occurred_at=datetime.fromtimestamp(event.created, UTC),
        payload=payload,
    )


async def receive_generic(
    session: AsyncSession,
    *,
    source: str,
    body: bytes,
    headers: Mapping[str, str],
    settings: Settings,
) -> WebhookAccepted:
    verify_generic(body, headers, secrets=require_generic(settings, source))
    payload = parse_object(body)
    event = validate(GenericEventIn, payload)
    return await _store(
        session,
        provider=WebhookProvider.GENERIC,
        source=source,
        event_id=event.id,
        event_type=event.type,
        occurred_at=event.occurred_at.astimezone(UTC),
        payload=payload,
    )


async def _store(
    session: AsyncSession,
    *,
    provider: WebhookProvider,
    source: str,
    event_id: str,
    event_type: str,
    occurred_at: datetime,
    payload: dict[str, Any],
) -> WebhookAccepted:
    now = utcnow()
    stored_id = await WebhookRepository(session).insert_once(
        {
            "provider": provider,
            "source": source,
            "event_id": event_id,
            "type": event_type,
            "occurred_at": occurred_at,
            "payload": payload,
            "status": WebhookEventStatus.RECEIVED,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
    )
    duplicate = stored_id is None
    log.info(
        "webhook.duplicate" if duplicate else "webhook.received",
        provider=provider.value,
        source=source,
        event_id=event_id,
        type=event_type,
        webhook_event_id=stored_id,
    )
    return WebhookAccepted(duplicate=duplicate)


# -- the operator's view ------------------------------------------------------------------


async def get_event(session: AsyncSession, event_id: int) -> WebhookEventDetail:
    event = await WebhookRepository(session).get(event_id)
    if event is None:
        raise WebhookEventNotFound(event_id)
    return WebhookEventDetail.model_validate(event)


async def list_events(
    session: AsyncSession,
    *,
    status: WebhookEventStatus | None,
    source: str | None,
    event_id: str | None,
    order_id: int | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[WebhookEventOut], str | None]:
    events = await WebhookRepository(session).list(
        status=status,
        source=source,
        event_id=event_id,
        order_id=order_id,
        before_id=decode_cursor(_CURSOR_KIND, cursor) if cursor else None,
        limit=limit + 1,
    )
    page, next_cursor = split_page(events, kind=_CURSOR_KIND, limit=limit)
    return [WebhookEventOut.model_validate(event) for event in page], next_cursor


async def reprocess(session: AsyncSession, event_id: int) -> WebhookEventDetail:
    """Put an unmatched or failed event back in the queue, as if it had just arrived."""
    repository = WebhookRepository(session)
    event = await repository.get(event_id, lock=True)
    if event is None:
        raise WebhookEventNotFound(event_id)
    if event.status not in REPROCESSABLE:
        raise InvalidWebhookEventState(
            f"Only unmatched or failed events can be reprocessed; this one is "
            f"{event.status.value}.",
            event_status=event.status.value,
        )
    event.status = WebhookEventStatus.RECEIVED
    event.reason = None
    event.attempts = 0
    event.next_attempt_at = utcnow()
    event.lease_expires_at = None
    event.processed_at = None
    event.action = None
    event.api_client_id = event.order_id = event.operation_id = None
    event.payment_signal = None
    await session.flush()
    log.info("webhook.reprocess", webhook_event_id=event.id, event_id=event.event_id)
    return WebhookEventDetail.model_validate(event)


async def purge_settled(
    session: AsyncSession, *, settings: Settings, now: datetime, limit: int
) -> int:
    """Delete up to ``limit`` events settled longer ago than the retention."""
    before = now - timedelta(days=settings.webhook_retention_days)
    return await WebhookRepository(session).delete_settled(before=before, limit=limit)
