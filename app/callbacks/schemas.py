from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.callbacks.models import CallbackStatus


class CallbackAttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None


class CallbackOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    message_id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    order_id: int | None
    type: str = Field(examples=["order.active"])
    url: str
    status: CallbackStatus
    attempts: int
    next_attempt_at: datetime | None
    deliver_until: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    payload: dict[str, Any]
    attempt_log: list[CallbackAttemptOut]


class CallbackPage(BaseModel):
    items: list[CallbackOut]
    next_cursor: str | None
