"""A worker SIGKILLed right after the change a callback reports: billing still hears of it.

The callback is written to the outbox in the transaction that settles the
operation, so the kill (``after_settle:provision``, the moment that transaction
committed) cannot lose it: the next worker delivers it, signed, with the
``webhook-id`` it was given when it was written.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from app.auth import service as api_keys
from app.callbacks.models import CallbackEvent, CallbackStatus
from app.config import Settings
from app.kit.crypto import SecretBox
from app.kit.db import create_sessionmaker
from tests.conftest import ApiKeyFactory
from tests.support.processes import (
    TEST_SECRET_KEY,
    ProcessGroup,
    Simulator,
    Workers,
    running_simulator,
    serving_bridge,
)
from tests.support.receiver import CallbackReceiver

pytestmark = pytest.mark.slow


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    with running_simulator(tmp_path / "sim", servers=2, op_seconds=0.2) as simulator:
        yield simulator


async def _events(engine: AsyncEngine) -> list[CallbackEvent]:
    async with create_sessionmaker(engine)() as session, session.begin():
        return list((await session.scalars(select(CallbackEvent))).all())


async def test_a_callback_survives_a_worker_killed_right_after_the_change(
    tmp_path: Path,
    settings: Settings,
    simulator: Simulator,
    make_api_key: ApiKeyFactory,
    db_engine: AsyncEngine,
) -> None:
    key = await make_api_key(name="billing")
    with CallbackReceiver().serving() as receiver, ProcessGroup(tmp_path / "w") as group:
        async with create_sessionmaker(db_engine)() as session, session.begin():
            config = await api_keys.configure_callbacks(
                session, name="billing", url=receiver.url, secrets_box=SecretBox([TEST_SECRET_KEY])
            )
        assert config.new_secret is not None
        workers = Workers(group, database_url=settings.database_url, simulator=simulator)
        async with serving_bridge(settings, simulator, api_key=key) as bridge:
            created = await bridge.create("svc-outbox", ipv4_count=0)

            doomed = workers.start(crash_at="after_settle:provision")
            assert await doomed.wait_exit(timeout=90) == -signal.SIGKILL, doomed.tail()
            assert "worker.debug_crash" in doomed.output()
            order = await bridge.order(created["id"])
            assert order["status"] == "active"
            [written] = await _events(db_engine)
            assert written.type == "order.active"
            # The kill came straight after the commit; at most a delivery already
            # in flight from the same process could have beaten it.
            assert len(receiver.received) <= 1

            survivor = workers.start()
            deadline = time.monotonic() + 60
            while (await _events(db_engine))[0].status is not CallbackStatus.DELIVERED:
                assert time.monotonic() < deadline, survivor.tail()
                await asyncio.sleep(0.1)
            assert await survivor.stop() == 0

    assert receiver.received, "the callback was lost"
    for delivery in receiver.received:
        assert delivery.headers["webhook-id"] == written.message_id
        payload = Webhook(config.new_secret).verify(delivery.body, delivery.headers)
        assert payload["type"] == "order.active"
        assert json.loads(delivery.body)["data"]["order"]["id"] == created["id"]
