"""On SQLite, one process's write transactions queue in the event loop for the
write lock instead of in SQLite's sleeping busy handler. These tests use a SQLite
file of their own whatever database the suite runs on: the queue exists only
there."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import LogFormat, Settings
from app.kit.db import create_engine, read_only


def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
    # With SQLite's own wait switched off, a second writer that reached SQLite
    # while the first holds the lock would fail at once with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}",
        log_format=LogFormat.CONSOLE,
    )
    engine = create_engine(settings)
    event.listen(engine.sync_engine, "connect", _no_busy_wait)
    async with engine.begin() as connection:
        await connection.exec_driver_sql("CREATE TABLE entry (name TEXT)")
    yield engine
    await engine.dispose()


async def _names(engine: AsyncEngine) -> list[str]:
    async with read_only(engine).connect() as connection:
        result = await connection.exec_driver_sql("SELECT name FROM entry ORDER BY rowid")
        return [row[0] for row in result]


async def test_a_second_writer_waits_for_the_first_and_readers_do_not(
    engine: AsyncEngine,
) -> None:
    first_wrote = asyncio.Event()
    first_may_commit = asyncio.Event()

    async def write(name: str, *, hold: bool) -> None:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("INSERT INTO entry VALUES (?)", (name,))
            if hold:
                first_wrote.set()
                await first_may_commit.wait()

    first = asyncio.create_task(write("first", hold=True))
    await first_wrote.wait()
    second = asyncio.create_task(write("second", hold=False))
    await asyncio.sleep(0.2)
    # The second writer is queued, not failed; a reader is not held up meanwhile.
    assert not second.done()
    assert await _names(engine) == []
    first_may_commit.set()
    await asyncio.gather(first, second)
    assert await _names(engine) == ["first", "second"]


async def test_a_failed_transaction_lets_the_next_writer_in(engine: AsyncEngine) -> None:
    async def fail() -> None:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("INSERT INTO entry VALUES ('rolled back')")
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError):
        await fail()
    async with engine.begin() as connection:
        await connection.exec_driver_sql("INSERT INTO entry VALUES ('kept')")
    assert await _names(engine) == ["kept"]


async def test_one_connection_may_run_transactions_one_after_another(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        for name in ("one", "two"):
            async with connection.begin():
                await connection.exec_driver_sql("INSERT INTO entry VALUES (?)", (name,))
    assert await _names(engine) == ["one", "two"]
