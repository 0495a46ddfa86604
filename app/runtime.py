"""The long-lived parts one process needs, built once: database, DCImanager, secrets.

Both the HTTP app's lifespan and the stand-alone worker build them here, so the
two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Protocol

import httpx
import structlog
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.callbacks.delivery import CallbackDeliverer
from app.callbacks.service import purge_delivered
from app.config import Settings
from app.dci.client import DCIClient, create_dci_client
from app.dci.completion import ObjectStateStrategy
from app.idempotency.repository import purge_expired
from app.kit.crypto import SecretBox
from app.kit.db import create_engine, create_sessionmaker
from app.kit.http_transport import AiohttpTransport
from app.kit.models import utcnow
from app.orchestration.runner import EngineDeps
from app.orchestration.worker import Worker
from app.simulator.app import create_simulator_app
from app.simulator.inventory import Inventory
from app.stock.cache import StockCache
from app.webhooks.processor import WebhookProcessor
from app.webhooks.service import purge_settled

log = structlog.get_logger(__name__)

EMBEDDED_SIMULATOR_URL = "http://embedded-simulator"
# Rows a housekeeping purge deletes per transaction.
PURGE_BATCH_ROWS = 1_000


class Purge(Protocol):
    """Deletes up to ``limit`` rows due for deletion at ``now``; how many went."""

    def __call__(self, session: AsyncSession, *, now: datetime, limit: int) -> Awaitable[int]: ...


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    dci: DCIClient
    secrets: SecretBox
    stock: StockCache
    callback_http: httpx.AsyncClient

    def engine_deps(self) -> EngineDeps:
        return EngineDeps(
            sessionmaker=self.sessionmaker,
            dci=self.dci,
            completion=ObjectStateStrategy(self.dci),
            settings=self.settings,
            secrets=self.secrets,
        )

    def worker(self) -> Worker:
        deliverer = CallbackDeliverer(
            sessionmaker=self.sessionmaker,
            http=self.callback_http,
            secrets=self.secrets,
            settings=self.settings,
        )
        inbox = WebhookProcessor(
            sessionmaker=self.sessionmaker, settings=self.settings, secrets=self.secrets
        )
        return Worker(
            self.engine_deps(), pollers=[deliverer, inbox], housekeeping=self.housekeeping()
        )

    def housekeeping(self) -> list[Callable[[], Awaitable[None]]]:
        """The worker's periodic chores: deleting what has outlived its retention."""
        return [
            self._purge("idempotency.purged", purge_expired),
            self._purge("callbacks.purged", partial(purge_delivered, settings=self.settings)),
            self._purge("webhooks.purged", partial(purge_settled, settings=self.settings)),
        ]

    def _purge(self, event: str, purge: Purge) -> Callable[[], Awaitable[None]]:
        """A housekeeping chore that deletes what ``purge`` selects, a batch per
        transaction until a batch comes back short: a long backlog (the first run
        after an upgrade) never holds the database, SQLite's write lock above all,
        for long."""

        async def chore() -> None:
            total = 0
            while True:
                async with self.sessionmaker() as session, session.begin():
                    purged = await purge(session, now=utcnow(), limit=PURGE_BATCH_ROWS)
                total += purged
                if purged < PURGE_BATCH_ROWS:
                    break
            if total:
                log.info(event, rows=total)

        return chore


def create_embedded_simulator(settings: Settings) -> tuple[FastAPI, Inventory]:
    inventory = Inventory().with_overrides(
        servers_per_configuration=settings.simulator_servers,
        op_seconds=settings.simulator_op_seconds,
    )
    return create_simulator_app(inventory=inventory), inventory


def _dci_client(settings: Settings, simulator: tuple[FastAPI, Inventory] | None) -> DCIClient:
    if simulator is None:
        return create_dci_client(settings)
    app, inventory = simulator
    as_admin = settings.model_copy(
        update={
            "dci_email": inventory.admin.email,
            "dci_password": SecretStr(inventory.admin.password),
        }
    )
    # In-process: the simulator's dropped answers must reach the client as
    # transport errors, as they would over a network.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return create_dci_client(as_admin, transport=transport, base_url=EMBEDDED_SIMULATOR_URL)


@asynccontextmanager
async def build_runtime(
    settings: Settings, *, simulator: tuple[FastAPI, Inventory] | None = None
) -> AsyncIterator[Runtime]:
    engine = create_engine(settings)
    dci = _dci_client(settings, simulator)
    # Billing's endpoints are not ours to wait on forever, nor to follow elsewhere.
    callback_http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.callback_timeout_seconds),
        follow_redirects=False,
        transport=AiohttpTransport(
            limits=httpx.Limits(max_connections=settings.callback_max_concurrent)
        ),
    )
    try:
        yield Runtime(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            dci=dci,
            secrets=SecretBox(settings.secret_keys),
            stock=StockCache(dci, ttl_seconds=settings.stock_cache_seconds),
            callback_http=callback_http,
        )
    finally:
        await callback_http.aclose()
        await dci.aclose()
        await engine.dispose()
