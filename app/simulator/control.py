"""``/_sim/*``: inspect and steer the simulator. Not part of the vendor API; no auth."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.simulator.bodies import invalid_body, parse_body, read_json
from app.simulator.deps import SimulatorDep
from app.simulator.errors import ErrorKind, SimError
from app.simulator.views import inspection_json, operation_json

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/_sim")


class ClockBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advance_seconds: float = Field(ge=0)


@router.get("/state")
async def state(sim: SimulatorDep) -> dict[str, Any]:
    return inspection_json(sim)


@router.post("/reset")
async def reset(sim: SimulatorDep) -> dict[str, Any]:
    sim.reset()
    log.info("simulator.reset")
    return {"reset": True}


@router.get("/faults")
async def get_faults(sim: SimulatorDep) -> dict[str, Any]:
    return sim.faults.config.model_dump()


@router.post("/faults")
async def update_faults(request: Request, sim: SimulatorDep) -> dict[str, Any]:
    changes = await read_json(request)
    if not isinstance(changes, dict):
        raise SimError(ErrorKind.INVALID_REQUEST, "Expected a JSON object of fault settings")
    try:
        config = sim.faults.update(changes)
    except ValidationError as exc:
        raise invalid_body(exc) from exc
    log.info("simulator.faults_changed", **config.model_dump())
    return config.model_dump()


@router.post("/clock")
async def skip_time(request: Request, sim: SimulatorDep) -> dict[str, Any]:
    body = await parse_body(request, ClockBody)
    return {"now": sim.skip_time(body.advance_seconds)}


@router.post("/server/{server_id}/cancel")
async def cancel_operation(server_id: int, sim: SimulatorDep) -> dict[str, Any] | None:
    operation = sim.dc.cancel_operation(server_id)
    return operation_json(operation, sim.dc.now)
