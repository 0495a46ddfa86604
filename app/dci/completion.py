"""Has the asynchronous work behind a write finished? One seam, swappable strategies.

DCImanager answers a write with ``{"id", "task"}`` and goes on working. How to
follow a task is not documented: no public integration polls a DCImanager task
URL. ``ObjectStateStrategy`` therefore watches the objects the task changes:

- OS install, disk wipe, diagnostics: the server's ``operation`` (whose ``id``
  is the task id) must reach ``ok`` with the server's ``state`` out of
  ``operation``; ``fail``/``canceled``, or ``state`` ``error``, is a failure.
- IP allocation: the new address's ``status`` goes ``allocating`` -> ``active``
  (or ``failed``). IP removal: the address leaves the server's list.
- Power on/off: the server's ``power_status`` reaches the wanted value.

These are unconfirmed assumptions about a real instance. Anything else that
answers ``CompletionStrategy`` (e.g. one polling a task endpoint, once one is
known) can replace the strategy without touching its callers.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.dci.client import DCIClient
from app.dci.models import IPAddress, Server, TaskRef


class WorkKind(enum.StrEnum):
    OS_INSTALL = "os_install"
    CLEAR_HDD = "clear_hdd"
    DIAG = "diag"
    IP_ALLOCATION = "ip_allocation"
    IP_REMOVAL = "ip_removal"
    POWER_ON = "power_on"
    POWER_OFF = "power_off"


class CompletionStatus(enum.StrEnum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class Completion:
    status: CompletionStatus
    detail: str = ""
    # What DCImanager said about it (status_info, progress_info...), for the operator.
    info: Any = None

    @property
    def finished(self) -> bool:
        return self.status is not CompletionStatus.RUNNING


class CompletionStrategy(Protocol):
    async def check(
        self, *, kind: WorkKind, server_id: int, ref: TaskRef, server: Server | None = None
    ) -> Completion:
        """One look at the work behind ``ref``; never blocks waiting for it.

        ``server``: a read of the server the caller has just made, if any.
        """
        ...


_OPERATION_KINDS = frozenset({WorkKind.OS_INSTALL, WorkKind.CLEAR_HDD, WorkKind.DIAG})
_OPERATION_FAILED = frozenset({"fail", "canceled"})


class ObjectStateStrategy:
    """Watches the server or IP address the task changes (see module docstring)."""

    def __init__(self, client: DCIClient) -> None:
        self._client = client

    async def check(
        self, *, kind: WorkKind, server_id: int, ref: TaskRef, server: Server | None = None
    ) -> Completion:
        if kind in _OPERATION_KINDS:
            if server is None:
                server = await self._client.get_server(server_id=server_id)
            return _operation_completion(server, ref)
        if kind is WorkKind.IP_ALLOCATION:
            return _allocation_completion(await self._server_ip(server_id, ref.id))
        if kind is WorkKind.IP_REMOVAL:
            return _removal_completion(await self._server_ip(server_id, ref.id))
        server = await self._client.get_server(server_id=server_id)
        return _power_completion(server, "on" if kind is WorkKind.POWER_ON else "off")

    async def _server_ip(self, server_id: int, ip_id: int) -> IPAddress | None:
        page = await self._client.list_server_ips(server_id=server_id)
        return next((ip for ip in page.items if ip.id == ip_id), None)


def _operation_completion(server: Server, ref: TaskRef) -> Completion:
    operation = server.operation
    if operation is None or operation.id != ref.task:
        # Either not visible yet or replaced by a later operation: neither tells
        # us the outcome, so the caller's own deadline has to decide.
        seen = operation.id if operation is not None else None
        return Completion(CompletionStatus.RUNNING, f"task {ref.task} not on server (sees {seen})")
    if operation.status in _OPERATION_FAILED:
        return Completion(
            CompletionStatus.FAILED, f"operation {operation.status}", operation.status_info
        )
    if server.state == "error":
        return Completion(CompletionStatus.FAILED, "server in error state", server.state_info)
    if operation.status == "ok" and server.state != "operation":
        return Completion(CompletionStatus.OK, "operation ok", operation.status_info)
    return Completion(
        CompletionStatus.RUNNING, f"operation {operation.status}", operation.progress_info
    )


def _allocation_completion(ip: IPAddress | None) -> Completion:
    if ip is None:
        return Completion(CompletionStatus.RUNNING, "address not on server yet")
    if ip.status == "active":
        return Completion(CompletionStatus.OK, f"address {ip.name} active")
    if ip.status == "failed":
        return Completion(CompletionStatus.FAILED, "address allocation failed", ip.status_info)
    return Completion(CompletionStatus.RUNNING, f"address {ip.status}")


def _removal_completion(ip: IPAddress | None) -> Completion:
    if ip is None:
        return Completion(CompletionStatus.OK, "address removed")
    if ip.status == "failed":
        return Completion(CompletionStatus.FAILED, "address removal failed", ip.status_info)
    return Completion(CompletionStatus.RUNNING, f"address still {ip.status}")


def _power_completion(server: Server, wanted: str) -> Completion:
    if server.power_status == wanted:
        return Completion(CompletionStatus.OK, f"power {wanted}")
    return Completion(CompletionStatus.RUNNING, f"power {server.power_status}")


async def wait_for_completion(
    strategy: CompletionStrategy,
    *,
    kind: WorkKind,
    server_id: int,
    ref: TaskRef,
    timeout_seconds: float,
    poll_interval: float = 2.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Completion:
    """Poll until the work finishes; for scripts and tests, not for the durable engine.

    Raises ``TimeoutError`` when ``timeout_seconds`` pass with the work still running.
    """
    deadline = clock() + timeout_seconds
    while True:
        completion = await strategy.check(kind=kind, server_id=server_id, ref=ref)
        if completion.finished:
            return completion
        remaining = deadline - clock()
        if remaining <= 0:
            raise TimeoutError(f"{kind} on server {server_id} still running: {completion.detail}")
        await sleep(min(poll_interval, remaining))
