"""The simulated ``auth`` service (v4): log in, log out."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request

from app.simulator.bodies import LoginBody, parse_body
from app.simulator.deps import SessionDep, SimulatorDep

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/auth/v4")


@router.post("/public/token")
async def log_in(request: Request, sim: SimulatorDep) -> dict[str, Any]:
    body = await parse_body(request, LoginBody)
    user = sim.dc.authenticate(body.email, body.password.get_secret_value())
    session = sim.sessions.issue(user.id)
    log.info("simulator.login", user_id=user.id, session_id=session.id)
    return {"id": session.id, "token": session.token}


@router.delete("/token/{token}")
async def log_out(token: str, sim: SimulatorDep, _session: SessionDep) -> dict[str, Any]:
    sim.sessions.revoke(token)
    return {}
