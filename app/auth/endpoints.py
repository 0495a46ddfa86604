from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import Depends, Request

from app.auth.dependencies import require_scope
from app.auth.models import Caller
from app.auth.schemas import Ping, WhoAmI
from app.auth.scopes import Scope
from app.dci.exceptions import DCIError
from app.kit.api import api_router
from app.kit.errors import DCIManagerUnavailable
from app.kit.openapi import problem_responses

router = api_router(tag="auth")


@router.get(
    "/whoami",
    summary="Identify the calling API key",
    operation_id="whoami",
    response_model=WhoAmI,
    responses=problem_responses(401, 403),
)
async def whoami(client: Annotated[Caller, Depends(require_scope(Scope.ORDERS_READ))]) -> WhoAmI:
    return WhoAmI(name=client.name, scopes=list(client.scopes))


@router.get(
    "/ping",
    summary="Test the connection: valid key, and dcibridge can log in to DCImanager",
    description='For billing\'s "Test Connection" button. 503 when DCImanager cannot be reached.',
    operation_id="ping",
    response_model=Ping,
    responses=problem_responses(401, 403, 503),
)
async def ping(
    request: Request, client: Annotated[Caller, Depends(require_scope(Scope.ORDERS_READ))]
) -> Ping:
    state = request.app.state
    started = time.perf_counter()
    try:
        async with asyncio.timeout(state.settings.readiness_timeout_seconds * 5):
            await state.runtime.dci.free_servers_by_configuration()
    except (DCIError, TimeoutError) as exc:
        raise DCIManagerUnavailable(
            f"dcibridge cannot reach DCImanager ({type(exc).__name__})."
        ) from None
    return Ping(
        api_client=client.name,
        dci_mode="simulator" if state.settings.simulator_mode else "dcimanager",
        dcimanager_latency_ms=round((time.perf_counter() - started) * 1000, 2),
    )
