from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import BackgroundTasks, Depends, Query, Request, Response, status
from pydantic import SecretStr

from app.auth.dependencies import (
    BearerToken,
    authorize,
    require_scope_in_request,
    require_scope_in_write,
)
from app.auth.models import Caller
from app.auth.scopes import Scope
from app.kit.api import api_router
from app.kit.db import ReadSessionDep, SessionDep, read_connection
from app.kit.openapi import problem_responses
from app.kit.params import NO_NUL, IdPath, PageLimit
from app.kit.prefer import requested_wait
from app.orders import service
from app.orders.exceptions import OrderNotFound
from app.orders.models import OperationKind, OrderStatus
from app.orders.schemas import (
    OperationOut,
    OrderCreate,
    OrderOut,
    OrderPage,
    PowerRequest,
    ReinstallRequest,
    SuspendRequest,
    TerminateRequest,
    UnsuspendRequest,
)
from app.orders.waiting import wait_until_settled
from app.stock.cache import StockCache

router = api_router(tag="orders")
F = TypeVar("F", bound=Callable[..., Any])

# The key is checked in the request's own session: one connection per request.
Reader = Annotated[Caller, Depends(require_scope_in_request(Scope.ORDERS_READ))]
Writer = Annotated[Caller, Depends(require_scope_in_write(Scope.ORDERS_WRITE))]


async def _known_configurations(request: Request) -> frozenset[str] | None:
    stock: StockCache = request.app.state.stock
    return await stock.known_configurations()


# DCImanager's configurations, which a new order is checked against. As a
# dependency declared before the key check, it is resolved before the request's
# transaction begins, so nothing is held while DCImanager answers. An unknown
# key may thus cause a refresh, but the cache makes that one fetch per period
# however many requests ask.
KnownConfigurations = Annotated[frozenset[str] | None, Depends(_known_configurations)]


def _wake_worker(request: Request, background: BackgroundTasks) -> None:
    # After the response, i.e. after the request's transaction committed.
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        background.add_task(worker.kick)


async def _honour_wait(
    request: Request, response: Response, session: SessionDep, operation_id: int, wait: int
) -> None:
    """Apply ``Prefer: wait=N``: 200 once the operation settled, 202 if N ran out.

    The request's own transaction is committed first: the accepted work must be
    durable (and visible to the worker) before anyone waits for it.
    """
    await session.commit()
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.kick()
    settled = await wait_until_settled(
        request.app.state.sessionmaker, operation_id=operation_id, seconds=wait
    )
    response.headers["Preference-Applied"] = f"wait={wait}"
    response.status_code = status.HTTP_200_OK if settled else status.HTTP_202_ACCEPTED


@router.post(
    "/orders",
    summary="Provision a dedicated server for a billing order",
    operation_id="createOrder",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OrderOut,
    responses={
        200: {"model": OrderOut, "description": "An order with this external_id already exists"},
        **problem_responses(401, 403, 422),
    },
)
async def create_order(
    data: OrderCreate,
    known_configurations: KnownConfigurations,
    client: Writer,
    session: SessionDep,
    request: Request,
    response: Response,
    background: BackgroundTasks,
) -> OrderOut:
    state = request.app.state
    order, created = await service.create_order(
        session,
        client=client,
        data=data,
        known_configurations=known_configurations,
        settings=state.settings,
        secrets=state.secrets,
    )
    response.headers["Location"] = f"/api/v1/orders/{order.id}"
    if created:
        _wake_worker(request, background)
    else:
        response.status_code = status.HTTP_200_OK
    wait = requested_wait(request.headers.get("prefer"))
    if wait is None:
        return order
    operation_id = await service.provision_operation_id(session, order.id)
    await _honour_wait(request, response, session, operation_id, wait)
    return await service.get_order(session, client=client, order_id=order.id)


@router.get(
    "/orders",
    summary="List orders, newest first",
    operation_id="listOrders",
    response_model=OrderPage,
    responses=problem_responses(401, 403, 422),
)
async def list_orders(
    client: Reader,
    session: ReadSessionDep,
    external_id: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
    status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
    customer_external_id: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
    cursor: str | None = None,
    limit: PageLimit = 50,
) -> OrderPage:
    items, next_cursor = await service.list_orders(
        session,
        client=client,
        external_id=external_id,
        status=status_,
        customer_external_id=customer_external_id,
        cursor=cursor,
        limit=limit,
    )
    return OrderPage(items=items, next_cursor=next_cursor)


