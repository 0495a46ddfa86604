"""What the dashboard does: sign-in, sessions, the overview's figures, audited actions.

Operator actions call the services that own them (orchestration, callbacks,
webhooks) and add an ``audit_log`` row in the same transaction, so an action
and its record are committed, or rolled back, together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from app.admin import security
from app.admin.models import AdminLoginFailure, AdminSession, AdminUser, AuditLog
from app.admin.repository import AdminRepository, OrderFilter, OrderRow, StuckOperation
from app.callbacks import service as callbacks
from app.callbacks.models import CallbackEvent, CallbackStatus
from app.config import Settings
from app.health.checks import CheckResult, ReadinessCheck, run_checks
from app.kit.errors import DCIBridgeError, DCIManagerUnavailable, NotFound
from app.kit.metrics import DCI_CALLS
from app.kit.models import utcnow
from app.orchestration import service as orchestration
from app.orchestration.models import WorkerHeartbeat
from app.orders.models import Operation, Order, OrderStatus
from app.stock.cache import StockCache
from app.stock.schemas import StockOut
from app.stock.service import current_stock
from app.webhooks import service as webhooks
from app.webhooks.models import WebhookEvent, WebhookEventStatus

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# A session's last-seen time is written at most this often: every page view
# writing a row would make reading the dashboard a stream of writes.
_TOUCH_EVERY = timedelta(seconds=60)
MAX_REASON_LENGTH = 500
# Webhook events the inbox lets an operator send through again.
REPROCESSABLE_WEBHOOKS = webhooks.REPROCESSABLE


class InvalidUsername(ValueError):
    pass


class AdminUserExists(DCIBridgeError):
    status = 409
    code = "admin_user_exists"
    title = "An admin user with this name already exists"


def normalise_username(username: str) -> str:
    return username.strip().lower()


# -- users ---------------------------------------------------------------------------


async def create_user(session: AsyncSession, *, username: str, password: str) -> AdminUser:
    """A new dashboard account; the password is checked against the policy and hashed."""
    name = normalise_username(username)
    if not USERNAME.match(name):
        raise InvalidUsername(
            "usernames are 1 to 64 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    repository = AdminRepository(session)
    if await repository.user_by_username(name) is not None:
        raise AdminUserExists(f"An admin user named {name!r} already exists.")
    user = AdminUser(username=name, password_hash=security.hash_password(password), enabled=True)
    await repository.add(user)
    return user


# -- signing in and out ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The request's admin: who, which session, and the CSRF token of its forms."""

    user_id: int
    username: str
    session_id: int
    csrf_token: str
    client_ip: str


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str | None = None
    # Seconds until another try is allowed; set when the attempt was refused unheard.
    retry_after: int | None = None

    @property
    def ok(self) -> bool:
        return self.token is not None


async def login(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    client_ip: str,
    settings: Settings,
) -> LoginResult:
    """Check a sign-in; on success open a session and return its (only) token.

    A failure is recorded, and committed by the caller like any other write:
    the failed attempt is the state change. The limit is checked before the
    password, so a locked-out guesser learns nothing, right or wrong.
    """
    name = normalise_username(username)[:64]
    now = utcnow()
    window_start = now - timedelta(seconds=settings.admin_login_window_seconds)
    repository = AdminRepository(session)
    by_user, by_ip, oldest = await repository.login_failures_since(
        username=name, client_ip=client_ip, since=window_start
    )
    if max(by_user, by_ip) >= settings.admin_login_max_failures:
        reopens = (oldest or now) + timedelta(seconds=settings.admin_login_window_seconds)
        return LoginResult(retry_after=max(int((reopens - now).total_seconds()) + 1, 1))

    user = await repository.user_by_username(name) if USERNAME.match(name) else None
    stored = user.password_hash if user is not None and user.enabled else None
    # argon2 costs a good fraction of a second of CPU by design: off the event loop,
    # and outside any transaction (on SQLite an open one holds the write lock that
    # workers need). The outcome is written in a new transaction below.
    await session.commit()
    check = await run_in_threadpool(security.verify_password, stored, password)
    if not check.ok or user is None:
        await repository.forget_login_failures(before=window_start)
        await repository.add(AdminLoginFailure(username=name, client_ip=client_ip, at=now))
        return LoginResult()

    if check.rehashed is not None:
        user.password_hash = check.rehashed
    user.last_login_at = now
    await repository.forget_login_failures(before=window_start, username=name)
    await repository.delete_expired_sessions(
        now=now, idle_before=now - timedelta(seconds=settings.admin_session_idle_seconds)
    )
    token = security.new_token()
    admin_session = AdminSession(
        token_hash=security.token_hash(token),
        admin_user_id=user.id,
        csrf_token=security.new_token(),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=settings.admin_session_max_seconds),
        client_ip=client_ip,
    )
    await repository.add(admin_session)
    await repository.add(
        AuditLog(
            actor=user.username,
            admin_user_id=user.id,
            action="admin.login",
            target_type="admin_user",
            target_id=str(user.id),
            client_ip=client_ip,
            detail={},
        )
    )
    return LoginResult(token=token)


