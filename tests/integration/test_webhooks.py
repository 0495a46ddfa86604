"""Payment webhooks end to end over real HTTP: dcibridge, its worker and the simulator.

Stripe events are built from Stripe's full example objects (tests/fixtures/stripe)
and signed by Stripe's own library; generic events are signed by the Standard
Webhooks library. What happens to the "hardware" is read from the simulator.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from app.auth.repository import ApiClientRepository
from app.auth.scopes import Scope
from app.config import Settings
from app.kit.crypto import SecretBox
from app.kit.db import create_sessionmaker
from app.kit.errors import problem_type
from app.main import create_app
from app.orders.models import Operation, OperationKind
from app.webhooks.config import GenericWebhookSource
from app.webhooks.models import WebhookEvent, WebhookEventStatus
from app.webhooks.processor import WebhookProcessor
from tests.conftest import ApiKeyFactory
from tests.fixtures.stripe import events
from tests.support import rows
from tests.support.bridge import Bridge
from tests.support.live_server import live_server
from tests.support.logs import captured_log

STRIPE_SECRET = "whsec_stripe_current_5Qk3vN8rT1xZ7bW2"
STRIPE_OLD_SECRET = "whsec_stripe_previous_Hj4mP9sL2cV6nR0"
GENERIC_SECRET = "whsec_" + base64.b64encode(b"generic-source-secret-32-bytes!!").decode()
STRIPE_PATH = "/api/v1/webhooks/stripe"
GENERIC_PATH = "/api/v1/webhooks/generic/acme-pay"
DECIDED = {"processed", "ignored", "unmatched", "failed"}


def _webhook_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "stripe_webhook_secrets": SecretStr(f"{STRIPE_SECRET},{STRIPE_OLD_SECRET}"),
            "stripe_api_client": "billing",
            "generic_webhook_sources": {
                "acme-pay": GenericWebhookSource(
                    api_client="billing", secrets=[SecretStr(GENERIC_SECRET)]
                )
            },
            "webhook_max_body_bytes": 64 * 1024,
            "webhook_retry_base_seconds": 0.05,
            "webhook_retry_max_seconds": 0.1,
            "webhook_max_attempts": 3,
        }
    )


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    return _webhook_settings(engine_settings)


@pytest.fixture
async def sender(bridge: Bridge) -> AsyncIterator[httpx.AsyncClient]:
    """Stripe (or another sender): the same dcibridge, and no API key."""
    async with httpx.AsyncClient(base_url=str(bridge.api.base_url), timeout=30) as client:
        yield client


@pytest.fixture
async def admin(bridge: Bridge, make_api_key: ApiKeyFactory) -> AsyncIterator[httpx.AsyncClient]:
    key = await make_api_key(name="ops", scopes=(Scope.ADMIN,))
    async with httpx.AsyncClient(
        base_url=str(bridge.api.base_url), headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        yield client


async def send_stripe(
    sender: httpx.AsyncClient, payload: dict[str, Any], *, secret: str = STRIPE_SECRET
) -> httpx.Response:
    raw = events.body(payload)
    return await sender.post(
        STRIPE_PATH,
        content=raw,
        headers={
            "Stripe-Signature": events.signature(raw, secret),
            "Content-Type": "application/json",
        },
    )


def generic_event(
    event_type: str, external_id: str, *, occurred_at: datetime | None = None
) -> dict[str, Any]:
    return {
        "id": f"acme_{time.monotonic_ns()}",
        "type": event_type,
        "order_external_id": external_id,
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        "amount": 4900,
    }


async def send_generic(
    sender: httpx.AsyncClient,
    payload: dict[str, Any],
    *,
    secret: str = GENERIC_SECRET,
    path: str = GENERIC_PATH,
) -> httpx.Response:
    raw = json.dumps(payload)
    now = datetime.now(UTC)
    message_id = f"msg_{payload.get('id', 'x')}"
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, raw),
        "content-type": "application/json",
    }
    return await sender.post(path, content=raw.encode(), headers=headers)


async def inbox(admin: httpx.AsyncClient, event_id: str) -> dict[str, Any]:
    response = await admin.get("/api/v1/webhook-events", params={"event_id": event_id})
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    return item  # type: ignore[no-any-return]


async def decided(admin: httpx.AsyncClient, event_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        item = await inbox(admin, event_id)
        if item["status"] in DECIDED:
            return item
        assert time.monotonic() < deadline, f"event {event_id} still {item['status']}"
        await asyncio.sleep(0.05)


def settled_in(status: str):  # type: ignore[no-untyped-def]
    return lambda order: (
        order["status"] == status
        and all(op["status"] in ("succeeded", "failed") for op in order["operations"])
    )


async def active_order(bridge: Bridge, external_id: str) -> dict[str, Any]:
    created = await bridge.create(external_id, ipv4_count=0)
    return await bridge.wait_order(created["id"], settled_in("active"))


async def ports(bridge: Bridge, order: dict[str, Any]) -> set[str]:
    server = await bridge.sim_server(order["server_id"])
    return {port["admin_status"] for port in server["ports"]}


def kinds(order: dict[str, Any]) -> list[str]:
    return [op["kind"] for op in order["operations"]]


# -- Stripe, end to end ------------------------------------------------------------------


async def test_a_failed_payment_suspends_the_right_order_and_payment_restores_it(
    bridge: Bridge, sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    order = await active_order(bridge, "svc-wh-1")
    bystander = await active_order(bridge, "svc-wh-2")
    now = int(time.time())

    failed = events.event(
        "invoice.payment_failed", events.invoice("svc-wh-1", attempt_count=1), created=now
    )
    response = await send_stripe(sender, failed)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False}

    item = await decided(admin, failed["id"])
    assert item["status"] == "processed"
    assert item["action"] == "suspend"
    assert item["order_id"] == order["id"]
    assert item["operation_id"] is not None
    suspended = await bridge.wait_order(order["id"], settled_in("suspended"))
    assert suspended["suspension_reason"] == "non_payment"
    assert await ports(bridge, order) == {"down"}
    assert await ports(bridge, bystander) == {"up"}
    assert (await bridge.order(bystander["id"]))["status"] == "active"

    paid = events.event("invoice.paid", events.invoice("svc-wh-1"), created=now + 60)
    assert (await send_stripe(sender, paid)).status_code == 200
    assert (await decided(admin, paid["id"]))["status"] == "processed"
    restored = await bridge.wait_order(order["id"], settled_in("active"))
    assert restored["suspension_reason"] is None
    assert await ports(bridge, order) == {"up"}
    assert kinds(restored) == ["provision", "suspend", "unsuspend"]


async def test_one_event_delivered_many_times_acts_once(
    bridge: Bridge, sender: httpx.AsyncClient, admin: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    order = await active_order(bridge, "svc-wh-dup")
    failed = events.event("invoice.payment_failed", events.invoice("svc-wh-dup", where="own"))

    at_once = await asyncio.gather(*(send_stripe(sender, failed) for _ in range(5)))
    one_by_one = [await send_stripe(sender, failed) for _ in range(5)]
    answers = [response.json() for response in [*at_once, *one_by_one]]
    assert all(response.status_code == 200 for response in [*at_once, *one_by_one])
    assert sum(not answer["duplicate"] for answer in answers) == 1

    await decided(admin, failed["id"])
    suspended = await bridge.wait_order(order["id"], settled_in("suspended"))
    await asyncio.sleep(0.5)  # room for a second (wrong) suspension to show up
    assert kinds(await bridge.order(order["id"])) == ["provision", "suspend"]
    assert suspended["suspension_reason"] == "non_payment"
    async with create_sessionmaker(db_engine)() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.event_id == failed["id"])
        )
    assert stored == 1


async def test_a_deleted_subscription_terminates(
    bridge: Bridge, sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    order = await active_order(bridge, "svc-wh-cancel")
    deleted = events.event("customer.subscription.deleted", events.subscription("svc-wh-cancel"))
    assert (await send_stripe(sender, deleted)).status_code == 200
    item = await decided(admin, deleted["id"])
    assert (item["status"], item["action"]) == ("processed", "terminate")
    terminated = await bridge.wait_order(order["id"], settled_in("terminated"), timeout=60)
    server = await bridge.sim_server(order["server_id"])
    assert server["owner_email"] is None
    assert kinds(terminated) == ["provision", "terminate"]

    again = events.event("customer.subscription.deleted", events.subscription("svc-wh-cancel"))
    await send_stripe(sender, again)
    item = await decided(admin, again["id"])
    assert (item["status"], item["reason"]) == ("ignored", "already terminated")


async def test_our_order_id_works_as_the_reference_too(
    bridge: Bridge, sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    order = await active_order(bridge, "svc-wh-byid")
    failed = events.event("invoice.payment_failed", events.invoice(str(order["id"]), where="line"))
    await send_stripe(sender, failed)
    item = await decided(admin, failed["id"])
    assert (item["status"], item["order_id"]) == ("processed", order["id"])


async def test_late_events_do_not_undo_newer_ones(
    bridge: Bridge, sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    order = await active_order(bridge, "svc-wh-order")
    t = int(time.time())

    failed = events.event("invoice.payment_failed", events.invoice("svc-wh-order"), created=t)
    await send_stripe(sender, failed)
    assert (await decided(admin, failed["id"]))["status"] == "processed"
    await bridge.wait_order(order["id"], settled_in("suspended"))

    # A payment that happened before that failure, delivered late: still unpaid.
    older_paid = events.event("invoice.paid", events.invoice("svc-wh-order"), created=t - 100)
    await send_stripe(sender, older_paid)
    item = await decided(admin, older_paid["id"])
    assert item["status"] == "ignored"
    assert "newer payment failure" in item["reason"]
    await asyncio.sleep(0.3)
    still = await bridge.order(order["id"])
    assert still["status"] == "suspended"
    assert kinds(still) == ["provision", "suspend"]
    assert await ports(bridge, order) == {"down"}

    paid = events.event("invoice.paid", events.invoice("svc-wh-order"), created=t + 100)
    await send_stripe(sender, paid)
    assert (await decided(admin, paid["id"]))["status"] == "processed"
    await bridge.wait_order(order["id"], settled_in("active"))

    # And a failure from before that payment, delivered later still, does not suspend a payer.
    older_failed = events.event(
        "invoice.payment_failed", events.invoice("svc-wh-order"), created=t + 50
    )
    await send_stripe(sender, older_failed)
    item = await decided(admin, older_failed["id"])
    assert item["status"] == "ignored"
    assert "payment succeeded" in item["reason"]
    await asyncio.sleep(0.3)
    assert (await bridge.order(order["id"]))["status"] == "active"
    assert await ports(bridge, order) == {"up"}


async def test_a_payment_never_lifts_an_abuse_suspension(
    bridge: Bridge, sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    order = await active_order(bridge, "svc-wh-abuse")
    await bridge.request(order["id"], "suspend", reason="abuse")
    await bridge.wait_order(order["id"], settled_in("suspended"))

    paid = events.event("invoice.paid", events.invoice("svc-wh-abuse"))
    await send_stripe(sender, paid)
    item = await decided(admin, paid["id"])
    assert item["status"] == "ignored"
    assert "does not lift" in item["reason"]
    await asyncio.sleep(0.3)
    still = await bridge.order(order["id"])
    assert (still["status"], still["suspension_reason"]) == ("suspended", "abuse")
    assert kinds(still) == ["provision", "suspend"]
    assert await ports(bridge, order) == {"down"}


async def test_repeated_failures_and_payments_are_no_ops_not_errors(
    bridge: Bridge, sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    order = await active_order(bridge, "svc-wh-noop")
    t = int(time.time())
    paid_while_active = events.event("invoice.paid", events.invoice("svc-wh-noop"), created=t)
    await send_stripe(sender, paid_while_active)
    item = await decided(admin, paid_while_active["id"])
    assert (item["status"], item["reason"]) == ("ignored", "the order is not suspended")

    first = events.event(
        "invoice.payment_failed", events.invoice("svc-wh-noop", attempt_count=1), created=t + 1
    )
    second = events.event(
        "invoice.payment_failed", events.invoice("svc-wh-noop", attempt_count=2), created=t + 2
    )
    await send_stripe(sender, first)
    await send_stripe(sender, second)
    assert (await decided(admin, first["id"]))["status"] == "processed"
    item = await decided(admin, second["id"])
    assert (item["status"], item["reason"]) == ("ignored", "already suspended (non_payment)")
    suspended = await bridge.wait_order(order["id"], settled_in("suspended"))
    assert kinds(suspended) == ["provision", "suspend"]


async def test_other_event_types_are_stored_and_ignored(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    other = events.load("event")  # Stripe's example "plan.created"
    other["id"] = f"evt_other_{time.monotonic_ns()}"
    assert (await send_stripe(sender, other)).status_code == 200
    item = await decided(admin, other["id"])
    assert item["status"] == "ignored"
    assert item["order_id"] is None
    assert item["type"] == "plan.created"


async def test_a_rotated_out_secret_still_signs_during_the_rollover(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    other = events.load("event")
    other["id"] = f"evt_rotated_{time.monotonic_ns()}"
    assert (await send_stripe(sender, other, secret=STRIPE_OLD_SECRET)).status_code == 200
    assert (await send_stripe(sender, other, secret="whsec_unknown")).status_code == 400


async def test_unmatched_events_are_listed_and_can_be_reprocessed(
    bridge: Bridge, sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    failed = events.event("invoice.payment_failed", events.invoice("svc-wh-later"))
    await send_stripe(sender, failed)
    item = await decided(admin, failed["id"])
    assert item["status"] == "unmatched"
    assert "svc-wh-later" in item["reason"]

    listed = await admin.get("/api/v1/webhook-events", params={"status": "unmatched"})
    assert listed.status_code == 200
    assert failed["id"] in [event["event_id"] for event in listed.json()["items"]]
    detail = (await admin.get(f"/api/v1/webhook-events/{item['id']}")).json()
    assert detail["payload"]["data"]["object"]["id"] == events.load("invoice")["id"]

    order = await active_order(bridge, "svc-wh-later")
    again = await admin.post(f"/api/v1/webhook-events/{item['id']}/reprocess")
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "received"
    item = await decided(admin, failed["id"])
    assert (item["status"], item["order_id"]) == ("processed", order["id"])
    await bridge.wait_order(order["id"], settled_in("suspended"))

    refused = await admin.post(f"/api/v1/webhook-events/{item['id']}/reprocess")
    assert refused.status_code == 409
    assert refused.json()["type"] == problem_type("invalid_webhook_event_state")


async def test_the_event_list_pages_and_needs_admin(
    bridge: Bridge, sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    for _ in range(3):
        other = events.load("event")
        other["id"] = f"evt_page_{time.monotonic_ns()}"
        await send_stripe(sender, other)
    first = (await admin.get("/api/v1/webhook-events", params={"limit": 2})).json()
    assert len(first["items"]) == 2
    rest = (
        await admin.get(
            "/api/v1/webhook-events", params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    ids = [item["id"] for item in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)

    # billing's key (orders:read/write) may not read the inbox
    forbidden = await bridge.api.get("/api/v1/webhook-events")
    assert forbidden.status_code == 403
    assert (await sender.get("/api/v1/webhook-events")).status_code == 401
    bad_cursor = await admin.get("/api/v1/webhook-events", params={"cursor": "nonsense"})
    assert bad_cursor.status_code == 422
    for name in ("source", "event_id"):
        nul = await admin.get("/api/v1/webhook-events", params={name: "a\x00"})
        assert nul.status_code == 422, (name, nul.text)


# -- generic senders (Standard Webhooks) -------------------------------------------------


async def test_a_generic_source_suspends_restores_and_cancels(
    bridge: Bridge, sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    order = await active_order(bridge, "svc-wh-gen")
    t = datetime.now(UTC)

    failed = generic_event("payment.failed", "svc-wh-gen", occurred_at=t)
    response = await send_generic(sender, failed)
    assert response.status_code == 200, response.text
    item = await decided(admin, failed["id"])
    assert (item["status"], item["source"], item["provider"]) == (
        "processed",
        "acme-pay",
        "generic",
    )
    await bridge.wait_order(order["id"], settled_in("suspended"))
    assert await ports(bridge, order) == {"down"}

    stale = generic_event("payment.succeeded", "svc-wh-gen", occurred_at=t - timedelta(minutes=5))
    await send_generic(sender, stale)
    assert (await decided(admin, stale["id"]))["status"] == "ignored"

    paid = generic_event("payment.succeeded", "svc-wh-gen", occurred_at=t + timedelta(seconds=5))
    await send_generic(sender, paid)
    assert (await decided(admin, paid["id"]))["status"] == "processed"
    await bridge.wait_order(order["id"], settled_in("active"))
    assert await ports(bridge, order) == {"up"}

    cancelled = generic_event("service.cancelled", "svc-wh-gen")
    await send_generic(sender, cancelled)
    assert (await decided(admin, cancelled["id"]))["action"] == "terminate"
    await bridge.wait_order(order["id"], settled_in("terminated"), timeout=60)


async def test_generic_sources_are_authenticated_and_named(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    event = generic_event("payment.failed", "svc-none")
    wrong = "whsec_" + base64.b64encode(b"another-secret-entirely-32bytes!").decode()
    rejected = await send_generic(sender, event, secret=wrong)
    assert rejected.status_code == 400
    assert rejected.json()["type"] == problem_type("invalid_signature")
    unsigned = await sender.post(GENERIC_PATH, json=event)
    assert unsigned.status_code == 400
    assert unsigned.json()["detail"] == rejected.json()["detail"]

    unknown = await send_generic(sender, event, path="/api/v1/webhooks/generic/nobody")
    assert unknown.status_code == 404
    assert unknown.json()["type"] == problem_type("not_found")

    missing_fields = {"id": "acme_x", "type": "payment.failed"}
    invalid = await send_generic(sender, missing_fields)
    assert invalid.status_code == 422
    assert {tuple(err["loc"]) for err in invalid.json()["errors"]} == {
        ("body", "order_external_id"),
        ("body", "occurred_at"),
    }
    naive_time = {**generic_event("payment.failed", "x"), "occurred_at": "2026-11-29T10:00:00"}
    assert (await send_generic(sender, naive_time)).status_code == 422
    future = generic_event(
        "payment.failed", "x", occurred_at=datetime.now(UTC) + timedelta(hours=1)
    )
    refused = await send_generic(sender, future)
    assert refused.status_code == 422
    assert "future" in refused.json()["errors"][0]["msg"]
    # The sender's id also names the delivery header, which cannot carry NUL.
    for field in ("type", "order_external_id"):
        nul = await send_generic(sender, {**generic_event("payment.failed", "x"), field: "a\x00"})
        assert nul.status_code == 422, (field, nul.text)
        assert [tuple(err["loc"]) for err in nul.json()["errors"]] == [("body", field)]

    # Stored once, even when sent twice; and unmatched, since no such order exists.
    assert (await send_generic(sender, event)).json()["duplicate"] is False
    assert (await send_generic(sender, event)).json()["duplicate"] is True
    assert (await decided(admin, event["id"]))["status"] == "unmatched"


# -- the receiving edge, without a worker --------------------------------------------------


@pytest.fixture
def edge_settings(settings: Settings) -> Settings:
    return _webhook_settings(settings)


@pytest.fixture
async def edge(edge_settings: Settings, db_engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    with live_server(create_app(edge_settings)) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            yield client


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == problem_type(code)
    return body


async def test_every_bad_signature_gets_the_same_answer(edge: httpx.AsyncClient) -> None:
    payload = events.body(events.event("invoice.payment_failed", events.invoice("svc-1")))
    now = int(time.time())
    headers = [
        None,
        "",
        "t=1,v1=abc",
        events.signature(payload, "whsec_wrong"),
        events.signature(payload, STRIPE_SECRET, timestamp=now - 301),
        events.signature(payload, STRIPE_SECRET).replace("v1=", "v0="),
    ]
    details = set()
    for header in headers:
        sent = {"Stripe-Signature": header} if header is not None else {}
        response = await edge.post(STRIPE_PATH, content=payload, headers=sent)
        body = _problem(response, 400, "invalid_signature")
        details.add((body["title"], body["detail"]))
    assert len(details) == 1
    tampered = await edge.post(
        STRIPE_PATH,
        content=payload.replace(b"svc-1", b"svc-2"),
        headers={"Stripe-Signature": events.signature(payload, STRIPE_SECRET)},
    )
    _problem(tampered, 400, "invalid_signature")


async def test_no_api_key_is_needed_and_none_is_required(edge: httpx.AsyncClient) -> None:
    payload = events.event("invoice.paid", events.invoice("svc-1"))
    raw = events.body(payload)
    response = await edge.post(
        STRIPE_PATH,
        content=raw,
        headers={
            "Stripe-Signature": events.signature(raw, STRIPE_SECRET),
            "Authorization": "Bearer junk",
        },
    )
    assert response.status_code == 200


async def test_a_signed_body_that_is_not_json_is_a_clear_400(edge: httpx.AsyncClient) -> None:
    for raw, detail in [
        (b"not json at all", "The body is not valid JSON."),
        (b"[1, 2, 3]", "The body must be a JSON object."),
        (b"\xff\xfe", "The body is not valid JSON."),
    ]:
        response = await edge.post(
            STRIPE_PATH,
            content=raw,
            headers={"Stripe-Signature": events.signature_bytes(raw, STRIPE_SECRET)},
        )
        assert _problem(response, 400, "invalid_json")["detail"] == detail
    not_an_event = b'{"hello": "world"}'
    response = await edge.post(
        STRIPE_PATH,
        content=not_an_event,
        headers={"Stripe-Signature": events.signature(not_an_event, STRIPE_SECRET)},
    )
    body = _problem(response, 422, "validation_error")
    assert {err["loc"][-1] for err in body["errors"]} == {"id", "type", "created"}


async def test_bodies_over_the_limit_are_413(
    edge: httpx.AsyncClient, edge_settings: Settings
) -> None:
    limit = edge_settings.webhook_max_body_bytes
    obj = events.invoice("svc-1", description="x" * limit)
    raw = events.body(events.event("invoice.paid", obj))
    signed = {"Stripe-Signature": events.signature(raw, STRIPE_SECRET)}
    _problem(await edge.post(STRIPE_PATH, content=raw, headers=signed), 413, "request_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(raw), 8192):
            yield raw[start : start + 8192]

    streamed = await edge.post(STRIPE_PATH, content=chunks(), headers=signed)
    _problem(streamed, 413, "request_too_large")
    generic = await edge.post(GENERIC_PATH, content=raw)
    _problem(generic, 413, "request_too_large")


async def test_signatures_secrets_and_bodies_stay_out_of_the_log(edge: httpx.AsyncClient) -> None:
    obj = events.invoice("svc-secret-customer", customer_email="private@example.com")
    raw = events.body(events.event("invoice.payment_failed", obj))
    header = events.signature(raw, STRIPE_SECRET)
    with captured_log() as log:
        ok = await edge.post(STRIPE_PATH, content=raw, headers={"Stripe-Signature": header})
        assert ok.status_code == 200
        await edge.post(STRIPE_PATH, content=raw, headers={"Stripe-Signature": "t=1,v1=00"})
    text = log.getvalue()
    assert "webhook.received" in text
    assert "webhook.invalid_signature" in text
    for leak in (
        header.split("v1=")[1],
        STRIPE_SECRET,
        "private@example.com",
        "svc-secret-customer",
    ):
        assert leak not in text


async def test_without_a_stripe_secret_there_is_no_stripe_receiver(
    settings: Settings, db_engine: AsyncEngine
) -> None:
    with live_server(create_app(settings)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            raw = events.body(events.load("event"))
            response = await client.post(
                STRIPE_PATH,
                content=raw,
                headers={"Stripe-Signature": events.signature(raw, "whsec_x")},
            )
    _problem(response, 404, "not_found")


# -- the processor on its own: retries, then failed ----------------------------------------


async def test_processing_failures_are_retried_then_failed_then_reprocessable(
    edge: httpx.AsyncClient,
    edge_settings: Settings,
    db_engine: AsyncEngine,
    make_api_key: ApiKeyFactory,
) -> None:
    # The configured API client ("billing") does not exist yet: a configuration
    # problem, retried with backoff, then given up on.
    payload = events.event("invoice.payment_failed", events.invoice("svc-1"))
    raw = events.body(payload)
    response = await edge.post(
        STRIPE_PATH, content=raw, headers={"Stripe-Signature": events.signature(raw, STRIPE_SECRET)}
    )
    assert response.status_code == 200
    sessionmaker = create_sessionmaker(db_engine)
    processor = WebhookProcessor(
        sessionmaker=sessionmaker,
        settings=edge_settings,
        secrets=SecretBox(edge_settings.secret_keys),
    )
    deadline = time.monotonic() + 10
    while True:
        await processor.run_due()
        async with sessionmaker() as session:
            event = await session.scalar(select(WebhookEvent))
        assert event is not None
        if event.status is not WebhookEventStatus.RECEIVED:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert event.status is WebhookEventStatus.FAILED
    assert event.attempts == edge_settings.webhook_max_attempts
    assert event.reason is not None
    assert "'billing', which does not exist" in event.reason

    key = await make_api_key(name="ops", scopes=(Scope.ADMIN,))
    await make_api_key(name="billing")
    headers = {"Authorization": f"Bearer {key}"}
    again = await edge.post(f"/api/v1/webhook-events/{event.id}/reprocess", headers=headers)
    assert again.status_code == 202
    assert again.json()["attempts"] == 0
    assert await processor.run_due() == 1
    listed = (await edge.get("/api/v1/webhook-events", headers=headers)).json()["items"]
    assert [(item["status"], item["attempts"]) for item in listed] == [("unmatched", 1)]


async def _active_order_row(engine: AsyncEngine, external_id: str, *, server_id: int) -> int:
    """An active order straight in the database: the processor only requests operations."""
    async with create_sessionmaker(engine)() as session, session.begin():
        client = await ApiClientRepository(session).get_by_name("billing")
        assert client is not None
        return await rows.active_order(
            session, api_client_id=client.id, external_id=external_id, server_id=server_id
        )


async def test_concurrent_workers_decide_an_event_once(
    edge: httpx.AsyncClient,
    edge_settings: Settings,
    db_engine: AsyncEngine,
    make_api_key: ApiKeyFactory,
) -> None:
    await make_api_key(name="billing")
    sessionmaker = create_sessionmaker(db_engine)
    workers = [
        WebhookProcessor(
            sessionmaker=sessionmaker,
            settings=edge_settings,
            secrets=SecretBox(edge_settings.secret_keys),
        )
        for _ in range(4)
    ]

    async def send(external_id: str) -> int:
        payload = events.event("invoice.payment_failed", events.invoice(external_id))
        raw = events.body(payload)
        signed = {"Stripe-Signature": events.signature(raw, STRIPE_SECRET)}
        assert (await edge.post(STRIPE_PATH, content=raw, headers=signed)).status_code == 200
        async with sessionmaker() as session:
            stored = await session.scalar(
                select(WebhookEvent.id).where(WebhookEvent.event_id == payload["id"])
            )
        assert stored is not None
        return stored

    async def outcome(event_id: int, order_id: int) -> tuple[Any, ...]:
        async with sessionmaker() as session:
            event = await session.get(WebhookEvent, event_id)
            suspends = await session.scalar(
                select(func.count())
                .select_from(Operation)
                .where(Operation.order_id == order_id, Operation.kind == OperationKind.SUSPEND)
            )
        assert event is not None
        return event.status, event.attempts, event.order_id, suspends

    # Four holders deciding one event at once (as after a lease ran out under a
    # slow worker): one decision, one operation.
    first_order = await _active_order_row(db_engine, "svc-race-1", server_id=1)
    first = await send("svc-race-1")
    await asyncio.gather(*(worker.process(first) for worker in workers))
    assert await outcome(first, first_order) == (WebhookEventStatus.PROCESSED, 1, first_order, 1)

    # Four workers polling at once: one lease.
    second_order = await _active_order_row(db_engine, "svc-race-2", server_id=2)
    second = await send("svc-race-2")
    claimed = await asyncio.gather(*(worker.run_due() for worker in workers))
    assert sorted(claimed) == [0, 0, 0, 1]
    assert await outcome(second, second_order) == (
        WebhookEventStatus.PROCESSED,
        1,
        second_order,
        1,
    )
