"""Claiming keys against the real test database (SQLite, or PostgreSQL when configured):
the decisions of ``service.claim``, the owner-token writes, and ``purge_expired``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.idempotency import repository, service
from app.idempotency.exceptions import IdempotencyKeyInUse, IdempotencyKeyReused
from app.idempotency.models import IdempotencyKey, IdempotencyStatus
from app.idempotency.service import KEY_TTL, STALE_AFTER, Claim, StoredResponse
from app.kit.db import create_sessionmaker
from app.kit.models import utcnow

T = TypeVar("T")
SCOPE = "a" * 64
OTHER_SCOPE = "b" * 64


async def in_tx(engine: AsyncEngine, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One short transaction, as the middleware uses them."""
    async with create_sessionmaker(engine)() as session, session.begin():
        return await work(session)


async def claim(
    engine: AsyncEngine,
    *,
    key: str = "k1",
    fingerprint: str = "f" * 64,
    now: datetime,
    scope: str = SCOPE,
) -> Claim | StoredResponse:
    return await in_tx(
        engine,
        lambda s: service.claim(s, scope=scope, key=key, fingerprint=fingerprint, now=now),
    )


async def complete(engine: AsyncEngine, claimed: Claim, body: str = '{"id": 1}') -> bool:
    return await in_tx(
        engine,
        lambda s: service.complete(
            s,
            claimed,
            status=202,
            headers=[("content-type", "application/json"), ("location", "/api/v1/orders/1")],
            body=body,
        ),
    )


async def rows(engine: AsyncEngine) -> list[IdempotencyKey]:
    async def read(session: AsyncSession) -> list[IdempotencyKey]:
        result = await session.execute(select(IdempotencyKey).order_by(IdempotencyKey.id))
        return list(result.scalars())

    return await in_tx(engine, read)


async def test_first_claim_runs_and_a_second_is_in_use(db_engine: AsyncEngine) -> None:
    now = utcnow()
    first = await claim(db_engine, now=now)
    assert isinstance(first, Claim)
    with pytest.raises(IdempotencyKeyInUse):
        await claim(db_engine, now=now + timedelta(seconds=1))
    [row] = await rows(db_engine)
    assert row.status is IdempotencyStatus.IN_PROGRESS
    assert row.locked_at == now
    assert row.expires_at == now + KEY_TTL


async def test_completed_key_replays_and_refuses_another_request(db_engine: AsyncEngine) -> None:
    now = utcnow()
    first = await claim(db_engine, now=now)
    assert isinstance(first, Claim)
    assert await complete(db_engine, first)

    replay = await claim(db_engine, now=now + timedelta(hours=23))
    assert replay == StoredResponse(
        status=202,
        headers=[("content-type", "application/json"), ("location", "/api/v1/orders/1")],
        body=b'{"id": 1}',
    )
    with pytest.raises(IdempotencyKeyReused):
        await claim(db_engine, now=now, fingerprint="0" * 64)


async def test_keys_are_scoped_per_client(db_engine: AsyncEngine) -> None:
    now = utcnow()
    assert isinstance(await claim(db_engine, now=now), Claim)
    assert isinstance(
        await claim(db_engine, now=now, scope=OTHER_SCOPE, fingerprint="0" * 64), Claim
    )
    assert len(await rows(db_engine)) == 2


async def test_a_stale_attempt_is_taken_over_and_loses_its_answer(db_engine: AsyncEngine) -> None:
    now = utcnow()
    dead = await claim(db_engine, now=now)
    assert isinstance(dead, Claim)
    with pytest.raises(IdempotencyKeyInUse):
        await claim(db_engine, now=now + STALE_AFTER - timedelta(seconds=1))

    successor = await claim(db_engine, now=now + STALE_AFTER)
    assert isinstance(successor, Claim)
    assert successor.row_id == dead.row_id
    # The first attempt, should it wake up after all, can neither store nor release.
    assert not await complete(db_engine, dead, body='{"stale": true}')
    assert not await in_tx(db_engine, lambda s: service.release(s, dead))
    assert await complete(db_engine, successor)
    [row] = await rows(db_engine)
    assert row.response_body == '{"id": 1}'
    assert row.created_at == now


async def test_an_expired_key_counts_as_never_used(db_engine: AsyncEngine) -> None:
    then = utcnow() - KEY_TTL - timedelta(minutes=1)
    old = await claim(db_engine, now=then)
    assert isinstance(old, Claim)
    assert await complete(db_engine, old)

    now = utcnow()
    fresh = await claim(db_engine, now=now, fingerprint="0" * 64)
    assert isinstance(fresh, Claim)
    [row] = await rows(db_engine)
    assert row.status is IdempotencyStatus.IN_PROGRESS
    assert row.fingerprint == "0" * 64
    assert row.response_status is None
    assert row.response_body is None
    assert row.created_at == now
    assert row.expires_at == now + KEY_TTL


async def test_a_released_key_can_be_claimed_again(db_engine: AsyncEngine) -> None:
    now = utcnow()
    first = await claim(db_engine, now=now)
    assert isinstance(first, Claim)
    assert await in_tx(db_engine, lambda s: service.release(s, first))
    assert await rows(db_engine) == []
    assert isinstance(await claim(db_engine, now=now, fingerprint="0" * 64), Claim)


async def test_purge_expired_removes_only_expired_rows(db_engine: AsyncEngine) -> None:
    now = utcnow()
    for key, created in (
        ("done-long-ago", now - KEY_TTL - timedelta(hours=1)),
        ("abandoned-long-ago", now - KEY_TTL - timedelta(seconds=1)),
        ("recent", now - timedelta(hours=1)),
    ):
        claimed = await claim(db_engine, key=key, now=created)
        assert isinstance(claimed, Claim)
        if key != "abandoned-long-ago":
            assert await complete(db_engine, claimed)

    purged = await in_tx(db_engine, lambda s: repository.purge_expired(s, now=now, limit=1_000))
    assert purged == 2
    assert [row.key for row in await rows(db_engine)] == ["recent"]
    assert await in_tx(db_engine, lambda s: repository.purge_expired(s, now=now, limit=1_000)) == 0


async def _race(engine: AsyncEngine, attempts: int, now: datetime) -> list[object]:
    async def one() -> object:
        try:
            return await claim(engine, now=now)
        except IdempotencyKeyInUse as exc:
            return exc

    # Separate sessions, hence separate connections and transactions, at once.
    return list(await asyncio.gather(*(one() for _ in range(attempts))))


async def test_concurrent_first_attempts_have_exactly_one_winner(db_engine: AsyncEngine) -> None:
    outcomes = await _race(db_engine, 8, utcnow())
    assert sum(isinstance(o, Claim) for o in outcomes) == 1
    assert sum(isinstance(o, IdempotencyKeyInUse) for o in outcomes) == 7
    assert len(await rows(db_engine)) == 1


async def test_concurrent_takeovers_of_a_stale_row_have_exactly_one_winner(
    db_engine: AsyncEngine,
) -> None:
    start = utcnow()
    assert isinstance(await claim(db_engine, now=start), Claim)
    outcomes = await _race(db_engine, 8, start + STALE_AFTER + timedelta(seconds=1))
    assert sum(isinstance(o, Claim) for o in outcomes) == 1
    assert sum(isinstance(o, IdempotencyKeyInUse) for o in outcomes) == 7
