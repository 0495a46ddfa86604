"""Pooled PostgreSQL connections are pinged only after being idle, and dead ones replaced.

These run on a PostgreSQL cluster of their own, whatever database the suite
targets: they kill backends and restart the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.kit import db
from tests.support.private_postgres import PostgresUnavailable, PrivatePostgres, private_postgres


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivatePostgres]:
    try:
        with private_postgres() as postgres:
            yield postgres
    except PostgresUnavailable as exc:
        raise pytest.fail.Exception(f"needs its own PostgreSQL: {exc}", pytrace=False) from None


@pytest.fixture
async def engine(cluster: PrivatePostgres) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(Settings(_env_file=None, database_url=cluster.url))  # type: ignore[call-arg]
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per ping the pool sends."""
    sent: list[int] = []
    real_ping = AsyncAdapt_asyncpg_connection.ping

    def counting_ping(self: AsyncAdapt_asyncpg_connection) -> None:
        sent.append(1)
        real_ping(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counting_ping)
    return sent


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")) or 0)


async def test_a_connection_in_steady_use_is_not_pinged(
    engine: AsyncEngine, pings: list[int]
) -> None:
    first = await _backend_pid(engine)
    for _ in range(5):
        assert await _backend_pid(engine) == first  # the same pooled connection
    assert pings == []


async def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(
    engine: AsyncEngine, cluster: PrivatePostgres, pings: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = await _backend_pid(engine)  # back in the pool, idle
    killer = await asyncpg.connect(cluster.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", killed)
    finally:
        await killer.close()
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)

    replacement = await _backend_pid(engine)

    assert replacement != killed
    assert pings  # the dead connection was found by its ping, not by a failed query


async def test_after_a_database_restart_the_next_transaction_succeeds(
    engine: AsyncEngine, cluster: PrivatePostgres
) -> None:
    before = await _backend_pid(engine)
    cluster.restart()  # longer than the ping window: the connection is pinged and replaced
    async with engine.begin() as connection:
        assert await connection.scalar(text("SELECT 1")) == 1
    assert await _backend_pid(engine) != before
