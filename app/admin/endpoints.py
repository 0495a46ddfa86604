"""The /admin pages: HTML rendered on the server, forms posted back, no script.

Every page but the sign-in page needs a session; every POST also needs the
session's CSRF token. Errors are rendered as pages here (``AdminRoute``)
rather than the API's problem+json, and every answer carries headers that
keep the pages out of frames, caches and other origins' scripts.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit, urlunsplit

import jinja2
from fastapi import APIRouter, BackgroundTasks, Depends, Form, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from app.admin import service
from app.admin.charts import Datum, bar_chart, duration_scale, line_chart
from app.admin.repository import OrderFilter
from app.admin.security import (
    COOKIE_PATH,
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    client_ip,
    new_token,
    request_scheme,
    safe_next,
    tokens_match,
)
from app.admin.service import SignedIn
from app.config import Settings
from app.kit.db import SessionDep
from app.kit.errors import DCIBridgeError, NotFound
from app.kit.params import NO_NUL, IdPath
from app.orders.models import OrderStatus
from app.webhooks.models import WebhookEventStatus

PER_PAGE = 25
_HERE = Path(__file__).parent
_STYLESHEET = (_HERE / "static" / "admin.css").read_bytes()

# No script at all, styles only from our own stylesheet, forms only to ourselves.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


# -- how the pages fail ----------------------------------------------------------------


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRejected(Exception):
    pass


class AdminRoute(APIRoute):
    """Renders the dashboard's failures as pages and adds its security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def admin_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired as required:
                response = RedirectResponse(
                    f"/admin/login?next={quote(required.next_path, safe='/')}", status_code=303
                )
            except CsrfRejected:
                response = _error(
                    request,
                    403,
                    "Request refused",
                    "This form did not carry a valid security token, so nothing was done. "
                    "Forms expire when you sign out or your session ends: go back, reload "
                    "the page and try again.",
                )
            except RequestValidationError:
                response = _error(request, 400, "Bad request", "The address or form is not valid.")
            except NotFound as missing:
                response = _error(request, 404, "Not found", missing.detail or "No such object.")
            for name, value in _SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return admin_handler


router = APIRouter(prefix="/admin", include_in_schema=False, route_class=AdminRoute)


# -- templates -------------------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "—"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h" if hours % 24 else f"{hours // 24} d"


def _between(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    return _duration(max((end - start).total_seconds(), 0.0))


def _redact_url(url: str | None) -> str:
    """Scheme, host and path only: query strings and user info may carry tokens."""
    if not url:
        return "—"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        when=_when, duration=_duration, between=_between, redact_url=_redact_url
    )
    return environment


templates = Jinja2Templates(env=_environment())


