from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.auth.dependencies import require_scope
from app.auth.models import Caller
from app.auth.scopes import Scope
from app.kit.api import api_router
from app.kit.db import SessionDep
from app.kit.openapi import problem_responses
from app.stock import service
from app.stock.schemas import StockOut

router = api_router(tag="stock")


@router.get(
    "/stock",
    summary="Servers billing may sell now, per configuration",
    description="DCImanager's free count minus servers already promised to orders that are "
    "still provisioning. DCImanager is asked at most every few seconds.",
    operation_id="getStock",
    response_model=StockOut,
    responses=problem_responses(401, 403, 503),
)
async def get_stock(
    request: Request,
    session: SessionDep,
    client: Annotated[Caller, Depends(require_scope(Scope.ORDERS_READ))],
) -> StockOut:
    return await service.current_stock(session, cache=request.app.state.stock)