async def resolve_session(
    session: AsyncSession, *, token: str | None, client_ip: str, settings: Settings
) -> SignedIn | None:
    """The signed-in admin behind a session cookie, or None (and the session ends)."""
    if not token:
        return None
    repository = AdminRepository(session)
    found = await repository.session_by_token_hash(security.token_hash(token))
    if found is None:
        return None
    admin_session, user = found
    now = utcnow()
    idle_limit = timedelta(seconds=settings.admin_session_idle_seconds)
    if admin_session.expires_at <= now or now - admin_session.last_seen_at > idle_limit:
        await repository.delete_session(admin_session.id)
        return None
    if not user.enabled:
        await repository.delete_session(admin_session.id)
        return None
    if now - admin_session.last_seen_at > _TOUCH_EVERY:
        admin_session.last_seen_at = now
    return SignedIn(
        user_id=user.id,
        username=user.username,
        session_id=admin_session.id,
        csrf_token=admin_session.csrf_token,
        client_ip=client_ip,
    )


async def logout(session: AsyncSession, *, admin: SignedIn) -> None:
    repository = AdminRepository(session)
    await repository.delete_session(admin.session_id)
    await _audit(session, admin, "admin.logout", "admin_user", admin.user_id)


# -- audited actions -------------------------------------------------------------------


