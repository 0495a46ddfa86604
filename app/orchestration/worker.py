"""The worker: claims runnable operations and runs them concurrently on asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Protocol

import structlog

from app.kit.models import utcnow
from app.orchestration.models import WorkerHeartbeat
from app.orchestration.repository import QueueRepository
from app.orchestration.runner import EngineDeps, OperationRunner

log = structlog.get_logger(__name__)

HOUSEKEEPING_SECONDS = 60.0


class Poller(Protocol):
    """Other durable work the worker drives besides operations (callbacks, inbox)."""

    name: str

    async def run_due(self) -> int:
        """Handle what is due now; how many items were handled (0: nothing to do)."""
        ...


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """Runs at most ``max_concurrent_operations`` operations at once.

    Leases are renewed with the heartbeat, so a worker that dies loses them within
    ``lease_seconds`` and any other worker picks the work up.
    """

    def __init__(
        self,
        deps: EngineDeps,
        *,
        pollers: Sequence[Poller] = (),
        housekeeping: Sequence[Callable[[], Awaitable[object]]] = (),
        worker_id: str | None = None,
    ) -> None:
        self.id = worker_id or new_worker_id()
        self._deps = deps
        self._pollers = pollers
        self._housekeeping = housekeeping
        self._settings = deps.settings
        self._runner = OperationRunner(deps, worker_id=self.id)
        self._running: dict[int, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._started_at = utcnow()

    def kick(self) -> None:
        """New work was committed: look for it now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        loop = type(asyncio.get_running_loop())
        log.info(
            "worker.started", worker_id=self.id, event_loop=f"{loop.__module__}.{loop.__name__}"
        )
        background = [
            asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
            *(
                asyncio.create_task(self._poll_loop(poller), name=f"worker-{poller.name}")
                for poller in self._pollers
            ),
            asyncio.create_task(self._housekeeping_loop(), name="worker-housekeeping"),
        ]
        try:
            while not self._stopping.is_set():
                await self._claim_and_start()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.worker_poll_seconds):
                        await self._wake.wait()
        finally:
            await self._drain()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._forget()
            log.info("worker.stopped", worker_id=self.id)

    def stop(self) -> None:
        """Stop claiming; ``run`` then finishes or releases what it holds and returns."""
        self._stopping.set()
        self._wake.set()

    async def _claim_and_start(self) -> None:
        free = self._settings.max_concurrent_operations - len(self._running)
        if free <= 0:
            return
        try:
            async with self._deps.sessionmaker() as session, session.begin():
                claimed = await QueueRepository(session).claim(
                    worker_id=self.id,
                    now=utcnow(),
                    lease=timedelta(seconds=self._settings.lease_seconds),
                    limit=free,
                )
        except Exception:  # the database may be restarting: keep the worker alive
            log.exception("worker.claim_failed")
            return
        for operation_id in claimed:
            if operation_id in self._running:
                # Still running here: our own lease ran out (a slow database held up
                # its renewal) and this claim took it again, which only renews it. A
                # second runner under the same worker id would pass every lease check
                # and run the same step twice at once (seen: two create_user calls,
                # the second refused, the order failed).
                continue
            task = asyncio.create_task(self._run_one(operation_id), name=f"op-{operation_id}")
            self._running[operation_id] = task

    async def _run_one(self, operation_id: int) -> None:
        try:
            await self._runner.run(operation_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # the lease expires and the operation is retried elsewhere
            log.exception("worker.operation_crashed", operation_id=operation_id)
        finally:
            was_full = len(self._running) >= self._settings.max_concurrent_operations
            self._running.pop(operation_id, None)
            if was_full:  # a slot opened while runnable work may be waiting for one
                self._wake.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                started, now = time.monotonic(), utcnow()
                renewed: list[int] = []
                async with self._deps.sessionmaker() as session, session.begin():
                    queue = QueueRepository(session)
                    await queue.beat(
                        WorkerHeartbeat(
                            id=self.id,
                            hostname=socket.gethostname(),
                            pid=os.getpid(),
                            started_at=self._started_at,
                            heartbeat_at=now,
                            running_operations=len(self._running),
                        )
                    )
                    if self._running:
                        renewed = await queue.renew_all(
                            operation_ids=list(self._running),
                            worker_id=self.id,
                            now=now,
                            lease=timedelta(seconds=self._settings.lease_seconds),
                        )
                # Only once committed: until then the renewal may not have happened.
                self._runner.lease_renewed(renewed, at=started)
                kept = set(renewed)
                self._runner.leases_lost([i for i in self._running if i not in kept])
            except Exception:
                log.exception("worker.heartbeat_failed")
            await asyncio.sleep(self._settings.worker_heartbeat_seconds)

    async def _poll_loop(self, poller: Poller) -> None:
        while True:
            try:
                handled = await poller.run_due()
            except Exception:
                log.exception("worker.poller_failed", poller=poller.name)
                handled = 0
            if not handled:
                await asyncio.sleep(self._settings.worker_poll_seconds)

    async def _housekeeping_loop(self) -> None:
        while True:
            for chore in self._housekeeping:
                try:
                    await chore()
                except Exception:
                    log.exception("worker.housekeeping_failed")
            await asyncio.sleep(HOUSEKEEPING_SECONDS)

    async def _drain(self) -> None:
        if not self._running:
            return
        ids_by_task = {task: operation_id for operation_id, task in self._running.items()}
        _, pending = await asyncio.wait(ids_by_task, timeout=self._settings.shutdown_grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            # Cancelled mid-step: the next holder reconciles with DCImanager first.
            await self._release([ids_by_task[task] for task in pending])

    async def _release(self, operation_ids: list[int]) -> None:
        with contextlib.suppress(Exception):
            async with self._deps.sessionmaker() as session, session.begin():
                await QueueRepository(session).release(
                    operation_ids=operation_ids, worker_id=self.id
                )

    async def _forget(self) -> None:
        with contextlib.suppress(Exception):
            async with self._deps.sessionmaker() as session, session.begin():
                await QueueRepository(session).forget_worker(self.id)
