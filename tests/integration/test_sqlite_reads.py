"""What SQLite's reads rely on for their speed, checked on a SQLite file of the
tests' own whatever database the suite runs on: timestamps parsed by one call each,
and the order read billing polls planned as index lookups in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import LogFormat, Settings
from app.kit.db import create_engine
from app.kit.migrations import upgrade_to_head
from app.kit.models import UTCDateTime
from app.orders.repository import _HISTORY_FOR_KEY

metadata = MetaData()
stamped = Table(
    "stamped",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=True, server_default=func.current_timestamp()),
)


def _settings(path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{path}",
        log_format=LogFormat.CONSOLE,
    )


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(_settings(tmp_path / "reads.db"))
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_timestamps_come_back_as_the_same_instant_in_utc(engine: AsyncEngine) -> None:
    written = [
        datetime(2026, 11, 29, 15, 40, 2, 731000, tzinfo=UTC),
        datetime(2026, 11, 29, 15, 40, 2, tzinfo=UTC),
        # Another zone is stored as UTC and read back as the same instant.
        datetime(2026, 11, 29, 18, 40, 2, 5, tzinfo=timezone(timedelta(hours=3))),
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(stamped), [{"at": at} for at in written])
        await connection.execute(insert(stamped).values(at=None))
        # CURRENT_TIMESTAMP's form: seconds, no fraction.
        await connection.execute(text("INSERT INTO stamped DEFAULT VALUES"))
        read = (await connection.execute(select(stamped.c.at).order_by(stamped.c.id))).scalars()
        *exact, empty, defaulted = read.all()
    assert exact == written
    assert all(at.utcoffset() == timedelta(0) for at in exact)
    assert empty is None
    assert defaulted is not None
    assert defaulted.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - defaulted) < timedelta(minutes=5)


@pytest.fixture
def migrated(tmp_path: Path) -> Settings:
    settings = _settings(tmp_path / "plan.db")
    upgrade_to_head(settings.database_url)
    return settings


async def test_the_order_read_is_planned_as_index_lookups_without_a_sort(
    migrated: Settings,
) -> None:
    engine = create_engine(migrated)
    compiled = _HISTORY_FOR_KEY.compile(dialect=sqlite.dialect())
    values = {"order_id": 1, "key_hash": "x"}
    assert compiled.positiontup is not None
    parameters = tuple(values[name] for name in compiled.positiontup)
    try:
        async with engine.connect() as connection:
            plan = (
                await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", parameters)
            ).all()
    finally:
        await engine.dispose()
    steps = [row[-1] for row in plan]
    assert not [step for step in steps if "TEMP B-TREE" in step or "MATERIALIZE" in step], steps
    searched = {step.split()[1].strip('"') for step in steps if step.startswith("SEARCH")}
    assert searched == {"api_client", "order", "customer", "operation", "operation_step"}, steps
