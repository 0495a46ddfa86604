"""Every table, imported in one place so Alembic and tests see the whole schema."""

from app.admin.models import AdminLoginFailure, AdminSession, AdminUser, AuditLog
from app.auth.models import ApiClient
from app.callbacks.models import CallbackAttempt, CallbackEvent
from app.customers.models import Customer
from app.idempotency.models import IdempotencyKey
from app.kit.models import Base
from app.orchestration.models import WorkerHeartbeat
from app.orders.models import Operation, OperationStep, Order
from app.webhooks.models import WebhookEvent

__all__ = [
    "AdminLoginFailure",
    "AdminSession",
    "AdminUser",
    "ApiClient",
    "AuditLog",
    "Base",
    "CallbackAttempt",
    "CallbackEvent",
    "Customer",
    "IdempotencyKey",
    "Operation",
    "OperationStep",
    "Order",
    "WebhookEvent",
    "WorkerHeartbeat",
]
