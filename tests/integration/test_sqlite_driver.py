"""dcibridge's SQLite engine runs what cannot wait for a lock on the event loop's
thread, sends the rest to the connection's thread in one trip per statement, and
behaves as aiosqlite does otherwise. These tests use a SQLite file of their own
whatever database the suite runs on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import LogFormat, Settings
from app.kit.db import create_engine, read_only
from app.kit.sqlite_driver import OneTripConnection, connector

metadata = MetaData()
entry = Table(
    "entry",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False, unique=True),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}",
        log_format=LogFormat.CONSOLE,
    )
    engine = create_engine(settings)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every call sent to a connection's thread."""
    sent: list[str] = []
    original = OneTripConnection._execute

    async def counted(self: OneTripConnection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(OneTripConnection, "_execute", counted)
    return sent


async def test_the_engine_connects_through_the_one_trip_driver(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.driver_connection, OneTripConnection)


async def test_a_read_runs_without_a_trip_and_an_idle_connection_returns_without_one(
    engine: AsyncEngine, trips: list[str]
) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(entry), [{"name": "a"}, {"name": "b"}])
    trips.clear()
    async with read_only(engine).connect() as connection:
        names = (await connection.execute(select(entry.c.name).order_by(entry.c.id))).scalars()
        assert list(names) == ["a", "b"]
    # aiosqlite made five: cursor, execute, fetch, close, and the check-in's rollback.
    assert trips == []


async def test_a_write_transaction_sends_only_its_begin_and_commit_to_the_thread(
    engine: AsyncEngine, trips: list[str]
) -> None:
    async with engine.begin() as connection:
        inserted = await connection.execute(insert(entry).returning(entry.c.id), {"name": "a"})
        assert inserted.scalar_one() == 1
    # BEGIN IMMEDIATE (which may wait for another process's write lock) and COMMIT
    # (which may checkpoint to disk); the INSERT ran on the event loop's thread.
    assert trips == ["_run", "commit"]


async def test_a_connection_tied_to_its_thread_runs_every_statement_there(
    tmp_path: Path, trips: list[str]
) -> None:
    connection = await connector(str(tmp_path / "tied.db"), check_same_thread=True)()
    try:
        cursor = connection.cursor()
        await cursor.execute("SELECT 1")
        assert await cursor.fetchall() == [(1,)]
        assert trips == ["_run"]
    finally:
        await connection.close()


async def test_counts_rows_and_ids_as_sqlite_does(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        many = await connection.execute(insert(entry), [{"name": n} for n in "abc"])
        assert many.rowcount == 3
        one = await connection.execute(insert(entry), {"name": "d"})
        assert one.inserted_primary_key == (4,)
        changed = await connection.execute(
            update(entry).where(entry.c.name.in_(["a", "b"])).values(name=entry.c.name + "!")
        )
        assert changed.rowcount == 2
        returned = await connection.execute(
            update(entry)
            .where(entry.c.id > 2)
            .values(name="x" + entry.c.name)
            .returning(entry.c.id)
        )
        assert sorted(returned.scalars()) == [3, 4]
        assert returned.rowcount == 2


async def test_a_rolled_back_transaction_leaves_nothing(engine: AsyncEngine) -> None:
    async def fail() -> None:
        async with engine.begin() as connection:
            await connection.execute(insert(entry), {"name": "gone"})
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError):
        await fail()
    async with read_only(engine).connect() as connection:
        assert (await connection.execute(select(entry))).all() == []


async def test_database_errors_arrive_as_sqlalchemy_errors_and_the_connection_recovers(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(entry), {"name": "a"})
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(insert(entry), {"name": "a"})
    with pytest.raises(OperationalError):
        async with read_only(engine).connect() as connection:
            await connection.exec_driver_sql("SELECT nothing FROM nowhere")
    async with engine.begin() as connection:
        await connection.execute(insert(entry), {"name": "b"})
    async with read_only(engine).connect() as connection:
        assert list((await connection.execute(select(entry.c.name))).scalars()) == ["a", "b"]


async def test_a_streamed_result_hands_out_every_row_once(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(entry), [{"name": f"n{i}"} for i in range(5)])
    query = select(entry.c.id).order_by(entry.c.id)
    async with read_only(engine).connect() as connection:
        in_parts = [list(part) async for part in (await connection.stream(query)).partitions(2)]
        assert in_parts == [[(1,), (2,)], [(3,), (4,)], [(5,)]]
        one_by_one = [row.id async for row in await connection.stream(query)]
        assert one_by_one == [1, 2, 3, 4, 5]
        streamed = await connection.stream(query)
        assert await streamed.fetchone() == (1,)
        assert [tuple(row) for row in await streamed.all()] == [(2,), (3,), (4,), (5,)]
