"""A worker SIGKILLed holding a stored, unprocessed webhook event: the next worker acts on
it, once.

The API runs in-process with no worker of its own, so a Stripe event it accepts is
stored and nothing more. A real `dcibridge worker` process started with
``DCIBRIDGE_DEBUG_CRASH_AT=webhook:after_claim`` claims the event (its lease is
committed) and SIGKILLs itself before deciding anything: the kill lands exactly
between "stored" and "processed", with the event leased to a dead process. A
second, normal worker must wait for that lease to run out by itself (nothing here
shortens it) and then suspend the order, once.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.kit.db import create_sessionmaker
from app.kit.models import utcnow
from app.main import create_app
from app.webhooks.models import WebhookEvent, WebhookEventStatus
from app.webhooks.processor import CRASH_AFTER_CLAIM
from tests.conftest import ApiKeyFactory
from tests.fixtures.stripe import events
from tests.support.bridge import Bridge
from tests.support.live_server import live_server
from tests.support.processes import (
    FAST_WORKER_ENV,
    ManagedProcess,
    ProcessGroup,
    Simulator,
    Workers,
    bridge_settings,
    running_simulator,
)

pytestmark = pytest.mark.slow

STRIPE_SECRET = "whsec_e2e_crash_Xq8Lr2Vm5Nt7Kp1Zc4"
STRIPE_ENV = {
    "DCIBRIDGE_STRIPE_WEBHOOK_SECRETS": STRIPE_SECRET,
    "DCIBRIDGE_STRIPE_API_CLIENT": "billing",
}
LEASE_SECONDS = float(FAST_WORKER_ENV["DCIBRIDGE_LEASE_SECONDS"])


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    with running_simulator(tmp_path / "sim", servers=2, op_seconds=0.2) as simulator:
        yield simulator


@asynccontextmanager
async def api_without_worker(
    settings: Settings, simulator: Simulator, *, api_key: str
) -> AsyncIterator[tuple[Bridge, httpx.AsyncClient]]:
    """The API (no worker) with Stripe webhooks on: billing's client and Stripe's."""
    configured = bridge_settings(settings, simulator).model_copy(
        update={"stripe_webhook_secrets": SecretStr(STRIPE_SECRET), "stripe_api_client": "billing"}
    )
    with live_server(create_app(configured)) as base_url:
        async with (
            httpx.AsyncClient(
                base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
            ) as billing,
            httpx.AsyncClient(base_url=base_url, timeout=30) as stripe,
        ):
            yield Bridge(api=billing, simulator_url=simulator.url), stripe


async def _stored(engine: AsyncEngine, event_id: str) -> WebhookEvent:
    async with create_sessionmaker(engine)() as session:
        event = await session.scalar(select(WebhookEvent).where(WebhookEvent.event_id == event_id))
    assert event is not None
    return event


async def _until(what: str, check: Any, *, timeout: float, worker: ManagedProcess) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout}s:\n{worker.tail()}")
        await asyncio.sleep(0.1)


async def test_an_event_stored_but_not_processed_survives_a_sigkilled_worker(
    tmp_path: Path,
    settings: Settings,
    simulator: Simulator,
    make_api_key: ApiKeyFactory,
    db_engine: AsyncEngine,
) -> None:
    key = await make_api_key(name="billing")
    with ProcessGroup(tmp_path / "workers") as group:
        workers = Workers(group, database_url=settings.database_url, simulator=simulator)
        async with api_without_worker(settings, simulator, api_key=key) as (bridge, stripe):
            # An active order, provisioned by a worker that then stops cleanly.
            provisioner = workers.start(**STRIPE_ENV)
            created = await bridge.create("svc-crash", ipv4_count=0)
            order = await bridge.wait_order(created["id"], lambda o: o["status"] == "active")
            assert await provisioner.stop() == 0

            # Stored, answered, and (no worker running) not processed.
            payload = events.event("invoice.payment_failed", events.invoice("svc-crash"))
            raw = events.body(payload)
            response = await stripe.post(
                "/api/v1/webhooks/stripe",
                content=raw,
                headers={"Stripe-Signature": events.signature(raw, STRIPE_SECRET)},
            )
            assert response.status_code == 200, response.text
            stored = await _stored(db_engine, payload["id"])
            assert stored.status is WebhookEventStatus.RECEIVED
            assert stored.lease_expires_at is None

            # A worker claims it and is SIGKILLed before deciding anything.
            doomed = workers.start(crash_at=CRASH_AFTER_CLAIM, **STRIPE_ENV)
            assert await doomed.wait_exit(timeout=60) == -signal.SIGKILL, doomed.tail()
            assert "worker.debug_crash" in doomed.output()
            killed_at = utcnow()
            orphaned = await _stored(db_engine, payload["id"])
            assert orphaned.status is WebhookEventStatus.RECEIVED
            assert orphaned.attempts == 0
            assert orphaned.lease_expires_at is not None
            assert orphaned.lease_expires_at > killed_at  # still leased to the dead worker
            untouched = await bridge.order(order["id"])
            assert [op["kind"] for op in untouched["operations"]] == ["provision"]
            assert untouched["status"] == "active"

            # The next worker takes it over once the lease has run out, and acts once.
            survivor = workers.start(**STRIPE_ENV)

            async def processed() -> bool:
                event = await _stored(db_engine, payload["id"])
                return event.status is not WebhookEventStatus.RECEIVED

            await _until("processing", processed, timeout=LEASE_SECONDS + 30, worker=survivor)
            done = await _stored(db_engine, payload["id"])
            assert done.status is WebhookEventStatus.PROCESSED, done.reason
            assert done.processed_at is not None
            assert orphaned.lease_expires_at <= done.processed_at
            assert done.attempts == 1

            suspended = await bridge.wait_order(
                order["id"],
                lambda o: (
                    o["status"] == "suspended"
                    and all(op["status"] == "succeeded" for op in o["operations"])
                ),
            )
            assert [op["kind"] for op in suspended["operations"]] == ["provision", "suspend"]
            server = next(
                s for s in (await simulator.state())["servers"] if s["id"] == order["server_id"]
            )
            assert {port["admin_status"] for port in server["ports"]} == {"down"}
            assert await survivor.stop() == 0
