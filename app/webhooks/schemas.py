from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from app.kit.params import NO_NUL
from app.webhooks.models import WebhookEventStatus, WebhookProvider

# As Standard Webhooks allows for its own timestamp.
MAX_CLOCK_SKEW = timedelta(minutes=5)


class StripeEventIn(BaseModel):
    """The part of a Stripe event dcibridge needs before storing it."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(
        min_length=1, max_length=255, pattern=NO_NUL, examples=["evt_1Pgc76B7WZ01zgkWwyRHS12y"]
    )
    type: str = Field(
        min_length=1, max_length=128, pattern=NO_NUL, examples=["invoice.payment_failed"]
    )
    created: int = Field(ge=0, lt=2**40, description="Unix time the event was created.")


class GenericEventIn(BaseModel):
    """An event from a billing platform or payment system, signed per Standard Webhooks."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(
        min_length=1,
        max_length=255,
        pattern=NO_NUL,
        description="Unique per source and event; a redelivery repeats it.",
        examples=["evt_000123"],
    )
    type: str = Field(
        min_length=1,
        max_length=128,
        pattern=NO_NUL,
        description="`payment.failed`, `payment.succeeded` or `service.cancelled`; "
        "other types are stored and ignored.",
        examples=["payment.failed"],
    )
    order_external_id: str = Field(
        min_length=1,
        max_length=255,
        pattern=NO_NUL,
        description="The order's `external_id` (billing's service id).",
        examples=["svc-42"],
    )
    occurred_at: AwareDatetime = Field(
        description="When it happened (ISO 8601 with an offset): orders late events. "
        "At most 5 minutes ahead of dcibridge's clock.",
        examples=["2026-11-29T15:40:00Z"],
    )

    @field_validator("occurred_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime) -> datetime:
        # A future time would outrank every real event of the order for good.
        if value > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError("occurred_at is in the future; check the sender's clock")
        return value


class WebhookAccepted(BaseModel):
    received: Literal[True] = True
    duplicate: bool = Field(description="The event was already stored; nothing more is done.")


class WebhookEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    provider: WebhookProvider
    source: str
    event_id: str
    type: str
    occurred_at: datetime
    status: WebhookEventStatus
    reason: str | None
    action: str | None
    order_id: int | None
    operation_id: int | None
    attempts: int
    next_attempt_at: datetime | None
    processed_at: datetime | None
    created_at: datetime = Field(description="When dcibridge received it.")


class WebhookEventDetail(WebhookEventOut):
    payload: dict[str, Any]


class WebhookEventPage(BaseModel):
    items: list[WebhookEventOut]
    next_cursor: str | None
