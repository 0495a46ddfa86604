from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.models import Base, BigIntPK, TimestampedMixin


def _str_enum(enum_cls: type[enum.StrEnum]) -> Enum:
    return Enum(
        enum_cls,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class WebhookProvider(enum.StrEnum):
    STRIPE = "stripe"
    GENERIC = "generic"


class WebhookEventStatus(enum.StrEnum):
    RECEIVED = "received"  # stored, waiting for the worker
    PROCESSED = "processed"  # an operation was requested on the order
    IGNORED = "ignored"  # nothing to do, and why (``reason``)
    UNMATCHED = "unmatched"  # no order could be found for it
    FAILED = "failed"  # processing kept failing; ``reason`` says how


class PaymentSignal(enum.StrEnum):
    """What an event said about an order's payments, kept to put late events in order."""

    FAILURE = "failure"  # a payment failure that warrants suspension
    SUCCESS = "success"


class WebhookEvent(TimestampedMixin, Base):
    """One genuine event from a payment system (inbox): stored once, processed once."""

    __tablename__ = "webhook_event"
    __table_args__ = (
        UniqueConstraint("provider", "source", "event_id"),
        Index("ix_webhook_event_due", "status", "next_attempt_at"),
        Index("ix_webhook_event_order_signal", "order_id", "payment_signal", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    provider: Mapped[WebhookProvider] = mapped_column(_str_enum(WebhookProvider))
    # "stripe" for Stripe; a generic sender's configured name.
    source: Mapped[str] = mapped_column(String(64))
    # The sender's event id: Stripe's "evt_...", a generic body's "id".
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(128))
    # When the sender says it happened (Stripe's "created", a generic "occurred_at").
    occurred_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[WebhookEventStatus] = mapped_column(
        _str_enum(WebhookEventStatus), default=WebhookEventStatus.RECEIVED
    )
    reason: Mapped[str | None] = mapped_column(Text)
    # What the event asked of the order ("suspend", "unsuspend", "terminate").
    action: Mapped[str | None] = mapped_column(String(16))
    api_client_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_client.id", ondelete="SET NULL")
    )
    order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id", ondelete="SET NULL"))
    operation_id: Mapped[int | None] = mapped_column(
        ForeignKey("operation.id", ondelete="SET NULL")
    )
    payment_signal: Mapped[PaymentSignal | None] = mapped_column(_str_enum(PaymentSignal))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
