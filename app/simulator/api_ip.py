"""The simulated ``ip`` service (v3): networks and pools."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from app.simulator.deps import ListQueryDep, SimulatorDep, require_session
from app.simulator.listing import select
from app.simulator.views import NETWORK_FIELDS, POOL_FIELDS, network_json, pool_json

router = APIRouter(prefix="/api/ip/v3", dependencies=[Depends(require_session)])


@router.get("/ipnet")
async def list_networks(sim: SimulatorDep, query: ListQueryDep) -> dict[str, Any]:
    rows = [network_json(subnet) for subnet in sim.dc.networks()]
    return select(rows, fields=NETWORK_FIELDS, query=query).as_json()


@router.get("/ippool")
async def list_pools(sim: SimulatorDep, query: ListQueryDep) -> dict[str, Any]:
    rows = [pool_json(pool) for pool in sim.dc.ip_pools()]
    return select(rows, fields=POOL_FIELDS, query=query).as_json()