async def _audit(
    session: AsyncSession,
    admin: SignedIn,
    action: str,
    target_type: str,
    target_id: int,
    *,
    order_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await AdminRepository(session).add(
        AuditLog(
            actor=admin.username,
            admin_user_id=admin.user_id,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            order_id=order_id,
            client_ip=admin.client_ip,
            detail=detail or {},
        )
    )


async def get_operation(session: AsyncSession, operation_id: int) -> Operation:
    operation = await AdminRepository(session).operation(operation_id)
    if operation is None:
        raise NotFound(f"No operation {operation_id}.")
    return operation


async def retry_operation(session: AsyncSession, *, admin: SignedIn, operation_id: int) -> int:
    """Queue a failed operation again; the order id, for the page to return to."""
    operation = await get_operation(session, operation_id)
    previous_error = operation.error_code
    operation = await orchestration.retry_operation(session, operation_id=operation_id)
    await _audit(
        session,
        admin,
        "operation.retry",
        "operation",
        operation.id,
        order_id=operation.order_id,
        detail={"kind": operation.kind.value, "previous_error_code": previous_error},
    )
    return operation.order_id


async def cancel_operation(session: AsyncSession, *, admin: SignedIn, operation_id: int) -> int:
    operation = await orchestration.cancel_operation(session, operation_id=operation_id)
    await _audit(
        session,
        admin,
        "operation.cancel",
        "operation",
        operation.id,
        order_id=operation.order_id,
        detail={"kind": operation.kind.value},
    )
    return operation.order_id


async def mark_operation_failed(
    session: AsyncSession, *, admin: SignedIn, operation_id: int, reason: str
) -> int:
    operation = await orchestration.mark_operation_failed(
        session, operation_id=operation_id, reason=reason
    )
    await _audit(
        session,
        admin,
        "operation.mark_failed",
        "operation",
        operation.id,
        order_id=operation.order_id,
        detail={"kind": operation.kind.value, "reason": reason},
    )
    return operation.order_id


async def get_callback(session: AsyncSession, event_id: int) -> CallbackEvent:
    event = await AdminRepository(session).callback(event_id)
    if event is None:
        raise NotFound(f"No callback {event_id}.")
    return event


async def redeliver_callback(
    session: AsyncSession, *, admin: SignedIn, event_id: int, settings: Settings
) -> int | None:
    """Send a callback again (same webhook-id); the order id it belongs to, if any."""
    repository = AdminRepository(session)
    event = await get_callback(session, event_id)
    client = await repository.api_client(event.api_client_id)
    if client is None:  # pragma: no cover - the foreign key cascades
        raise NotFound(f"No callback {event_id}.")
    previous = event.status.value
    redelivered = await callbacks.redeliver(
        session, client=client.as_caller(), event_id=event_id, settings=settings
    )
    await _audit(
        session,
        admin,
        "callback.redeliver",
        "callback_event",
        event_id,
        order_id=redelivered.order_id,
        detail={"type": redelivered.type, "previous_status": previous},
    )
    return redelivered.order_id


async def get_webhook_event(session: AsyncSession, event_id: int) -> WebhookEvent:
    event = await AdminRepository(session).webhook_event(event_id)
    if event is None:
        raise NotFound(f"No webhook event {event_id}.")
    return event


async def reprocess_webhook(session: AsyncSession, *, admin: SignedIn, event_id: int) -> None:
    event = await get_webhook_event(session, event_id)
    # Reprocessing forgets which order the event matched: note it first.
    order_id, previous = event.order_id, event.status.value
    detail = await webhooks.reprocess(session, event_id)
    await _audit(
        session,
        admin,
        "webhook.reprocess",
        "webhook_event",
        event_id,
        order_id=order_id,
        detail={"source": detail.source, "type": detail.type, "previous_status": previous},
    )


# -- pages' read models ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HourBucket:
    start: datetime
    count: int = 0
    # Mean seconds from acceptance to success of the provisions finished in the hour.
    mean_seconds: float | None = None
    max_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class DciCalls:
    """DCImanager calls this process made since it started (in-process counters)."""

    total: int
    errors: int

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.total if self.total else None


@dataclass(frozen=True, slots=True)
class WorkerView:
    heartbeat: WorkerHeartbeat
    age_seconds: float
    stale: bool


@dataclass(slots=True)
class Overview:
    now: datetime
    orders: dict[str, int]
    operations: dict[str, int]
    failed_last_24h: int
    retryable: Sequence[Operation]
    stuck: list[StuckOperation]
    stuck_after_seconds: float
    workers: list[WorkerView]
    readiness: dict[str, CheckResult]
    dci_calls: DciCalls
    stock: StockOut | None
    callbacks: dict[str, int]
    webhooks: dict[str, int]
    hours: list[HourBucket]
    recent_audit: Sequence[AuditLog]
    order_statuses: list[str] = field(default_factory=lambda: [s.value for s in OrderStatus])


def dci_call_counts() -> DciCalls:
    """Transport errors and 5xx answers among this process's DCImanager calls.

    Read from the Prometheus counter the DCImanager client keeps, so it costs
    nothing; it covers this process only (a separate worker keeps its own).
    """
    total = errors = 0.0
    for metric in DCI_CALLS.collect():
        for sample in metric.samples:
            if not sample.name.endswith("_total"):
                continue
            total += sample.value
            status = sample.labels.get("status", "")
            if status == "error" or (status.isdigit() and int(status) >= 500):
                errors += sample.value
    return DciCalls(total=int(total), errors=int(errors))


def hourly(
    now: datetime,
    created: Sequence[datetime],
    provisions: Sequence[tuple[datetime, datetime]],
    *,
    hours: int = 24,
) -> list[HourBucket]:
    """The last ``hours`` clock hours, the current one last."""
    current = now.replace(minute=0, second=0, microsecond=0)
    starts = [current - timedelta(hours=hours - 1 - index) for index in range(hours)]
    first = starts[0]

    def slot(moment: datetime) -> int | None:
        index = int((moment - first).total_seconds() // 3600)
        return index if 0 <= index < hours else None

    counts = [0] * hours
    for moment in created:
        if (index := slot(moment)) is not None:
            counts[index] += 1
    durations: list[list[float]] = [[] for _ in range(hours)]
    for accepted, finished in provisions:
        if (index := slot(finished)) is not None:
            durations[index].append(max((finished - accepted).total_seconds(), 0.0))
    return [
        HourBucket(
            start=start,
            count=counts[index],
            mean_seconds=sum(durations[index]) / len(durations[index])
            if durations[index]
            else None,
            max_seconds=max(durations[index]) if durations[index] else None,
        )
        for index, start in enumerate(starts)
    ]


async def _stock(session: AsyncSession, cache: StockCache) -> StockOut | None:
    try:
        return await current_stock(session, cache=cache)
    except DCIManagerUnavailable:
        return None


async def overview(
    session: AsyncSession,
    *,
    settings: Settings,
    stock_cache: StockCache,
    readiness_checks: dict[str, ReadinessCheck],
) -> Overview:
    now = utcnow()
    day_ago = now - timedelta(hours=24)
    repository = AdminRepository(session)
    orders = await repository.order_counts()
    operations = await repository.unfinished_operation_counts()
    failed = await repository.failed_operations_since(day_ago)
    retryable = await repository.retryable_failures(limit=10)
    stuck = await repository.stuck_operations(
        quiet_since=now - timedelta(seconds=settings.admin_stuck_after_seconds), limit=20
    )
    heartbeats = await repository.worker_heartbeats()
    callback_counts = await repository.callback_counts()
    webhook_counts = await repository.webhook_counts()
    hours = hourly(
        now,
        await repository.order_creation_times(day_ago - timedelta(hours=1)),
        await repository.provision_runs(day_ago - timedelta(hours=1)),
    )
    recent = await repository.recent_audit(limit=10)
    # End the read transaction before waiting on anything else: on SQLite it holds
    # the write lock, which the readiness checks' own connections (and the worker)
    # would otherwise queue behind while this request waits for them.
    await session.commit()
    readiness = await run_checks(
        readiness_checks, per_check_seconds=settings.readiness_timeout_seconds
    )
    stock = await _stock(session, stock_cache)
    stale_after = 3 * settings.worker_heartbeat_seconds
    workers = [
        WorkerView(
            heartbeat=beat,
            age_seconds=(age := max((now - beat.heartbeat_at).total_seconds(), 0.0)),
            stale=age > stale_after,
        )
        for beat in heartbeats
    ]
    return Overview(
        now=now,
        orders={status.value: orders.get(status.value, 0) for status in OrderStatus},
        operations=operations,
        failed_last_24h=failed,
        retryable=retryable,
        stuck=stuck,
        stuck_after_seconds=settings.admin_stuck_after_seconds,
        workers=workers,
        readiness=readiness,
        dci_calls=dci_call_counts(),
        stock=stock,
        callbacks={status.value: callback_counts.get(status.value, 0) for status in CallbackStatus},
        webhooks={
            status.value: webhook_counts.get(status.value, 0) for status in WebhookEventStatus
        },
        hours=hours,
        recent_audit=recent,
    )


@dataclass(frozen=True, slots=True)
class OrderPage:
    rows: list[OrderRow]
    total: int
    page: int
    pages: int


async def search_orders(
    session: AsyncSession, criteria: OrderFilter, *, page: int, per_page: int
) -> OrderPage:
    page = max(page, 1)
    rows, total = await AdminRepository(session).search_orders(
        criteria, offset=(page - 1) * per_page, limit=per_page
    )
    return OrderPage(
        rows=rows, total=total, page=page, pages=max((total + per_page - 1) // per_page, 1)
    )


@dataclass(frozen=True, slots=True)
class OrderDetail:
    order: Order
    api_client: str
    callbacks: Sequence[CallbackEvent]
    webhook_events: Sequence[WebhookEvent]
    audit: Sequence[AuditLog]
    latest_operation_id: int | None


async def order_detail(session: AsyncSession, order_id: int) -> OrderDetail:
    repository = AdminRepository(session)
    order = await repository.order_with_history(order_id)
    if order is None:
        raise NotFound(f"No order {order_id}.")
    client = await repository.api_client(order.api_client_id)
    return OrderDetail(
        order=order,
        api_client=client.name if client is not None else "?",
        callbacks=await repository.callbacks_for_order(order_id),
        webhook_events=await repository.webhook_events(order_id=order_id, status=None, limit=50),
        audit=await repository.audit_for_order(order_id),
        latest_operation_id=max((op.id for op in order.operations), default=None),
    )


async def webhook_events(
    session: AsyncSession, *, status: WebhookEventStatus | None, limit: int = 100
) -> Sequence[WebhookEvent]:
    return await AdminRepository(session).webhook_events(order_id=None, status=status, limit=limit)
