"""Migrations on a fresh database of the same kind as the suite's: up to head,
no drift against the models, and back down to base."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.kit.migrations import alembic_config, head_revisions
from app.models import Base


def _admin_url(url: str) -> str:
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path: object) -> Iterator[str]:
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
        return
    name = f"dcibridge_migration_{uuid.uuid4().hex[:12]}"

    async def admin(statement: str) -> None:
        engine = create_async_engine(_admin_url(database_url), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _inspect(url: str) -> tuple[set[str], set[str], list[object]]:
    def read(connection: Connection) -> tuple[set[str], set[str], list[object]]:
        context = MigrationContext.configure(connection)
        tables = set(inspect(connection).get_table_names())
        diff = compare_metadata(context, Base.metadata)
        return tables, set(context.get_current_heads()), diff

    async def run() -> tuple[set[str], set[str], list[object]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(read)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_upgrade_to_head_matches_models_then_downgrade_to_base(fresh_database_url: str) -> None:
    config = alembic_config(fresh_database_url)

    command.upgrade(config, "head")
    tables, heads, diff = _inspect(fresh_database_url)
    assert {"api_client", "customer", "order", "operation", "operation_step"} <= tables
    assert heads == head_revisions()
    assert diff == [], f"models and migrations disagree: {diff}"

    command.downgrade(config, "base")
    tables, heads, _ = _inspect(fresh_database_url)
    assert tables <= {"alembic_version"}
    assert heads == set()
