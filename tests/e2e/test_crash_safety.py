"""A worker killed at any step of provision or terminate leaves nothing for the next
one to get wrong: no second owner, install, wipe or address, nothing leaked.

Each case runs a real `dcibridge worker` process that SIGKILLs itself at one
point (``DCIBRIDGE_DEBUG_CRASH_AT``): ``before_record`` is right after the
step's DCImanager call and before its outcome is written, the moment where a
naive engine would repeat the call; ``after_record`` is right after the
outcome is committed, usually with the lease still held. A second, normal
worker then takes the operation over (once the dead worker's lease expires)
and must finish it by reconciling with DCImanager, not by repeating itself.

Two things keep the 22 cases quick. Workers are forked from a process that has
imported dcibridge once (``ForkServer``): a cold start is mostly imports.
And once the crashed worker is verifiably dead, its lease is made to run out
at once rather than after ``lease_seconds``; that the lease also runs out by
itself, with no help, is ``test_a_dead_workers_lease_runs_out_on_its_own``.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.kit.models import utcnow
from app.orchestration.flows import PROVISION_STEPS
from app.orders.models import Operation
from tests.conftest import ApiKeyFactory
from tests.support.bridge import Bridge
from tests.support.processes import (
    ForkServer,
    ManagedProcess,
    ProcessGroup,
    Simulator,
    Workers,
    running_simulator,
    serving_bridge,
)

pytestmark = pytest.mark.slow

CONFIGURATION = "i9-9900K-64Gb-2x1024NVMe"
IPV4_COUNT = 2
TERMINATE_STEPS = ("power_off", "wipe_disks", "remove_ips", "release_owner")
MOMENTS = ("before_record", "after_record")
SERVERS_PER_CONFIGURATION = 4
# Generous: a case takes a few seconds; the deadline only bounds a hang.
SETTLE_TIMEOUT = 60.0

# DCImanager writes as the simulator counts them (by route template).
SET_OWNER = "POST /api/dci/v3/server/{server_id}/owner"
RELEASE_OWNER = "DELETE /api/dci/v3/server/{server_id}/owner"
CREATE_USER = "POST /api/dci/v3/user"
INSTALL_OS = "POST /api/dci/v3/server/{server_id}/operation_os"
CLEAR_HDD = "POST /api/dci/v3/server/{server_id}/operation_clear_hdd"
ALLOCATE_IP = "POST /api/dci/v3/server/{server_id}/ip"
REMOVE_IP = "POST /api/dci/v3/server/{server_id}/ip/{ip_id}"
POWER_ON = "POST /api/dci/v3/server/{server_id}/power_on"
POWER_OFF = "POST /api/dci/v3/server/{server_id}/power_off"


def _cases(steps: tuple[str, ...]) -> list[Any]:
    return [
        pytest.param(step, moment, id=f"{moment}:{step}") for step in steps for moment in MOMENTS
    ]


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """One simulator for the module, reset before every case (see ``bridge``)."""
    with running_simulator(
        tmp_path_factory.mktemp("crash-sim"),
        servers=SERVERS_PER_CONFIGURATION,
        op_seconds=0.2,
    ) as simulator:
        yield simulator


@pytest.fixture
async def bridge(
    settings: Settings, make_api_key: ApiKeyFactory, simulator: Simulator
) -> AsyncIterator[Bridge]:
    """The API in-process, billing's key, and the standalone simulator behind both.

    The test database is emptied for every test (``db_engine``), so the simulator
    is reset with it: a server owned in DCImanager by an order the database no
    longer knows would otherwise look like a leak.
    """
    await simulator.reset()
    key = await make_api_key(name="billing")
    async with serving_bridge(settings, simulator, api_key=key) as bridge:
        yield bridge


@pytest.fixture(scope="module")
def fork_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    with ForkServer(tmp_path_factory.mktemp("fork-server")) as server:
        yield server


@pytest.fixture
def workers(
    tmp_path: Path,
    settings: Settings,
    simulator: Simulator,
    fork_server: ForkServer,
    db_engine: AsyncEngine,
) -> Iterator[Workers]:
    # Depends on db_engine so that every worker is dead before it empties the tables.
    with ProcessGroup(tmp_path) as group:
        yield Workers(
            group,
            database_url=settings.database_url,
            simulator=simulator,
            fork_server=fork_server,
        )


@pytest.mark.parametrize(("step", "moment"), _cases(PROVISION_STEPS))
async def test_provision_survives_a_worker_killed_at(
    step: str,
    moment: str,
    bridge: Bridge,
    workers: Workers,
    simulator: Simulator,
    db_engine: AsyncEngine,
) -> None:
    crash_at = f"{moment}:{step}"
    free_before = (await simulator.state())["free_servers"][CONFIGURATION]
    crashing = workers.start(crash_at=crash_at)
    order = await bridge.create(f"svc-{step}-{moment}".replace("_", "-"), ipv4_count=IPV4_COUNT)
    email = order["customer"]["email"]

    await _expect_killed_at(crashing, crash_at)
    await _expire_leases_of(db_engine, crashing)
    recovering = workers.start()
    order = await _settled(bridge, order["id"])
    await _stop_gracefully(recovering)

    operation = order["operations"][0]
    assert order["status"] == "active", _explain(order, recovering)
    assert operation["status"] == "succeeded"
    assert [s["status"] for s in operation["steps"]] == ["succeeded"] * len(PROVISION_STEPS)

    state = await simulator.state()
    server = _server(state, order["server_id"])
    assert server["owner_email"] == email
    assert [s["id"] for s in state["servers"] if s["owner_email"] == email] == [server["id"]]
    assert [u["email"] for u in state["users"]].count(email) == 1
    assert server["os_install_count"] == 1
    assert server["os_template"] == {"id": 1, "name": "Ubuntu 22.04"}
    assert len(server["ips"]) == IPV4_COUNT
    assert sorted(server["ips"]) == order["ip_addresses"]
    assert server["power_status"] == "on"
    assert all(port["admin_status"] == "up" for port in server["ports"])
    # Every address DCImanager holds is this order's, and active: none leaked.
    assert {ip["server"] for ip in state["ips"]} == {server["id"]}
    assert all(ip["status"] == "active" for ip in state["ips"])
    assert state["free_servers"][CONFIGURATION] == free_before - 1

    # Counted by DCImanager itself: each write happened once, crash or not.
    calls = state["calls"]["by_endpoint"]
    assert calls.get(CREATE_USER) == 1
    assert calls.get(SET_OWNER) == 1
    assert calls.get(INSTALL_OS) == 1
    assert calls.get(ALLOCATE_IP) == IPV4_COUNT
    assert calls.get(POWER_ON, 0) <= 1  # the install powers the server on already


@pytest.mark.parametrize(("step", "moment"), _cases(TERMINATE_STEPS))
async def test_terminate_survives_a_worker_killed_at(
    step: str,
    moment: str,
    bridge: Bridge,
    workers: Workers,
    simulator: Simulator,
    db_engine: AsyncEngine,
) -> None:
    crash_at = f"{moment}:{step}"
    free_before = (await simulator.state())["free_servers"][CONFIGURATION]
    # No provision step shares a name with a terminate step, so this worker
    # provisions the order normally and dies only once terminating it.
    crashing = workers.start(crash_at=crash_at)
    order = await bridge.create(f"svc-{step}-{moment}".replace("_", "-"), ipv4_count=IPV4_COUNT)
    order = await _settled(bridge, order["id"])
    assert order["status"] == "active", _explain(order, crashing)
    server_id = order["server_id"]
    before = await simulator.state()
    assert len(_server(before, server_id)["ips"]) == IPV4_COUNT

    await bridge.request(order["id"], "terminate")
    await _expect_killed_at(crashing, crash_at)
    await _expire_leases_of(db_engine, crashing)
    recovering = workers.start()
    order = await _settled(bridge, order["id"])
    await _stop_gracefully(recovering)

    terminate = order["operations"][-1]
    assert terminate["kind"] == "terminate"
    assert order["status"] == "terminated", _explain(order, recovering)
    assert terminate["status"] == "succeeded"
    assert [s["status"] for s in terminate["steps"]] == ["succeeded"] * len(TERMINATE_STEPS)
    assert order["ip_addresses"] == []

    state = await simulator.state()
    server = _server(state, server_id)
    assert server["owner_email"] is None
    assert not any(s["owner_email"] == order["customer"]["email"] for s in state["servers"])
    assert server["ips"] == []
    assert state["ips"] == []
    assert server["wipe_count"] == 1
    assert server["os_install_count"] == 1
    assert server["power_status"] == "off"
    assert server["free"] is True
    assert state["free_servers"][CONFIGURATION] == free_before

    # Only the terminate's writes: the provision's were counted in ``before``.
    calls = _delta(state["calls"]["by_endpoint"], before["calls"]["by_endpoint"])
    assert calls.get(RELEASE_OWNER) == 1
    assert calls.get(CLEAR_HDD) == 1
    assert calls.get(REMOVE_IP) == IPV4_COUNT
    assert calls.get(POWER_OFF) == 1
    assert calls.get(SET_OWNER, 0) == calls.get(INSTALL_OS, 0) == calls.get(ALLOCATE_IP, 0) == 0


async def test_a_dead_workers_lease_runs_out_on_its_own(
    bridge: Bridge, workers: Workers, simulator: Simulator, db_engine: AsyncEngine
) -> None:
    crash_at = "before_record:install_os"
    crashing = workers.start(crash_at=crash_at)
    order = await bridge.create("svc-lease", ipv4_count=IPV4_COUNT)
    await _expect_killed_at(crashing, crash_at)
    operation_id = order["operations"][0]["id"]
    # The dead worker still holds the operation: only the lease's expiry frees it.
    async with db_engine.connect() as connection:
        holder = await connection.scalar(
            select(Operation.lease_owner).where(Operation.id == operation_id)
        )
    assert holder == _worker_id(crashing)

    recovering = workers.start()
    order = await _settled(bridge, order["id"])
    await _stop_gracefully(recovering)
    assert order["status"] == "active", _explain(order, recovering)
    completed = [
        e.get("step")
        for e in recovering.log_events()
        if e.get("event") == "provision.step.completed"
    ]
    assert completed == ["install_os", "ports_up", "power_on"]
    server = _server(await simulator.state(), order["server_id"])
    assert server["os_install_count"] == 1


async def _expect_killed_at(process: ManagedProcess, crash_at: str) -> None:
    code = await process.wait_exit(timeout=SETTLE_TIMEOUT)
    assert code == -signal.SIGKILL, f"worker ended with {code}, not SIGKILL:\n{process.tail()}"
    # It died where we asked, not of something else that happens to SIGKILL.
    crashes = [e for e in process.log_events() if e.get("event") == "worker.debug_crash"]
    moment, step = crash_at.split(":")
    assert [(e.get("moment"), e.get("step")) for e in crashes] == [(moment, step)]


async def _settled(bridge: Bridge, order_id: int) -> dict[str, Any]:
    """The order once all its operations have finished, read afresh.

    Fresh, because the read that saw the last operation finish may have read the
    order row a moment earlier: on PostgreSQL the order and its operations come
    from separate statements, each with its own snapshot (READ COMMITTED).
    """
    await bridge.settle(order_id, timeout=SETTLE_TIMEOUT)
    return await bridge.order(order_id)


def _worker_id(process: ManagedProcess) -> str:
    started = [e for e in process.log_events() if e.get("event") == "worker.started"]
    assert len(started) == 1, process.tail()
    return str(started[0]["worker_id"])


async def _expire_leases_of(db_engine: AsyncEngine, dead: ManagedProcess) -> None:
    """Do at once what ``lease_seconds`` of waiting would: free what ``dead`` held.

    Only ever for a process already seen dead, so it cannot take work from a live
    worker; what follows (the takeover, the reconciling) is the real thing.
    """
    assert dead.returncode is not None
    async with db_engine.begin() as connection:
        await connection.execute(
            update(Operation)
            .where(Operation.lease_owner == _worker_id(dead))
            .values(lease_expires_at=utcnow())
        )


def _server(state: dict[str, Any], server_id: int | None) -> dict[str, Any]:
    assert server_id is not None
    return next(server for server in state["servers"] if server["id"] == server_id)


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {key: count - before.get(key, 0) for key, count in after.items()}


def _explain(order: dict[str, Any], worker: ManagedProcess) -> str:
    return f"order: {order}\nworker log:\n{worker.tail()}"


async def _stop_gracefully(worker: ManagedProcess) -> None:
    # The crash may have come after the operation settled (its last step's record
    # settles it), so the operation can be final before this worker is even up: stop
    # it only once it is, so that it shuts down gracefully rather than dying of
    # SIGTERM during start-up.
    await worker.wait_for_event("worker.started")
    assert await worker.stop() == 0, worker.tail()