@router.get(
    "/orders/{order_id}",
    summary="An order with its operation history",
    operation_id="getOrder",
    response_model=OrderOut,
    responses=problem_responses(401, 403, 404),
)
async def get_order(order_id: IdPath, key: BearerToken, request: Request) -> OrderOut:
    # Billing polls this: the key is checked in the same statement that reads the
    # order, and the verdicts come in the usual order (401, 403, then 404). It
    # needs no session: a plain connection costs less (read_connection).
    async with read_connection(request) as connection:
        caller, order = await service.get_order_for_key(connection, raw_key=key, order_id=order_id)
    authorize(request, caller, Scope.ORDERS_READ)
    if order is None:
        raise OrderNotFound(order_id)
    return order


@router.get(
    "/operations/{operation_id}",
    summary="One operation with its steps",
    operation_id="getOperation",
    response_model=OperationOut,
    responses=problem_responses(401, 403, 404),
)
async def get_operation(
    operation_id: IdPath, client: Reader, session: ReadSessionDep
) -> OperationOut:
    return await service.get_operation(session, client=client, operation_id=operation_id)


class OperationRequest:
    """What every state-changing endpoint needs, resolved once per request."""

    def __init__(
        self,
        client: Writer,
        session: SessionDep,
        request: Request,
        response: Response,
        background: BackgroundTasks,
    ) -> None:
        self.client = client
        self.session = session
        self.request = request
        self.response = response
        self.background = background

    async def submit(
        self,
        order_id: int,
        kind: OperationKind,
        params: dict[str, Any],
        password: SecretStr | None = None,
    ) -> OperationOut:
        state = self.request.app.state
        operation = await service.request_operation(
            self.session,
            client=self.client,
            order_id=order_id,
            kind=kind,
            params=params,
            settings=state.settings,
            secrets=state.secrets,
            password=password.get_secret_value() if password else None,
        )
        _wake_worker(self.request, self.background)
        wait = requested_wait(self.request.headers.get("prefer"))
        if wait is None:
            return operation
        await _honour_wait(self.request, self.response, self.session, operation.id, wait)
        return await service.get_operation(
            self.session, client=self.client, operation_id=operation.id
        )


Submit = Annotated[OperationRequest, Depends()]


def _operation_route(path: str, summary: str, operation_id: str) -> Callable[[F], F]:
    return router.post(
        f"/orders/{{order_id}}/{path}",
        summary=summary,
        operation_id=operation_id,
        status_code=status.HTTP_202_ACCEPTED,
        response_model=OperationOut,
        responses=problem_responses(401, 403, 404, 409, 422),
    )


@_operation_route("suspend", "Suspend an order (switch ports down)", "suspendOrder")
async def suspend(order_id: IdPath, data: SuspendRequest, submit: Submit) -> OperationOut:
    return await submit.submit(order_id, OperationKind.SUSPEND, {"reason": data.reason.value})


@_operation_route("unsuspend", "Lift a suspension (switch ports up)", "unsuspendOrder")
async def unsuspend(order_id: IdPath, data: UnsuspendRequest, submit: Submit) -> OperationOut:
    return await submit.submit(order_id, OperationKind.UNSUSPEND, {"reason": data.reason.value})


@_operation_route(
    "terminate",
    "Terminate an order: power off, wipe, free the IPs, release the server",
    "terminateOrder",
)
async def terminate(
    order_id: IdPath, submit: Submit, data: TerminateRequest | None = None
) -> OperationOut:
    return await submit.submit(order_id, OperationKind.TERMINATE, {})


@_operation_route(
    "reinstall", "Reinstall the OS (new template, keys and password)", "reinstallOrder"
)
async def reinstall(order_id: IdPath, data: ReinstallRequest, submit: Submit) -> OperationOut:
    params = {"os_template_id": data.os_template_id, "ssh_keys": list(data.ssh_keys)}
    return await submit.submit(order_id, OperationKind.REINSTALL, params, data.password)


@_operation_route("power", "Power the server on, off, or reset it", "powerOrder")
async def power(order_id: IdPath, data: PowerRequest, submit: Submit) -> OperationOut:
    return await submit.submit(order_id, OperationKind.POWER, {"action": data.action})