def _render(
    request: Request,
    name: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    admin: SignedIn | None = getattr(request.state, "admin", None)
    return templates.TemplateResponse(
        request,
        name,
        {"admin": admin, "csrf_field": CSRF_FIELD, "nav": "", **context},
        status_code=status,
        headers=headers,
    )


def _error(
    request: Request, status: int, title: str, message: str, *, back: str | None = None
) -> HTMLResponse:
    return _render(request, "error.html", status=status, title=title, message=message, back=back)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# -- who is asking ---------------------------------------------------------------------


async def _signed_in(request: Request, session: SessionDep) -> SignedIn:
    settings = _settings(request)
    admin = await service.resolve_session(
        session,
        token=request.cookies.get(SESSION_COOKIE),
        client_ip=client_ip(request, settings),
        settings=settings,
    )
    if admin is None:
        # An expired session was just deleted: keep that, then send to the sign-in page.
        await session.commit()
        target = request.url.path
        if request.method == "GET" and request.url.query:
            target = f"{target}?{request.url.query}"
        raise LoginRequired(target if request.method == "GET" else "/admin")
    request.state.admin = admin
    return admin


CurrentAdmin = Annotated[SignedIn, Depends(_signed_in)]


async def _csrf_checked(
    admin: CurrentAdmin, csrf_token: Annotated[str, Form(max_length=256)] = ""
) -> SignedIn:
    if not tokens_match(admin.csrf_token, csrf_token):
        raise CsrfRejected()
    return admin


# A state-changing request: a session, and a form carrying that session's token.
CheckedAdmin = Annotated[SignedIn, Depends(_csrf_checked)]


def _wake_worker(request: Request, background: BackgroundTasks) -> None:
    # After the response, i.e. once the action's transaction is committed.
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        background.add_task(worker.kick)


# -- static ----------------------------------------------------------------------------


@router.get("/static/admin.css")
async def stylesheet() -> Response:
    return Response(
        _STYLESHEET, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )


# -- signing in and out ------------------------------------------------------------------


def _login_page(
    request: Request,
    *,
    status: int = 200,
    message: str | None = None,
    next_path: str = "/admin",
    username: str = "",
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    # Login CSRF (double submit): the form's token must equal the cookie's, which
    # another site can neither read nor set.
    existing = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    token = existing if 20 <= len(existing) <= 64 else new_token()
    response = _render(
        request,
        "login.html",
        status=status,
        headers=headers,
        message=message,
        next_path=next_path,
        username=username,
        login_token=token,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request_scheme(request, _settings(request)) == "https",
        path=f"{COOKIE_PATH}/login",
    )
    return response


@router.get("/login")
async def login_form(
    request: Request,
    session: SessionDep,
    next_path: Annotated[str, Query(alias="next", max_length=2048)] = "/admin",
) -> Response:
    settings = _settings(request)
    signed_in = await service.resolve_session(
        session,
        token=request.cookies.get(SESSION_COOKIE),
        client_ip=client_ip(request, settings),
        settings=settings,
    )
    if signed_in is not None:
        return RedirectResponse(safe_next(next_path), status_code=303)
    return _login_page(request, next_path=safe_next(next_path))


@router.post("/login")
async def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=256, pattern=NO_NUL)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
    next_field: Annotated[str, Form(alias="next", max_length=2048)] = "/admin",
) -> Response:
    settings = _settings(request)
    next_path = safe_next(next_field)
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return _login_page(
            request,
            status=403,
            message="This sign-in form had expired or did not come from this site. "
            "Please try again.",
            next_path=next_path,
        )
    result = await service.login(
        session,
        username=username,
        password=password,
        client_ip=client_ip(request, settings),
        settings=settings,
    )
    if result.retry_after is not None:
        minutes = max(round(result.retry_after / 60), 1)
        return _login_page(
            request,
            status=429,
            message=f"Too many failed sign-ins. Try again in about {minutes} minute"
            f"{'s' if minutes != 1 else ''}.",
            next_path=next_path,
            username=username,
            headers={"Retry-After": str(result.retry_after)},
        )
    if result.token is None:
        return _login_page(
            request,
            status=401,
            message="Invalid username or password.",
            next_path=next_path,
            username=username,
        )
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        result.token,
        httponly=True,
        samesite="lax",
        secure=request_scheme(request, settings) == "https",
        path=COOKIE_PATH,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=f"{COOKIE_PATH}/login")
    return response


@router.post("/logout")
async def logout(request: Request, admin: CheckedAdmin, session: SessionDep) -> Response:
    await service.logout(session, admin=admin)
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request_scheme(request, _settings(request)) == "https",
    )
    return response


# -- overview --------------------------------------------------------------------------


def _charts(hours: list[service.HourBucket]) -> dict[str, Any]:
    orders = [
        Datum(
            label=bucket.start.strftime("%H:00"),
            value=float(bucket.count),
            hint=f"{bucket.start:%H:00}-{bucket.start:%H}:59 UTC: {bucket.count} "
            f"order{'s' if bucket.count != 1 else ''}",
        )
        for bucket in hours
    ]
    longest = max((b.mean_seconds or 0.0 for b in hours), default=0.0)
    divisor, unit = duration_scale(longest)
    durations = [
        Datum(
            label=bucket.start.strftime("%H:00"),
            value=bucket.mean_seconds,
            hint=(
                f"{bucket.start:%H:00} UTC: mean {_duration(bucket.mean_seconds)}, "
                f"longest {_duration(bucket.max_seconds)}"
            ),
        )
        for bucket in hours
    ]
    return {
        "orders_chart": bar_chart(
            orders,
            title="Orders accepted per hour, last 24 hours",
            empty_message="No orders in the last 24 hours",
        ),
        "duration_chart": line_chart(
            durations,
            title="Mean provisioning time per hour, last 24 hours",
            unit=f" {unit}",
            divisor=divisor,
            empty_message="No provisioning finished in the last 24 hours",
        ),
        "orders_last_24h": sum(b.count for b in hours),
    }


@router.get("")
async def overview(request: Request, admin: CurrentAdmin, session: SessionDep) -> Response:
    state = request.app.state
    data = await service.overview(
        session,
        settings=_settings(request),
        stock_cache=state.stock,
        readiness_checks=state.readiness_checks,
    )
    return _render(request, "overview.html", nav="overview", o=data, **_charts(data.hours))


# -- orders ----------------------------------------------------------------------------


