"""Every table, imported in one place so Alembic and tests see the whole schema."""

from app.auth.models import ApiClient
from app.callbacks.models import CallbackAttempt, CallbackEvent
from app.customers.models import Customer
from app.idempotency.models import IdempotencyKey
from app.kit.models import Base
from app.orchestration.models import WorkerHeartbeat
from app.orders.models import Operation, OperationStep, Order

__all__ = [
    "ApiClient",
    "Base",
    "CallbackAttempt",
    "CallbackEvent",
    "Customer",
    "IdempotencyKey",
    "Operation",
    "OperationStep",
    "Order",
    "WorkerHeartbeat",
]
