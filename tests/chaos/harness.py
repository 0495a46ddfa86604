"""The moving parts of a chaos run: billing's client, the callback receiver, the
workers that get killed, and a read-only view of the database that survives its
restarts."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.callbacks.models import CallbackEvent, CallbackStatus
from app.orders.models import Operation, OperationStatus, Order
from tests.support.live_server import live_server
from tests.support.processes import ManagedProcess, Workers

UNFINISHED = (OperationStatus.QUEUED, OperationStatus.RUNNING)
# A request billing sends is retried (same Idempotency-Key) until this runs out.
REQUEST_DEADLINE = 180.0
RETRY_PAUSE = 0.5
# On top of the crash tests' fast timings. Callbacks on the run's time scale: a
# worker killed mid-delivery holds the event for three timeouts, and a failed
# attempt is retried within seconds, not an hour. Idle polling at the default
# rate: three workers polling three queues 20 times a second starve a 2-CPU box.
# A step taken over from a dead worker is charged an attempt (so that a step that
# kills every worker running it is given up on). This run kills a worker every
# few seconds, far more often than any deployment, and a long step (an install
# held up by the outage) can be taken over more than the default 10 times;
# that would be the run's doing, not the step's, so the budget is raised.
WORKER_ENV = {
    "DCIBRIDGE_WORKER_POLL_SECONDS": "0.2",
    "DCIBRIDGE_STEP_MAX_ATTEMPTS": "30",
    "DCIBRIDGE_CALLBACK_TIMEOUT_SECONDS": "3",
    "DCIBRIDGE_CALLBACK_RETRY_BASE_SECONDS": "0.5",
    "DCIBRIDGE_CALLBACK_RETRY_MAX_SECONDS": "5",
}


class Gate:
    """Lets billing's requests through, except while the database is taken away.

    While PostgreSQL is down, a request whose transaction fails cannot release its
    Idempotency-Key either, and the key then stays "in use" until it is stale
    (five minutes, by design): billing's retry would wait that long. The outage
    therefore waits for the requests in flight and holds new ones back; the
    workers, which are what it is aimed at, get no such courtesy.
    """

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._in_flight = 0

    @asynccontextmanager
    async def passage(self) -> AsyncIterator[None]:
        await self._open.wait()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    @asynccontextmanager
    async def closed(self, *, timeout: float = 120.0) -> AsyncIterator[None]:
        self._open.clear()
        try:
            deadline = time.monotonic() + timeout
            while self._in_flight:
                assert time.monotonic() < deadline, "billing's requests did not finish"
                await asyncio.sleep(0.02)
            yield
        finally:
            self._open.set()


@dataclass
class BillingClient:
    """Billing's side of the API: every POST under an Idempotency-Key, retried with
    the same key on a transport error or a 5xx, as a careful billing module does."""

    api: httpx.AsyncClient
    gate: Gate
    retries: int = 0
    server_errors: list[str] = field(default_factory=list)

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        key = str(uuid.uuid4())
        deadline = time.monotonic() + REQUEST_DEADLINE
        while True:
            problem: str
            async with self.gate.passage():
                try:
                    response = await self.api.post(
                        path, json=body, headers={"Idempotency-Key": key}
                    )
                except httpx.TransportError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                else:
                    if response.status_code < 500 and not _key_in_use(response):
                        return response
                    problem = f"{response.status_code} {response.text[:300]}"
                    if response.status_code >= 500:
                        # The request id finds the traceback in the API's log.
                        request_id = response.headers.get("x-request-id")
                        self.server_errors.append(f"POST {path} ({request_id}): {problem}")
            self.retries += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"POST {path} never got an answer: {problem}")
            await asyncio.sleep(RETRY_PAUSE)

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = await self.api.get(path, params=params)
        if response.status_code >= 500:
            self.server_errors.append(f"GET {path}: {response.status_code}")
        response.raise_for_status()
        return response.json()

    async def all_orders(self) -> list[dict[str, Any]]:
        orders: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = await self.get("/api/v1/orders", params)
            orders.extend(page["items"])
            if not page["next_cursor"]:
                return orders
            params["cursor"] = page["next_cursor"]


def _key_in_use(response: httpx.Response) -> bool:
    return response.status_code == 409 and "idempotency_key_in_use" in response.text


# -- callbacks ----------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    body: bytes
    received_at: float
    verified: bool
    problem: str | None


@dataclass
class VerifyingReceiver:
    """Billing's callback endpoint: checks every delivery's signature as it arrives
    (Standard Webhooks rejects timestamps older than five minutes, so checking at
    the end of a long run would be checking the clock) and always answers 200."""

    secret: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    url: str = ""

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        verified, problem = False, None
        if self.secret is None:
            problem = "no secret to verify with yet"
        else:
            try:
                Webhook(self.secret).verify(body, headers)
                verified = True
            except Exception as exc:  # any failure to verify is the finding itself
                problem = f"{type(exc).__name__}: {exc}"
        self.deliveries.append(
            Delivery(headers.get("webhook-id", ""), body, time.time(), verified, problem)
        )
        return Response(status_code=200)

    @contextmanager
    def serving(self) -> Iterator[VerifyingReceiver]:
        app = Starlette(routes=[Route("/hooks", self._endpoint, methods=["POST"])])
        with live_server(app, lifespan="off") as base_url:
            self.url = f"{base_url}/hooks"
            yield self


# -- workers ------------------------------------------------------------------------


@dataclass
class WorkerFleet:
    """1 to ``most`` `dcibridge worker` processes, some of them SIGKILLed now and then."""

    workers: Workers
    rng: random.Random
    most: int = 3
    running: list[ManagedProcess] = field(default_factory=list)
    retired: list[ManagedProcess] = field(default_factory=list)
    kills: int = 0
    kill_rounds: int = 0
    started: int = 0
    unexpected_exits: list[str] = field(default_factory=list)

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            self.running.append(self.workers.start(**WORKER_ENV))
            self.started += 1

    def check(self) -> None:
        """Note any worker that died without being killed: that is a crash."""
        for process in list(self.running):
            code = process.returncode
            if code is not None:
                self.running.remove(process)
                self.retired.append(process)
                self.unexpected_exits.append(
                    f"{process.name} exited by itself with {code}:\n{process.tail(30)}"
                )

    def kill_round(self) -> int:
        """SIGKILL 1 to 3 running workers, then start enough for 1 to 3 again."""
        self.check()
        if self.running:
            victims = self.rng.sample(self.running, self.rng.randint(1, len(self.running)))
            for victim in victims:
                victim.kill()
                self.running.remove(victim)
                self.retired.append(victim)
                self.kills += 1
        self.kill_rounds += 1
        wanted = self.rng.randint(1, self.most)
        self.start(max(0, wanted - len(self.running)))
        return len(self.running)

    async def ensure(self, count: int) -> None:
        self.check()
        self.start(max(0, count - len(self.running)))

    async def all_started(self, *, timeout: float = 60.0) -> None:
        """Every running worker is past start-up (its schema check needs the database)."""
        deadline = time.monotonic() + timeout
        for process in self.running:
            while '"worker.started"' not in process.output():
                self.check()
                if process.returncode is not None:
                    break
                assert time.monotonic() < deadline, f"{process.name} not started:\n{process.tail()}"
                await asyncio.sleep(0.05)

    async def stop_all(self) -> list[str]:
        """SIGTERM every worker; a graceful stop must end with 0."""
        # A worker started by the last round may still be importing; SIGTERM before
        # it installs its handlers ends it by the signal, not by a graceful stop.
        await self.all_started()
        problems = []
        for process in self.running:
            code = await process.stop(timeout=60)
            if code != 0:
                problems.append(f"{process.name} stopped with {code}:\n{process.tail(30)}")
        self.retired.extend(self.running)
        self.running.clear()
        return problems

    def log_event_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for process in self.retired + self.running:
            for event in process.log_events():
                name = event.get("event")
                if isinstance(name, str):
                    counts[name] += 1
        return counts


# -- the database, read directly ----------------------------------------------------


class DatabaseView:
    """Reads for deciding when to move on; a fresh connection each time (no pool to
    go stale across a restart), and any error while PostgreSQL is away is "not yet"."""

    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_async_engine(url, poolclass=NullPool)

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def order_statuses(self) -> dict[int, str] | None:
        with contextlib.suppress(Exception):
            async with self.engine.connect() as connection:
                rows = await connection.execute(select(Order.id, Order.status))
                return {int(order_id): str(status) for order_id, status in rows.all()}
        return None

    async def unfinished(self) -> tuple[int, int] | None:
        """(unfinished operations, callbacks not yet delivered or given up)."""
        with contextlib.suppress(Exception):
            async with self.engine.connect() as connection:
                operations = await connection.scalar(
                    select(func.count())
                    .select_from(Operation)
                    .where(Operation.status.in_(UNFINISHED))
                )
                callbacks = await connection.scalar(
                    select(func.count())
                    .select_from(CallbackEvent)
                    .where(CallbackEvent.status == CallbackStatus.PENDING)
                )
                return int(operations or 0), int(callbacks or 0)
        return None

    async def callback_events(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(CallbackEvent).order_by(CallbackEvent.id))
            return [
                {
                    "id": row.id,
                    "message_id": row.message_id,
                    "order_id": row.order_id,
                    "type": row.type,
                    "payload": row.payload,
                    "status": str(row.status),
                    "attempts": row.attempts,
                    "last_error": row.last_error,
                }
                for row in rows.all()
            ]
