"""Synchronous waits for billing modules that must answer in one call (``Prefer: wait``)."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.orders.models import Operation, OperationStatus

_FINAL = (OperationStatus.SUCCEEDED, OperationStatus.FAILED, OperationStatus.CANCELLED)
_POLL_SECONDS = 0.1


async def wait_until_settled(
    sessionmaker: async_sessionmaker[AsyncSession], *, operation_id: int, seconds: float
) -> bool:
    """True once the operation has finished, False when ``seconds`` ran out first.

    Each look is its own short transaction, so a waiting request never holds a
    database connection (or, on SQLite, the write lock) while it sleeps.
    """
    deadline = time.monotonic() + seconds
    while True:
        async with sessionmaker() as session, session.begin():
            status = await session.scalar(
                select(Operation.status).where(Operation.id == operation_id)
            )
        if status in _FINAL:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(min(_POLL_SECONDS, max(deadline - time.monotonic(), 0)))
