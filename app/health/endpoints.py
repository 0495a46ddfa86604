"""Liveness and readiness, outside /api/v1 and outside the OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.health.checks import run_checks

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    results = await run_checks(
        state.readiness_checks, per_check_seconds=state.settings.readiness_timeout_seconds
    )
    ready = all(result.ok for result in results.values())
    body: dict[str, Any] = {
        "status": "ready" if ready else "not_ready",
        "dci_mode": "simulator" if state.settings.simulator_mode else "dcimanager",
        "checks": {
            name: {"status": "ok" if result.ok else "failing", **result.detail}
            for name, result in results.items()
        },
    }
    return JSONResponse(body, status_code=200 if ready else 503)
