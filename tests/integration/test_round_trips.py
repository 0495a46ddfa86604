"""How many statements the hottest requests make: each is a round trip to the
database, which is most of what a simple request costs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiClient
from app.config import Settings
from app.kit.models import utcnow
from app.main import create_app
from app.orchestration.repository import QueueRepository
from app.orders.models import OperationKind, OperationStatus, StepStatus
from app.orders.repository import OrderRepository
from tests.conftest import ApiKeyFactory
from tests.integration.test_order_read import ORDERS, bearer, place_order
from tests.support.bridge import Bridge, order_body
from tests.support.live_server import live_server
from tests.support.rows import active_order


@contextmanager
def counting_statements(settings: Settings) -> Iterator[tuple[str, list[str]]]:
    """The app served over real HTTP, and every statement its engine sends (with
    whitespace collapsed)."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(" ".join(str(args[2]).split()))

    app = create_app(settings)
    with live_server(app) as base_url:
        event.listen(app.state.runtime.engine.sync_engine, "before_cursor_execute", count)
        yield base_url, statements


@pytest.fixture
def counted_app(settings: Settings) -> Iterator[tuple[str, list[str]]]:
    with counting_statements(settings) as counted:
        yield counted


async def test_the_key_and_the_order_are_read_in_one_statement(
    counted_app: tuple[str, list[str]], make_api_key: ApiKeyFactory
) -> None:
    base_url, statements = counted_app
    key = await make_api_key()
    async with httpx.AsyncClient(base_url=base_url) as api:
        order_id = await place_order(api, key, "read-once")
        statements.clear()
        response = await api.get(f"{ORDERS}/{order_id}", headers=bearer(key))
    assert response.status_code == 200
    assert len(statements) == 1, statements


async def test_an_accepted_order_is_written_in_as_few_statements_as_the_database_allows(
    counted_app: tuple[str, list[str]], make_api_key: ApiKeyFactory, settings: Settings
) -> None:
    base_url, statements = counted_app
    key = await make_api_key()
    async with httpx.AsyncClient(base_url=base_url) as api:
        response = await api.post(ORDERS, json=order_body("write-few"), headers=bearer(key))
    assert response.status_code == 202, response.text
    written = [s for s in statements if not s.lstrip().upper().startswith("SELECT")]
    if settings.is_sqlite:
        # BEGIN IMMEDIATE, customer, order, operation, steps: SQLite's statements
        # cannot insert into two tables.
        assert len(written) == 5, written
    else:
        # The customer with the order, the operation with its steps (BEGIN and
        # COMMIT are the driver's own, not statements).
        assert len(written) == 2, written


async def test_a_step_transaction_reads_its_operation_and_steps_in_one_statement(
    engine_settings: Settings, make_api_key: ApiKeyFactory
) -> None:
    key = await make_api_key(name="billing")
    with counting_statements(engine_settings) as (base_url, statements):
        async with httpx.AsyncClient(base_url=base_url, headers=bearer(key), timeout=30) as client:
            bridge = Bridge(api=client, simulator_url=f"{base_url}/simulator")
            created = await bridge.create("one-read-per-step")
            order = await bridge.wait_order(
                created["id"], lambda o: o["operations"][0]["status"] == "succeeded"
            )
    assert order["status"] == "active"
    step_reads = [s for s in statements if s.startswith("SELECT") and "operation_step" in s]
    locked_reads = [s for s in step_reads if "FROM operation JOIN" in s]
    # Every step (and the first one's start) read its rows once, locked.
    assert len(locked_reads) >= len(order["operations"][0]["steps"]) + 1
    # Nothing else reads the steps but the search for servers still awaiting an
    # owner, which joins them to their operation as well.
    assert all("FROM operation JOIN" in s or "JOIN operation_step" in s for s in step_reads), [
        s[:120] for s in step_reads
    ]


async def test_the_order_insert_refuses_a_value_its_statement_would_drop(
    session: AsyncSession,
) -> None:
    customer = dict.fromkeys(("api_client_id", "external_id", "email", "name"), None)
    customer |= dict.fromkeys(("created_at", "updated_at"), None)
    with pytest.raises(ValueError, match="insert_order takes"):
        await OrderRepository(session).insert_order(customer=customer, order={"unknown": 1})


@pytest.mark.parametrize("step_names", [["only"], ["first", "second", "third", "fourth"]])
async def test_an_operation_s_steps_are_written_pending_in_their_order(
    session: AsyncSession, step_names: list[str]
) -> None:
    client = ApiClient(name="billing", key_prefix="dcb_x", key_hash="0" * 64, scopes=[])
    session.add(client)
    await session.flush()
    order_id = await active_order(session, api_client_id=client.id, external_id="steps")
    now = utcnow()
    operation_id = await QueueRepository(session).add_operation(
        order_id=order_id,
        kind=OperationKind.REINSTALL,
        params={"os_template_id": 2},
        secret_ciphertext=None,
        step_names=step_names,
        now=now,
    )
    loaded = await QueueRepository(session).operation_with_steps(operation_id)
    assert loaded is not None
    assert loaded.operation.status == OperationStatus.QUEUED
    assert [(s.position, s.name) for s in loaded.steps] == list(enumerate(step_names))
    assert {(s.status, s.attempts, s.operation_id) for s in loaded.steps} == {
        (StepStatus.PENDING, 0, operation_id)
    }
    assert all(s.result == {} and s.created_at == s.updated_at == now for s in loaded.steps)
