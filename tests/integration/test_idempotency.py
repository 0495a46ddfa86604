"""Idempotency-Key over real HTTP: replays, conflicts, concurrency, what is (not) kept."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import Response
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.auth.scopes import Scope
from app.auth.service import hash_key
from app.config import Settings
from app.idempotency import repository
from app.idempotency.models import IdempotencyKey, IdempotencyStatus
from app.idempotency.service import KEY_TTL, STALE_AFTER, fingerprint
from app.kit.errors import PROBLEM_CONTENT_TYPE, problem_type
from app.kit.models import utcnow
from app.main import create_app
from app.orders.models import Order
from tests.conftest import ApiKeyFactory
from tests.support.bridge import order_body
from tests.support.live_server import live_server
from tests.support.logs import captured_log

ORDERS = "/api/v1/orders"


def headers(token: str, key: str | None = None, **extra: str) -> dict[str, str]:
    result = {"Authorization": f"Bearer {token}", **extra}
    if key is not None:
        result["Idempotency-Key"] = key
    return result


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == problem_type(code)
    assert body["status"] == status
    return body


def is_replay(response: httpx.Response) -> bool:
    return response.headers.get("idempotent-replayed") == "true"


async def count_orders(session: AsyncSession, external_id: str) -> int:
    # Short transactions: an open one would hold SQLite's write lock.
    async with session.begin():
        count = await session.scalar(
            select(func.count()).select_from(Order).where(Order.external_id == external_id)
        )
    return int(count or 0)


async def key_rows(session: AsyncSession) -> list[IdempotencyKey]:
    async with session.begin():
        result = await session.execute(select(IdempotencyKey).order_by(IdempotencyKey.id))
        return list(result.scalars())


@pytest.fixture
async def token(make_api_key: ApiKeyFactory) -> str:
    return await make_api_key(name="billing")


# -- replays and reuse -------------------------------------------------------------


async def test_a_replay_returns_the_stored_answer_and_creates_nothing(
    api: httpx.AsyncClient, token: str, session: AsyncSession
) -> None:
    body = order_body("svc-idem-1", password="Sup3r-Secret-pw")
    first = await api.post(ORDERS, json=body, headers=headers(token, "key-1"))
    assert first.status_code == 202, first.text
    assert not is_replay(first)

    again = await api.post(
        ORDERS, json=body, headers=headers(token, "key-1", **{"X-Request-ID": "retry-1"})
    )
    # Without the key this would be the endpoint's own "already exists" 200.
    assert again.status_code == 202
    assert is_replay(again)
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["location"] == first.headers["location"]
    # The request id is the replay's own, not the stored one.
    assert again.headers["x-request-id"] == "retry-1"

    listed = await api.get(ORDERS, params={"external_id": "svc-idem-1"}, headers=headers(token))
    assert [order["id"] for order in listed.json()["items"]] == [first.json()["id"]]
    assert await count_orders(session, "svc-idem-1") == 1
    [row] = await key_rows(session)
    assert row.status is IdempotencyStatus.COMPLETED
    assert row.response_status == 202
    assert "x-request-id" not in (row.response_headers or "")


async def test_a_key_reused_for_another_request_is_422(
    api: httpx.AsyncClient, token: str, session: AsyncSession
) -> None:
    first = await api.post(ORDERS, json=order_body("svc-a"), headers=headers(token, "key-r"))
    assert first.status_code == 202

    other_body = await api.post(ORDERS, json=order_body("svc-b"), headers=headers(token, "key-r"))
    assert_problem(other_body, 422, "idempotency_key_reused")
    assert not is_replay(other_body)
    other_path = await api.post(
        f"{ORDERS}/{first.json()['id']}/suspend",
        json={"reason": "abuse"},
        headers=headers(token, "key-r"),
    )
    assert_problem(other_path, 422, "idempotency_key_reused")
    assert await count_orders(session, "svc-b") == 0
    order = await api.get(f"{ORDERS}/{first.json()['id']}", headers=headers(token))
    assert [op["kind"] for op in order.json()["operations"]] == ["provision"]


async def test_keys_are_per_client(
    api: httpx.AsyncClient, make_api_key: ApiKeyFactory, session: AsyncSession
) -> None:
    alice = await make_api_key(name="alice")
    bob = await make_api_key(name="bob")
    body = order_body("svc-shared")
    for_alice = await api.post(ORDERS, json=body, headers=headers(alice, "same-key"))
    for_bob = await api.post(ORDERS, json=body, headers=headers(bob, "same-key"))
    assert for_alice.status_code == for_bob.status_code == 202
    assert not is_replay(for_bob)
    assert for_alice.json()["id"] != for_bob.json()["id"]
    # Another body under Bob's key too: nothing of Alice's key is seen.
    other = await api.post(ORDERS, json=order_body("svc-bob-2"), headers=headers(bob, "k2"))
    assert other.status_code == 202
    assert await count_orders(session, "svc-shared") == 2
    assert {row.scope for row in await key_rows(session)} == {hash_key(alice), hash_key(bob)}


async def test_a_domain_error_is_kept_and_replayed(api: httpx.AsyncClient, token: str) -> None:
    path = f"{ORDERS}/999999/suspend"
    first = await api.post(path, json={"reason": "abuse"}, headers=headers(token, "key-404"))
    assert_problem(first, 404, "not_found")
    again = await api.post(path, json={"reason": "abuse"}, headers=headers(token, "key-404"))
    assert_problem(again, 404, "not_found")
    assert is_replay(again)
    assert again.content == first.content


async def test_bodies_are_never_logged(api: httpx.AsyncClient, token: str) -> None:
    body = order_body("svc-log", password="Never-Log-Me-42")
    with captured_log() as log:
        for _ in range(2):
            response = await api.post(ORDERS, json=body, headers=headers(token, "key-log"))
            assert response.status_code == 202
    assert "idempotency.replayed" in log.getvalue()
    assert "Never-Log-Me-42" not in log.getvalue()


# -- what is not kept --------------------------------------------------------------


async def test_a_validation_error_is_not_kept(
    api: httpx.AsyncClient, token: str, session: AsyncSession
) -> None:
    broken = {k: v for k, v in order_body("svc-fix").items() if k != "customer"}
    refused = await api.post(ORDERS, json=broken, headers=headers(token, "key-fix"))
    assert_problem(refused, 422, "validation_error")
    assert await key_rows(session) == []

    fixed = await api.post(ORDERS, json=order_body("svc-fix"), headers=headers(token, "key-fix"))
    assert fixed.status_code == 202
    assert not is_replay(fixed)
    again = await api.post(ORDERS, json=order_body("svc-fix"), headers=headers(token, "key-fix"))
    assert is_replay(again)
    assert await count_orders(session, "svc-fix") == 1


async def test_auth_failures_are_not_kept(
    api: httpx.AsyncClient, make_api_key: ApiKeyFactory, session: AsyncSession
) -> None:
    body = order_body("svc-auth")
    unknown = await api.post(ORDERS, json=body, headers=headers("dcb_not-a-key", "key-auth"))
    assert_problem(unknown, 401, "unauthorized")
    reader = await make_api_key(name="reader", scopes=(Scope.ORDERS_READ,))
    forbidden = await api.post(ORDERS, json=body, headers=headers(reader, "key-auth"))
    assert_problem(forbidden, 403, "insufficient_scope")
    # No bearer token at all: passed through untouched, even with a malformed key.
    anonymous = await api.post(ORDERS, json=body, headers={"Idempotency-Key": "x" * 300})
    assert_problem(anonymous, 401, "unauthorized")
    assert await key_rows(session) == []
    assert await count_orders(session, "svc-auth") == 0


@pytest.mark.parametrize(
    "key_headers",
    [[("Idempotency-Key", "x" * 256)], [("Idempotency-Key", "a"), ("Idempotency-Key", "b")]],
    ids=["too-long", "two-keys"],
)
async def test_a_malformed_key_is_400(
    api: httpx.AsyncClient, token: str, session: AsyncSession, key_headers: list[tuple[str, str]]
) -> None:
    request_headers = httpx.Headers([("Authorization", f"Bearer {token}"), *key_headers])
    response = await api.post(ORDERS, json=order_body("svc-400"), headers=request_headers)
    assert_problem(response, 400, "invalid_idempotency_key")
    assert "x-request-id" in response.headers
    assert await count_orders(session, "svc-400") == 0


# -- expiry, staleness, housekeeping -------------------------------------------------


def _row(token: str, key: str, request_fingerprint: str, **values: Any) -> IdempotencyKey:
    now = utcnow()
    defaults: dict[str, Any] = {
        "scope": hash_key(token),
        "key": key,
        "fingerprint": request_fingerprint,
        "status": IdempotencyStatus.IN_PROGRESS,
        "locked_at": now,
        "created_at": now,
        "expires_at": now + KEY_TTL,
    }
    return IdempotencyKey(**{**defaults, **values})


def _raw_order(external_id: str) -> tuple[bytes, str]:
    """A request body sent byte for byte, and its fingerprint as the middleware takes it."""
    raw = json.dumps(order_body(external_id)).encode()
    return raw, fingerprint(method="POST", path=ORDERS, query_string=b"", body=raw)


async def test_an_expired_key_is_ignored_and_purged(
    api: httpx.AsyncClient, token: str, session: AsyncSession
) -> None:
    long_ago = utcnow() - KEY_TTL - timedelta(hours=1)
    expired = {
        "status": IdempotencyStatus.COMPLETED,
        "response_status": 202,
        "response_headers": "[]",
        "response_body": '{"stale": true}',
        "locked_at": long_ago,
        "created_at": long_ago,
        "expires_at": long_ago + KEY_TTL,
    }
    async with session.begin():
        session.add(_row(token, "key-old", "0" * 64, **expired))
        session.add(_row(token, "key-old-unused", "0" * 64, **expired))

    response = await api.post(
        ORDERS, json=order_body("svc-expired"), headers=headers(token, "key-old")
    )
    assert response.status_code == 202
    assert not is_replay(response)
    assert "stale" not in response.json()

    async with session.begin():
        purged = await repository.purge_expired(session, now=utcnow(), limit=1_000)
    assert purged == 1
    [row] = await key_rows(session)
    assert row.key == "key-old"
    assert row.status is IdempotencyStatus.COMPLETED
    assert row.expires_at > utcnow() + KEY_TTL - timedelta(minutes=1)


async def test_a_running_first_attempt_is_409(
    api: httpx.AsyncClient, token: str, session: AsyncSession
) -> None:
    raw, request_fingerprint = _raw_order("svc-busy")
    async with session.begin():
        session.add(_row(token, "key-busy", request_fingerprint))
    response = await api.post(
        ORDERS,
        content=raw,
        headers=headers(token, "key-busy", **{"Content-Type": "application/json"}),
    )
    assert_problem(response, 409, "idempotency_key_in_use")
    assert await count_orders(session, "svc-busy") == 0


async def test_a_stale_first_attempt_is_taken_over(
    api: httpx.AsyncClient, token: str, session: AsyncSession
) -> None:
    raw, request_fingerprint = _raw_order("svc-orphan")
    abandoned_at = utcnow() - STALE_AFTER - timedelta(seconds=5)
    async with session.begin():
        session.add(_row(token, "key-orphan", request_fingerprint, locked_at=abandoned_at))
    response = await api.post(
        ORDERS,
        content=raw,
        headers=headers(token, "key-orphan", **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 202, response.text
    assert not is_replay(response)
    assert await count_orders(session, "svc-orphan") == 1
    [row] = await key_rows(session)
    assert row.status is IdempotencyStatus.COMPLETED
    assert row.locked_at > abandoned_at


# -- concurrency ---------------------------------------------------------------------


async def test_concurrent_order_requests_create_one_order(
    api: httpx.AsyncClient, live_app_url: str, token: str, session: AsyncSession
) -> None:
    # Creating an order asks DCImanager for its configurations first; slowing the
    # simulator keeps the first attempt running while the others arrive.
    faults = await api.post(f"{live_app_url}/simulator/_sim/faults", json={"latency_ms": 300})
    faults.raise_for_status()
    body = order_body("svc-race")
    responses = await asyncio.gather(
        *(api.post(ORDERS, json=body, headers=headers(token, "key-race")) for _ in range(6))
    )

    assert await count_orders(session, "svc-race") == 1
    originals = [r for r in responses if r.status_code == 202 and not is_replay(r)]
    assert len(originals) == 1
    others = [r for r in responses if r is not originals[0]]
    for response in others:
        # Each other attempt met the first one running, or its stored answer: on
        # SQLite the first attempt's own transaction holds the write lock while it
        # waits for DCImanager, so the others' claims queue behind it and usually
        # find it answered.
        if is_replay(response):
            assert response.status_code == 202
            assert response.content == originals[0].content
        else:
            assert_problem(response, 409, "idempotency_key_in_use")
    if session.get_bind().dialect.name == "postgresql":
        # Nothing makes them wait there: all arrive within the 300 ms.
        assert all(r.status_code == 409 for r in others), [r.status_code for r in others]


@dataclass
class Probe:
    """Test-only routes under /api/v1 that count their runs and can be held open."""

    base_url: str
    runs: Counter[str] = field(default_factory=Counter)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def probe(settings: Settings, db_engine: AsyncEngine) -> Iterator[Probe]:
    app = create_app(settings)
    runs: Counter[str] = Counter()
    release = threading.Event()

    @app.post("/api/v1/_probe/held", status_code=201)
    async def held() -> dict[str, int]:
        runs["held"] += 1
        # The server runs on its own thread and loop, hence a thread-safe event.
        await asyncio.to_thread(release.wait, 15)
        return {"run": runs["held"]}

    @app.post("/api/v1/_probe/boom")
    async def boom() -> None:
        runs["boom"] += 1
        raise RuntimeError("the endpoint failed")

    @app.post("/api/v1/_probe/unavailable")
    async def unavailable() -> Response:
        runs["unavailable"] += 1
        return JSONResponse({"retry": True}, status_code=503)

    @app.post("/api/v1/_probe/waited")
    async def waited() -> Response:
        runs["waited"] += 1
        return JSONResponse(
            {"settled": True},
            headers={
                "Location": "/api/v1/orders/7",
                "Preference-Applied": "wait=5",
                "X-Probe": "not part of the answer",
            },
        )

    with live_server(app) as base_url:
        yield Probe(base_url=base_url, runs=runs, release=release)


@pytest.fixture
async def probe_api(probe: Probe) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=probe.base_url, timeout=20) as client:
        yield client


async def test_concurrent_requests_run_once_and_the_rest_are_409(
    probe: Probe, probe_api: httpx.AsyncClient, session: AsyncSession
) -> None:
    # The probe never authenticates: any bearer token scopes the key.
    request_headers = headers("probe-token", "key-held")
    attempts = [
        asyncio.create_task(probe_api.post("/api/v1/_probe/held", json={}, headers=request_headers))
        for _ in range(6)
    ]
    # The first attempt stays open until released, so every other one must meet it
    # running: wait for five answers, then let it finish.
    answered: list[httpx.Response] = []
    for next_done in asyncio.as_completed(attempts, timeout=15):
        answered.append(await next_done)
        if len(answered) == 5:
            break
    for response in answered:
        assert_problem(response, 409, "idempotency_key_in_use")
    assert probe.runs["held"] == 1
    [running] = [task for task in attempts if not task.done()]
    probe.release.set()
    first = await running
    assert first.status_code == 201
    assert first.json() == {"run": 1}

    late = await probe_api.post("/api/v1/_probe/held", json={}, headers=request_headers)
    assert late.status_code == 201
    assert is_replay(late)
    assert late.content == first.content
    assert probe.runs["held"] == 1


@pytest.mark.parametrize(("route", "status"), [("boom", 500), ("unavailable", 503)])
async def test_server_errors_are_not_kept(
    probe: Probe, probe_api: httpx.AsyncClient, session: AsyncSession, route: str, status: int
) -> None:
    request_headers = headers("probe-token", f"key-{route}")
    for run in (1, 2):
        response = await probe_api.post(f"/api/v1/_probe/{route}", json={}, headers=request_headers)
        assert response.status_code == status
        assert not is_replay(response)
        assert "x-request-id" in response.headers
        assert probe.runs[route] == run
    assert await key_rows(session) == []


async def test_a_replay_carries_only_the_answers_own_headers(
    probe: Probe, probe_api: httpx.AsyncClient
) -> None:
    request_headers = headers("probe-token", "key-waited")
    first = await probe_api.post("/api/v1/_probe/waited", json={}, headers=request_headers)
    again = await probe_api.post("/api/v1/_probe/waited", json={}, headers=request_headers)
    assert first.status_code == again.status_code == 200
    assert is_replay(again)
    assert probe.runs["waited"] == 1
    assert again.content == first.content
    for name in ("content-type", "location", "preference-applied"):
        assert again.headers[name] == first.headers[name]
    assert first.headers["x-probe"]
    assert "x-probe" not in again.headers
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
