"""The simulated ``dci`` service (v3): servers, users, addresses, operations."""

from __future__ import annotations

from functools import partial
from typing import Any

import structlog
from fastapi import APIRouter, Depends, Request

from app.simulator.bodies import (
    ClearHddBody,
    DiagBody,
    IpAllocateBody,
    OsInstallBody,
    OwnerBody,
    UserCreateBody,
    parse_body,
)
from app.simulator.deps import ListQueryDep, SimulatorDep, require_session
from app.simulator.faults import OperationKind
from app.simulator.listing import select, select_objects
from app.simulator.runtime import Simulator
from app.simulator.state import NO_WIPE, PowerAction
from app.simulator.views import (
    CONFIGURATION_FIELDS,
    IP_FIELDS,
    SERVER_FIELDS,
    USER_FIELDS,
    ip_json,
    server_fields,
    server_json,
    users_json,
)

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/dci/v3", dependencies=[Depends(require_session)])

Json = dict[str, Any]


@router.get("/server/configuration")
async def free_servers(sim: SimulatorDep, query: ListQueryDep) -> Json:
    rows = [
        {"configuration": name, "free_server_count": count}
        for name, count in sim.dc.free_counts().items()
    ]
    return select(rows, fields=CONFIGURATION_FIELDS, query=query).as_json()


@router.get("/server")
async def list_servers(sim: SimulatorDep, query: ListQueryDep) -> Json:
    dc = sim.dc
    return select_objects(
        dc.servers(),
        fields=SERVER_FIELDS,
        query=query,
        values=partial(server_fields, dc),
        render=partial(server_json, dc),
        by_id=dc.servers_with_ids,
    ).as_json()


@router.get("/server/{server_id}")
async def get_server(server_id: int, sim: SimulatorDep) -> Json:
    return server_json(sim.dc, sim.dc.server(server_id))


@router.get("/user")
async def list_users(sim: SimulatorDep, query: ListQueryDep) -> Json:
    rows = users_json(sim.dc)
    return select(rows, fields=USER_FIELDS, query=query).as_json()


@router.post("/user")
async def create_user(request: Request, sim: SimulatorDep) -> Json:
    body = await parse_body(request, UserCreateBody)
    user = sim.dc.create_user(
        email=body.email,
        full_name=body.full_name,
        password=body.password.get_secret_value(),
        role=body.role,
    )
    log.info("simulator.user_created", user_id=user.id)
    return {"id": user.id}


@router.post("/server/{server_id}/owner")
async def set_owner(server_id: int, request: Request, sim: SimulatorDep) -> Json:
    body = await parse_body(request, OwnerBody)
    sim.dc.set_owner(server_id, body.owner)
    log.info("simulator.owner_set", server_id=server_id, user_id=body.owner)
    return {"id": server_id}


@router.delete("/server/{server_id}/owner")
async def release_owner(server_id: int, sim: SimulatorDep) -> Json:
    sim.dc.release_owner(server_id)
    log.info("simulator.owner_released", server_id=server_id)
    return {"id": server_id}


@router.post("/server/{server_id}/resume")
async def resume(server_id: int, sim: SimulatorDep) -> Json:
    return {"id": server_id, "task": sim.dc.set_ports(server_id, up=True)}


@router.post("/server/{server_id}/suspend")
async def suspend(server_id: int, sim: SimulatorDep) -> Json:
    return {"id": server_id, "task": sim.dc.set_ports(server_id, up=False)}


def _power(sim: Simulator, server_id: int, action: PowerAction) -> Json:
    task = sim.dc.power(server_id, action)
    log.info("simulator.power", server_id=server_id, action=action, task=task)
    return {"id": server_id, "task": task}


@router.post("/server/{server_id}/power_on")
async def power_on(server_id: int, sim: SimulatorDep) -> Json:
    return _power(sim, server_id, "power_on")


@router.post("/server/{server_id}/power_off")
async def power_off(server_id: int, sim: SimulatorDep) -> Json:
    return _power(sim, server_id, "power_off")


@router.post("/server/{server_id}/power_reset")
async def power_reset(server_id: int, sim: SimulatorDep) -> Json:
    return _power(sim, server_id, "power_reset")


@router.get("/ip")
async def list_ips(sim: SimulatorDep, query: ListQueryDep) -> Json:
    rows = [ip_json(ip) for ip in sim.dc.ips()]
    return select(rows, fields=IP_FIELDS, query=query).as_json()


@router.get("/server/{server_id}/ip")
async def list_server_ips(server_id: int, sim: SimulatorDep, query: ListQueryDep) -> Json:
    rows = [ip_json(ip) for ip in sim.dc.server_ips(server_id)]
    return select(rows, fields=IP_FIELDS, query=query).as_json()


@router.post("/server/{server_id}/ip")
async def allocate_ip(server_id: int, request: Request, sim: SimulatorDep) -> Json:
    body = await parse_body(request, IpAllocateBody)
    ip = sim.dc.allocate_ip(
        server_id,
        address=body.ip_name,
        network_id=body.ip_net,
        pool_id=body.ip_pool,
        domain=body.domain,
        main=body.set_as_main_ipv4,
    )
    log.info("simulator.ip_allocated", server_id=server_id, ip_id=ip.id, address=str(ip.address))
    return {"id": ip.id, "task": ip.task_id}


@router.post("/server/{server_id}/ip/{ip_id}")
async def remove_ip(server_id: int, ip_id: int, sim: SimulatorDep) -> Json:
    task = sim.dc.remove_ip(server_id, ip_id)
    log.info("simulator.ip_removed", server_id=server_id, ip_id=ip_id)
    return {"id": ip_id, "task": task}


@router.post("/server/{server_id}/operation_diag")
async def diagnose(server_id: int, request: Request, sim: SimulatorDep) -> Json:
    body = await parse_body(request, DiagBody)
    return _start(sim, server_id, "diag", clear_hdd=body.clear_hdd)


@router.post("/server/{server_id}/operation_clear_hdd")
async def clear_hdd(server_id: int, request: Request, sim: SimulatorDep) -> Json:
    body = await parse_body(request, ClearHddBody)
    return _start(sim, server_id, "clear_hdd", clear_hdd=body.clear_hdd)


@router.post("/server/{server_id}/operation_os")
async def install_os(server_id: int, request: Request, sim: SimulatorDep) -> Json:
    # The body's password is validated and dropped here: nothing keeps or logs it.
    body = await parse_body(request, OsInstallBody)
    return _start(sim, server_id, "os_install", os_template_id=body.os_template_id)


def _start(
    sim: Simulator,
    server_id: int,
    kind: OperationKind,
    *,
    clear_hdd: str = NO_WIPE,
    os_template_id: int | None = None,
) -> Json:
    operation = sim.dc.start_operation(
        server_id, kind, clear_hdd=clear_hdd, os_template_id=os_template_id
    )
    log.info(
        "simulator.operation_started",
        server_id=server_id,
        type=kind,
        task=operation.id,
        clear_hdd=clear_hdd,
        os_template_id=os_template_id,
    )
    return {"id": server_id, "task": operation.id}
