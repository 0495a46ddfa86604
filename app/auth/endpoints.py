from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.auth.dependencies import require_scope
from app.auth.models import ApiClient
from app.auth.schemas import WhoAmI
from app.auth.scopes import Scope
from app.kit.openapi import problem_responses

router = APIRouter(tags=["auth"])


@router.get(
    "/whoami",
    summary="Identify the calling API key",
    operation_id="whoami",
    response_model=WhoAmI,
    responses=problem_responses(401, 403),
)
async def whoami(client: Annotated[ApiClient, Depends(require_scope(Scope.ORDERS_READ))]) -> WhoAmI:
    return WhoAmI(name=client.name, scopes=list(client.scopes))