_NOTICES = {
    "retry": "The operation was queued again; a worker picks it up shortly.",
    "cancel": "The operation was cancelled.",
    "fail": "The operation was marked failed.",
    "redeliver": "The callback was queued for delivery again.",
    "reprocess": "The webhook event was queued for processing again.",
}


@router.get("/orders")
async def orders(
    request: Request,
    admin: CurrentAdmin,
    session: SessionDep,
    status: Annotated[str, Query(max_length=32)] = "",
    customer: Annotated[str, Query(max_length=320, pattern=NO_NUL)] = "",
    billing_id: Annotated[str, Query(max_length=255, pattern=NO_NUL)] = "",
    server_id: Annotated[str, Query(max_length=20)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    statuses = [s.value for s in OrderStatus]
    server = server_id.strip()
    criteria = OrderFilter(
        status=OrderStatus(status) if status in statuses else None,
        customer=customer.strip() or None,
        external_id=billing_id.strip() or None,
        server_id=int(server) if server.isdigit() and len(server) < 19 else None,
    )
    problem = None
    if server and criteria.server_id is None:
        problem = "A server id is a number; that filter was ignored."
    result = await service.search_orders(session, criteria, page=page, per_page=PER_PAGE)
    query = {
        "status": status if criteria.status else "",
        "customer": customer.strip(),
        "billing_id": billing_id.strip(),
        "server_id": server if criteria.server_id is not None else "",
    }
    return _render(
        request,
        "orders.html",
        nav="orders",
        result=result,
        statuses=statuses,
        query=query,
        problem=problem,
    )


@router.get("/orders/{order_id}")
async def order(
    request: Request,
    order_id: IdPath,
    admin: CurrentAdmin,
    session: SessionDep,
    notice: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    detail = await service.order_detail(session, order_id)
    return _render(
        request,
        "order.html",
        nav="orders",
        d=detail,
        notice=_NOTICES.get(notice),
        reprocessable=[s.value for s in service.REPROCESSABLE_WEBHOOKS],
    )


# -- actions: a confirmation page (GET), then the form it holds (POST) -------------------


class OperationAction(enum.StrEnum):
    RETRY = "retry"
    CANCEL = "cancel"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class _ActionText:
    title: str
    button: str
    explanation: str
    danger: bool = False


_OPERATION_ACTIONS = {
    OperationAction.RETRY: _ActionText(
        "Retry operation",
        "Retry operation",
        "The operation runs again from its first step. Each step first checks what "
        "DCImanager already has, so work that was done is not done twice.",
    ),
    OperationAction.CANCEL: _ActionText(
        "Cancel operation",
        "Cancel operation",
        "The queued operation is dropped before any worker starts it. Nothing is "
        "changed in DCImanager.",
        danger=True,
    ),
    OperationAction.FAIL: _ActionText(
        "Mark operation failed",
        "Mark failed",
        "dcibridge stops working on this operation and records it as failed. DCImanager "
        "is left exactly as it is, for a person to inspect.",
        danger=True,
    ),
}


@router.get("/operations/{operation_id}/{action}")
async def confirm_operation_action(
    request: Request,
    operation_id: IdPath,
    action: OperationAction,
    admin: CurrentAdmin,
    session: SessionDep,
) -> Response:
    operation = await service.get_operation(session, operation_id)
    return _render(
        request,
        "confirm.html",
        nav="orders",
        text=_OPERATION_ACTIONS[action],
        subject=f"Operation #{operation.id} ({operation.kind.value}, {operation.status.value}) "
        f"of order #{operation.order_id}",
        action_url=f"/admin/operations/{operation.id}/{action.value}",
        back=f"/admin/orders/{operation.order_id}",
        needs_reason=action is OperationAction.FAIL,
        message=None,
    )


@router.post("/operations/{operation_id}/{action}")
async def operation_action(
    request: Request,
    operation_id: IdPath,
    action: OperationAction,
    admin: CheckedAdmin,
    session: SessionDep,
    background: BackgroundTasks,
    reason: Annotated[str, Form(max_length=2000, pattern=NO_NUL)] = "",
) -> Response:
    operation = await service.get_operation(session, operation_id)
    back = f"/admin/orders/{operation.order_id}"
    reason = " ".join(reason.split())
    try:
        if action is OperationAction.RETRY:
            order_id = await service.retry_operation(
                session, admin=admin, operation_id=operation_id
            )
        elif action is OperationAction.CANCEL:
            order_id = await service.cancel_operation(
                session, admin=admin, operation_id=operation_id
            )
        else:
            if not reason or len(reason) > service.MAX_REASON_LENGTH:
                return _render(
                    request,
                    "confirm.html",
                    status=422,
                    nav="orders",
                    text=_OPERATION_ACTIONS[action],
                    subject=f"Operation #{operation.id} ({operation.kind.value}, "
                    f"{operation.status.value}) of order #{operation.order_id}",
                    action_url=f"/admin/operations/{operation.id}/{action.value}",
                    back=back,
                    needs_reason=True,
                    message="Say why (1 to 500 characters): it is recorded with the "
                    "operation and in the audit log.",
                )
            order_id = await service.mark_operation_failed(
                session, admin=admin, operation_id=operation_id, reason=reason
            )
    except DCIBridgeError as refused:
        await session.rollback()
        return _error(request, 409, "Action refused", refused.detail or refused.title, back=back)
    _wake_worker(request, background)
    return RedirectResponse(f"/admin/orders/{order_id}?notice={action.value}", status_code=303)


@router.get("/callbacks/{event_id}/redeliver")
async def confirm_redeliver(
    request: Request, event_id: IdPath, admin: CurrentAdmin, session: SessionDep
) -> Response:
    event = await service.get_callback(session, event_id)
    back = f"/admin/orders/{event.order_id}" if event.order_id else "/admin"
    return _render(
        request,
        "confirm.html",
        nav="orders",
        text=_ActionText(
            "Redeliver callback",
            "Redeliver callback",
            "The callback is sent to billing again, now, with the same webhook-id, so a "
            "receiver that already has it can recognise the duplicate.",
        ),
        subject=f"Callback #{event.id} ({event.type}, {event.status.value}, "
        f"{event.attempts} attempt{'s' if event.attempts != 1 else ''})",
        action_url=f"/admin/callbacks/{event.id}/redeliver",
        back=back,
        needs_reason=False,
        message=None,
    )


@router.post("/callbacks/{event_id}/redeliver")
async def redeliver(
    request: Request, event_id: IdPath, admin: CheckedAdmin, session: SessionDep
) -> Response:
    order_id = await service.redeliver_callback(
        session, admin=admin, event_id=event_id, settings=_settings(request)
    )
    target = f"/admin/orders/{order_id}?notice=redeliver" if order_id else "/admin"
    return RedirectResponse(target, status_code=303)


# -- payment webhooks ------------------------------------------------------------------


@router.get("/webhooks")
async def webhook_events(
    request: Request,
    admin: CurrentAdmin,
    session: SessionDep,
    status: Annotated[str, Query(max_length=32)] = "",
    notice: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    statuses = [s.value for s in WebhookEventStatus]
    chosen = WebhookEventStatus(status) if status in statuses else None
    events = await service.webhook_events(session, status=chosen)
    return _render(
        request,
        "webhooks.html",
        nav="webhooks",
        events=events,
        statuses=statuses,
        chosen=chosen.value if chosen else "",
        notice=_NOTICES.get(notice),
        reprocessable=[s.value for s in service.REPROCESSABLE_WEBHOOKS],
    )


@router.get("/webhooks/{event_id}/reprocess")
async def confirm_reprocess(
    request: Request, event_id: IdPath, admin: CurrentAdmin, session: SessionDep
) -> Response:
    event = await service.get_webhook_event(session, event_id)
    return _render(
        request,
        "confirm.html",
        nav="webhooks",
        text=_ActionText(
            "Reprocess webhook event",
            "Reprocess event",
            "The event goes back to the inbox as if it had just arrived, and a worker "
            "decides again what it means for its order.",
        ),
        subject=f"Webhook event #{event.id} ({event.source}: {event.type}, {event.status.value})",
        action_url=f"/admin/webhooks/{event.id}/reprocess",
        back="/admin/webhooks",
        needs_reason=False,
        message=None,
    )


@router.post("/webhooks/{event_id}/reprocess")
async def reprocess(
    request: Request,
    event_id: IdPath,
    admin: CheckedAdmin,
    session: SessionDep,
    background: BackgroundTasks,
) -> Response:
    try:
        await service.reprocess_webhook(session, admin=admin, event_id=event_id)
    except NotFound:
        raise
    except DCIBridgeError as refused:
        await session.rollback()
        return _error(
            request,
            409,
            "Action refused",
            refused.detail or refused.title,
            back="/admin/webhooks",
        )
    _wake_worker(request, background)
    return RedirectResponse("/admin/webhooks?notice=reprocess", status_code=303)


@router.get("/{rest:path}")
async def not_found(request: Request, rest: str, admin: CurrentAdmin) -> Response:
    if not rest:
        return RedirectResponse("/admin", status_code=303)
    return _error(request, 404, "Not found", "There is no such page in the dashboard.")
