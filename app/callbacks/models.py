from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.kit.models import Base, BigIntPK, TimestampedMixin


class CallbackStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class CallbackEvent(TimestampedMixin, Base):
    """An event for billing, written in the transaction of the change it reports (outbox)."""

    __tablename__ = "callback_event"
    __table_args__ = (Index("ix_callback_event_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # Standard Webhooks ``webhook-id``: the same on every attempt, so receivers dedupe.
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    api_client_id: Mapped[int] = mapped_column(
        ForeignKey("api_client.id", ondelete="CASCADE"), index=True
    )
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("order.id", ondelete="SET NULL"), index=True
    )
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    url: Mapped[str] = mapped_column(String(2048))
    status: Mapped[CallbackStatus] = mapped_column(
        Enum(
            CallbackStatus,
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda members: [m.value for m in members],
        ),
        default=CallbackStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    deliver_until: Mapped[datetime]
    lease_expires_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]

    attempt_log: Mapped[list[CallbackAttempt]] = relationship(
        order_by="CallbackAttempt.id", lazy="raise", viewonly=True
    )


class CallbackAttempt(Base):
    """One delivery try, kept for the operator: what billing answered and how fast."""

    __tablename__ = "callback_attempt"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("callback_event.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float]
    error: Mapped[str | None] = mapped_column(Text)
