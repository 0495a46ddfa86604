"""Signed callbacks to billing: outbox, Standard Webhooks signatures, retries, redelivery."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from app.auth import service as api_keys
from app.config import Settings
from app.kit.crypto import SecretBox
from app.kit.db import create_sessionmaker
from tests.support.bridge import Bridge
from tests.support.receiver import CallbackReceiver


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    return engine_settings.model_copy(
        update={
            "callback_timeout_seconds": 0.5,
            "callback_retry_base_seconds": 0.05,
            "callback_retry_max_seconds": 0.2,
        }
    )


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver().serving() as serving:
        yield serving


@pytest.fixture
async def signing_secret(
    bridge: Bridge, receiver: CallbackReceiver, db_engine: AsyncEngine, settings: Settings
) -> str:
    async with create_sessionmaker(db_engine)() as session, session.begin():
        config = await api_keys.configure_callbacks(
            session, name="billing", url=receiver.url, secrets_box=SecretBox(settings.secret_keys)
        )
    assert config.new_secret is not None
    assert config.new_secret.startswith("whsec_")
    return config.new_secret


async def test_order_events_arrive_signed_with_the_order_details(
    bridge: Bridge, receiver: CallbackReceiver, signing_secret: str
) -> None:
    order = await bridge.create("svc-cb", password="Never-In-A-Callback-1")
    order = await bridge.wait_order(order["id"], lambda o: o["status"] == "active")
    [delivery] = await receiver.wait_for(1)

    payload = Webhook(signing_secret).verify(delivery.body, delivery.headers)
    assert payload["type"] == "order.active"
    data = payload["data"]["order"]
    assert data["id"] == order["id"]
    assert data["external_id"] == "svc-cb"
    assert data["server_id"] == order["server_id"]
    assert data["ip_addresses"] == order["ip_addresses"]
    assert data["hostname"] == "svc-cb.example.com"
    assert "Never-In-A-Callback-1" not in delivery.body.decode()

    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 43).verify(delivery.body, delivery.headers)

    await bridge.request(order["id"], "suspend", reason="non_payment")
    await bridge.request(order["id"], "unsuspend", reason="non_payment")
    await bridge.request(order["id"], "terminate")
    deliveries = await receiver.wait_for(4)
    types = [json.loads(d.body)["type"] for d in deliveries]
    assert types == ["order.active", "order.suspended", "order.unsuspended", "order.terminated"]


async def test_failures_are_retried_with_the_same_webhook_id(
    bridge: Bridge, receiver: CallbackReceiver, signing_secret: str
) -> None:
    receiver.script = ["500", "hang", "503"]
    order = await bridge.create("svc-retry", ipv4_count=0)
    deliveries = await receiver.wait_for(4)
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    for delivery in deliveries:
        Webhook(signing_secret).verify(delivery.body, delivery.headers)

    # The receiver has the fourth request before the deliverer has recorded its answer.
    event = await _settled_event(bridge, order["id"])
    assert event["status"] == "delivered"
    assert event["attempts"] == 4
    codes = [attempt["status_code"] for attempt in event["attempt_log"]]
    assert codes == [500, None, 503, 200]
    assert "Timeout" in event["attempt_log"][1]["error"]

    redelivered = await bridge.api.post(f"/api/v1/callbacks/{event['id']}/redeliver")
    assert redelivered.status_code == 202
    deliveries = await receiver.wait_for(5)
    assert deliveries[-1].headers["webhook-id"] == deliveries[0].headers["webhook-id"]


async def test_failed_provision_and_failed_operations_are_reported(
    bridge: Bridge, receiver: CallbackReceiver, signing_secret: str
) -> None:
    order = await bridge.create("svc-nostock", configuration="EPYC-7443P-128Gb-2x1920NVMe")
    await bridge.sim_faults(fail_rate={"os_install": 1.0})
    await bridge.wait_order(order["id"], lambda o: o["status"] == "failed")
    [delivery] = await receiver.wait_for(1)
    payload = Webhook(signing_secret).verify(delivery.body, delivery.headers)
    assert payload["type"] == "order.failed"
    assert payload["data"]["operation"]["error_code"] == "os_install_failed"


async def test_an_order_can_send_its_events_elsewhere(
    bridge: Bridge, receiver: CallbackReceiver, signing_secret: str
) -> None:
    with CallbackReceiver().serving() as own:
        order = await bridge.create("svc-own-url", ipv4_count=0, callback_url=own.url)
        await own.wait_for(1)
        assert json.loads(own.received[0].body)["data"]["order"]["id"] == order["id"]
    assert receiver.received == []


async def _settled_event(bridge: Bridge, order_id: int, timeout: float = 10.0) -> dict[str, Any]:
    """The order's one callback event once its last delivery's outcome is recorded."""
    deadline = time.monotonic() + timeout
    while True:
        listed = await bridge.api.get("/api/v1/callbacks", params={"order_id": order_id})
        [event] = listed.json()["items"]
        if event["status"] != "pending" or time.monotonic() > deadline:
            return dict(event)
        await asyncio.sleep(0.05)
