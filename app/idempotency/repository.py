"""All SQL on ``idempotency_key``.

A request that runs under a key owns its row while the row says ``in_progress``
with the ``locked_at`` it wrote; every later write is conditional on that pair,
so a request whose row was taken over (or purged) can never overwrite the new
owner's answer.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.idempotency.models import IdempotencyKey, IdempotencyStatus
from app.kit.db import delete_oldest, upsert_into


async def insert_in_progress(
    session: AsyncSession,
    *,
    scope: str,
    key: str,
    fingerprint: str,
    now: datetime,
    expires_at: datetime,
) -> int | None:
    """Insert the row for a first attempt; its id, or None when ``(scope, key)`` exists.

    ON CONFLICT DO NOTHING rather than catching IntegrityError: on PostgreSQL a
    concurrent insert of the same key waits for the other transaction and then
    reports the conflict without aborting ours, and on SQLite the transaction
    already holds the write lock, so both answer "exists" without a savepoint.
    """
    statement = (
        upsert_into(session, IdempotencyKey)
        .values(
            scope=scope,
            key=key,
            fingerprint=fingerprint,
            status=IdempotencyStatus.IN_PROGRESS,
            locked_at=now,
            created_at=now,
            expires_at=expires_at,
        )
        .on_conflict_do_nothing(index_elements=[IdempotencyKey.scope, IdempotencyKey.key])
        .returning(IdempotencyKey.id)
    )
    row_id: int | None = (await session.execute(statement)).scalar_one_or_none()
    return row_id


async def get_for_update(session: AsyncSession, *, scope: str, key: str) -> IdempotencyKey | None:
    """The existing row, locked until the transaction ends.

    FOR UPDATE makes two requests that both find a stale or expired row decide one
    after the other on PostgreSQL; SQLite renders no clause, and needs none: the
    transaction holds the database's write lock from BEGIN IMMEDIATE.
    """
    result = await session.execute(
        select(IdempotencyKey)
        .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def take_over(session: AsyncSession, *, row_id: int, locked_at: datetime) -> None:
    """Claim a stale in-progress row for this attempt (same key, same request)."""
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == row_id)
        .values(locked_at=locked_at)
        .execution_options(synchronize_session=False)
    )


async def restart(
    session: AsyncSession,
    *,
    row_id: int,
    fingerprint: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Reuse an expired row as if it had never existed: a new first attempt."""
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == row_id)
        .values(
            fingerprint=fingerprint,
            status=IdempotencyStatus.IN_PROGRESS,
            response_status=None,
            response_headers=None,
            response_body=None,
            locked_at=now,
            created_at=now,
            expires_at=expires_at,
        )
        .execution_options(synchronize_session=False)
    )


def _owned(row_id: int, locked_at: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        IdempotencyKey.id == row_id,
        IdempotencyKey.status == IdempotencyStatus.IN_PROGRESS,
        IdempotencyKey.locked_at == locked_at,
    )


async def complete(
    session: AsyncSession,
    *,
    row_id: int,
    locked_at: datetime,
    response_status: int,
    response_headers: str,
    response_body: str,
) -> bool:
    """Store the answer for replay; False when this attempt no longer owns the row."""
    result = await session.execute(
        update(IdempotencyKey)
        .where(*_owned(row_id, locked_at))
        .values(
            status=IdempotencyStatus.COMPLETED,
            response_status=response_status,
            response_headers=response_headers,
            response_body=response_body,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release(session: AsyncSession, *, row_id: int, locked_at: datetime) -> bool:
    """Forget the key so a corrected retry runs; False when this attempt no longer owns it."""
    result = await session.execute(
        delete(IdempotencyKey)
        .where(*_owned(row_id, locked_at))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def purge_expired(session: AsyncSession, *, now: datetime, limit: int) -> int:
    """Delete up to ``limit`` expired rows (answered or abandoned); how many went."""
    return await delete_oldest(
        session, IdempotencyKey, IdempotencyKey.expires_at <= now, limit=limit
    )
