from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, status

from app.auth.dependencies import require_scope
from app.auth.models import Caller
from app.auth.scopes import Scope
from app.config import Settings
from app.kit.api import api_router
from app.kit.db import SessionDep
from app.kit.openapi import problem_responses
from app.kit.params import NO_NUL, IdPath, IdQuery, PageLimit
from app.webhooks import service, stripe
from app.webhooks.exceptions import PayloadTooLarge
from app.webhooks.models import WebhookEventStatus
from app.webhooks.schemas import (
    GenericEventIn,
    StripeEventIn,
    WebhookAccepted,
    WebhookEventDetail,
    WebhookEventPage,
)

router = api_router(tag="webhooks")

Admin = Annotated[Caller, Depends(require_scope(Scope.ADMIN))]
SourcePath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _json_body(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    # The body is read raw (its signature covers the exact bytes), so it is
    # documented here rather than declared as a parameter.
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


# What the handler validates (``StripeEventIn``), plus the ``data`` Stripe always sends.
_STRIPE_EVENT_SCHEMA: dict[str, Any] = StripeEventIn.model_json_schema()
_STRIPE_EVENT_SCHEMA["properties"]["data"] = {
    "type": "object",
    "properties": {"object": {"type": "object"}},
}
_STRIPE_EVENT_SCHEMA["required"] = [*_STRIPE_EVENT_SCHEMA["required"], "data"]


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(limit)
    return bytes(body)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.post(
    "/webhooks/stripe",
    summary="Receive a Stripe event (authenticated by its Stripe-Signature)",
    description="No API key: the `Stripe-Signature` header, checked against "
    "`DCIBRIDGE_STRIPE_WEBHOOK_SECRETS`, is the authentication. A genuine event is "
    "stored once and answered 200 at once; the worker acts on it. 404 when no "
    "Stripe secret is configured.",
    operation_id="receiveStripeWebhook",
    response_model=WebhookAccepted,
    responses=problem_responses(400, 404, 413, 422),
    openapi_extra=_json_body(
        "A Stripe event object, exactly as Stripe sent it.", _STRIPE_EVENT_SCHEMA
    ),
)
async def receive_stripe(request: Request, session: SessionDep) -> WebhookAccepted:
    settings = _settings(request)
    service.require_stripe(settings)
    body = await _read_body(request, settings.webhook_max_body_bytes)
    return await service.receive_stripe(
        session,
        body=body,
        signature=request.headers.get(stripe.SIGNATURE_HEADER),
        settings=settings,
    )


@router.post(
    "/webhooks/generic/{source}",
    summary="Receive an event from a billing platform or payment system (Standard Webhooks)",
    description="No API key: the `webhook-id`, `webhook-timestamp` and `webhook-signature` "
    "headers, checked against the source's secret in `DCIBRIDGE_GENERIC_WEBHOOK_SOURCES`, "
    "are the authentication. 404 for a source that is not configured.",
    operation_id="receiveGenericWebhook",
    response_model=WebhookAccepted,
    responses=problem_responses(400, 404, 413, 422),
    openapi_extra=_json_body(
        "The event, signed per Standard Webhooks.", GenericEventIn.model_json_schema()
    ),
)
async def receive_generic(
    source: SourcePath, request: Request, session: SessionDep
) -> WebhookAccepted:
    settings = _settings(request)
    service.require_generic(settings, source)
    body = await _read_body(request, settings.webhook_max_body_bytes)
    return await service.receive_generic(
        session, source=source, body=body, headers=request.headers, settings=settings
    )


@router.get(
    "/webhook-events",
    summary="Payment webhook events received, newest first",
    operation_id="listWebhookEvents",
    response_model=WebhookEventPage,
    responses=problem_responses(401, 403, 422),
)
async def list_webhook_events(
    _: Admin,
    session: SessionDep,
    status_: Annotated[WebhookEventStatus | None, Query(alias="status")] = None,
    source: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    event_id: Annotated[
        str | None, Query(max_length=255, pattern=NO_NUL, description="The sender's id")
    ] = None,
    order_id: IdQuery = None,
    cursor: str | None = None,
    limit: PageLimit = 50,
) -> WebhookEventPage:
    items, next_cursor = await service.list_events(
        session,
        status=status_,
        source=source,
        event_id=event_id,
        order_id=order_id,
        cursor=cursor,
        limit=limit,
    )
    return WebhookEventPage(items=items, next_cursor=next_cursor)


@router.get(
    "/webhook-events/{event_id}",
    summary="One payment webhook event, with the payload as received",
    operation_id="getWebhookEvent",
    response_model=WebhookEventDetail,
    responses=problem_responses(401, 403, 404),
)
async def get_webhook_event(event_id: IdPath, _: Admin, session: SessionDep) -> WebhookEventDetail:
    return await service.get_event(session, event_id)


@router.post(
    "/webhook-events/{event_id}/reprocess",
    summary="Process an unmatched or failed event again",
    operation_id="reprocessWebhookEvent",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookEventDetail,
    responses=problem_responses(401, 403, 404, 409),
)
async def reprocess_webhook_event(
    event_id: IdPath, _: Admin, session: SessionDep
) -> WebhookEventDetail:
    return await service.reprocess(session, event_id)
