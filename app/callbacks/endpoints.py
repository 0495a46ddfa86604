from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, status

from app.auth.dependencies import require_scope
from app.auth.models import Caller
from app.auth.scopes import Scope
from app.callbacks import service
from app.callbacks.models import CallbackStatus
from app.callbacks.schemas import CallbackOut, CallbackPage
from app.kit.api import api_router
from app.kit.db import SessionDep
from app.kit.openapi import problem_responses
from app.kit.params import IdPath, IdQuery, PageLimit

router = api_router(tag="callbacks")

Reader = Annotated[Caller, Depends(require_scope(Scope.ORDERS_READ))]
Writer = Annotated[Caller, Depends(require_scope(Scope.ORDERS_WRITE))]


@router.get(
    "/callbacks",
    summary="Callbacks sent (or being sent) to billing, newest first",
    operation_id="listCallbacks",
    response_model=CallbackPage,
    responses=problem_responses(401, 403, 422),
)
async def list_callbacks(
    client: Reader,
    session: SessionDep,
    order_id: IdQuery = None,
    status_: Annotated[CallbackStatus | None, Query(alias="status")] = None,
    cursor: str | None = None,
    limit: PageLimit = 50,
) -> CallbackPage:
    items, next_cursor = await service.list_callbacks(
        session, client=client, order_id=order_id, status=status_, cursor=cursor, limit=limit
    )
    return CallbackPage(items=items, next_cursor=next_cursor)


@router.get(
    "/callbacks/{callback_id}",
    summary="One callback with every delivery attempt",
    operation_id="getCallback",
    response_model=CallbackOut,
    responses=problem_responses(401, 403, 404),
)
async def get_callback(callback_id: IdPath, client: Reader, session: SessionDep) -> CallbackOut:
    return await service.get_callback(session, client=client, event_id=callback_id)


@router.post(
    "/callbacks/{callback_id}/redeliver",
    summary="Deliver a callback again, now, with the same webhook-id",
    operation_id="redeliverCallback",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CallbackOut,
    responses=problem_responses(401, 403, 404),
)
async def redeliver_callback(
    callback_id: IdPath,
    client: Writer,
    session: SessionDep,
    request: Request,
) -> CallbackOut:
    return await service.redeliver(
        session, client=client, event_id=callback_id, settings=request.app.state.settings
    )
