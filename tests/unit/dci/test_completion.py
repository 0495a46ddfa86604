from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.dci.completion import (
    CompletionStatus,
    ObjectStateStrategy,
    WorkKind,
    wait_for_completion,
)
from app.dci.models import TaskRef
from tests.unit.dci.fakes import FakeClock, FakeDCI, make_client

SERVER_PATH = "/api/dci/v3/server/7"
IPS_PATH = "/api/dci/v3/server/7/ip"
OS_TASK = TaskRef(id=7, task=40)


def server(state: str = "ok", operation: dict[str, Any] | None = None, **extra: Any) -> Any:
    return httpx.Response(200, json={"id": 7, "state": state, "operation": operation, **extra})


def ips(*entries: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"list": list(entries), "size": len(entries)})


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (server("operation", {"id": 40, "status": "running"}), CompletionStatus.RUNNING),
        (server("operation", {"id": 40, "status": "ok"}), CompletionStatus.RUNNING),
        (server("ok", {"id": 40, "status": "ok"}), CompletionStatus.OK),
        (server("ok", {"id": 40, "status": "fail"}), CompletionStatus.FAILED),
        (server("ok", {"id": 40, "status": "canceled"}), CompletionStatus.FAILED),
        (server("error", {"id": 40, "status": "running"}), CompletionStatus.FAILED),
        (server("ok", None), CompletionStatus.RUNNING),
        (server("ok", {"id": 39, "status": "ok"}), CompletionStatus.RUNNING),
    ],
    ids=[
        "running",
        "ok-but-server-still-busy",
        "ok",
        "fail",
        "canceled",
        "server-error",
        "not-visible-yet",
        "other-operation",
    ],
)
async def test_operation_completion(answer: httpx.Response, status: CompletionStatus) -> None:
    fake = FakeDCI()
    fake.routes[f"GET {SERVER_PATH}"] = answer
    async with make_client(fake) as client:
        completion = await ObjectStateStrategy(client).check(
            kind=WorkKind.OS_INSTALL, server_id=7, ref=OS_TASK
        )
    assert completion.status is status
    assert completion.finished is (status is not CompletionStatus.RUNNING)


async def test_failed_operation_carries_dcimanager_information() -> None:
    fake = FakeDCI()
    fake.routes[f"GET {SERVER_PATH}"] = server(
        "ok", {"id": 40, "status": "fail", "status_info": {"msg": "disk 2 missing"}}
    )
    async with make_client(fake) as client:
        completion = await ObjectStateStrategy(client).check(
            kind=WorkKind.CLEAR_HDD, server_id=7, ref=OS_TASK
        )
    assert completion.status is CompletionStatus.FAILED
    assert completion.info == {"msg": "disk 2 missing"}


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (ips({"id": 11, "status": "allocating"}), CompletionStatus.RUNNING),
        (ips({"id": 11, "status": "active", "name": "203.0.113.9"}), CompletionStatus.OK),
        (ips({"id": 11, "status": "failed"}), CompletionStatus.FAILED),
        (ips({"id": 12, "status": "active"}), CompletionStatus.RUNNING),
    ],
    ids=["allocating", "active", "failed", "not-listed-yet"],
)
async def test_ip_allocation_completion(answer: httpx.Response, status: CompletionStatus) -> None:
    fake = FakeDCI()
    fake.routes[f"GET {IPS_PATH}"] = answer
    async with make_client(fake) as client:
        completion = await ObjectStateStrategy(client).check(
            kind=WorkKind.IP_ALLOCATION, server_id=7, ref=TaskRef(id=11, task=42)
        )
    assert completion.status is status


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (ips({"id": 11, "status": "active"}), CompletionStatus.RUNNING),
        (ips({"id": 12, "status": "active"}), CompletionStatus.OK),
        (ips({"id": 11, "status": "failed"}), CompletionStatus.FAILED),
    ],
    ids=["still-there", "gone", "failed"],
)
async def test_ip_removal_completion(answer: httpx.Response, status: CompletionStatus) -> None:
    fake = FakeDCI()
    fake.routes[f"GET {IPS_PATH}"] = answer
    async with make_client(fake) as client:
        completion = await ObjectStateStrategy(client).check(
            kind=WorkKind.IP_REMOVAL, server_id=7, ref=TaskRef(id=11, task=43)
        )
    assert completion.status is status


@pytest.mark.parametrize(
    ("kind", "power", "status"),
    [
        (WorkKind.POWER_ON, "on", CompletionStatus.OK),
        (WorkKind.POWER_ON, "off", CompletionStatus.RUNNING),
        (WorkKind.POWER_OFF, "off", CompletionStatus.OK),
        (WorkKind.POWER_OFF, "on", CompletionStatus.RUNNING),
    ],
)
async def test_power_completion(kind: WorkKind, power: str, status: CompletionStatus) -> None:
    fake = FakeDCI()
    fake.routes[f"GET {SERVER_PATH}"] = server(power_status=power)
    async with make_client(fake) as client:
        completion = await ObjectStateStrategy(client).check(
            kind=kind, server_id=7, ref=TaskRef(id=7, task=44)
        )
    assert completion.status is status


async def test_wait_polls_until_the_work_finishes() -> None:
    fake = FakeDCI()
    clock = FakeClock()
    fake.routes[f"GET {SERVER_PATH}"] = [
        server("operation", {"id": 40, "status": "running"}),
        server("operation", {"id": 40, "status": "running"}),
        server("ok", {"id": 40, "status": "ok"}),
    ]
    async with make_client(fake) as client:
        completion = await wait_for_completion(
            ObjectStateStrategy(client),
            kind=WorkKind.OS_INSTALL,
            server_id=7,
            ref=OS_TASK,
            timeout_seconds=60,
            poll_interval=5,
            sleep=clock.sleep,
            clock=clock,
        )
    assert completion.status is CompletionStatus.OK
    assert clock.sleeps == [5, 5]


async def test_wait_gives_up_at_the_timeout() -> None:
    fake = FakeDCI()
    clock = FakeClock()
    fake.routes[f"GET {SERVER_PATH}"] = server("operation", {"id": 40, "status": "running"})
    async with make_client(fake) as client:
        with pytest.raises(TimeoutError, match="still running"):
            await wait_for_completion(
                ObjectStateStrategy(client),
                kind=WorkKind.DIAG,
                server_id=7,
                ref=OS_TASK,
                timeout_seconds=12,
                poll_interval=5,
                sleep=clock.sleep,
                clock=clock,
            )
    assert clock.sleeps == [5, 5, 2]
