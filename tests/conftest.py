"""Shared fixtures: a real database (SQLite file, or PostgreSQL when
DCIBRIDGE_TEST_DATABASE_URL is set), settings, and the app served over real HTTP."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.auth import service as api_keys
from app.auth.scopes import DEFAULT_SCOPES, Scope
from app.config import LogFormat, Settings
from app.kit.db import create_engine, create_sessionmaker
from app.kit.migrations import upgrade_to_head
from app.main import create_app
from app.models import Base
from tests.support.bridge import Bridge
from tests.support.live_server import live_server

TEST_DATABASE_URL_ENV = "DCIBRIDGE_TEST_DATABASE_URL"


def _reset_postgres_schema(url: str) -> None:
    async def reset() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("DROP SCHEMA public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
        finally:
            await engine.dispose()

    asyncio.run(reset())


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated, empty database for the whole run."""
    url = os.environ.get(TEST_DATABASE_URL_ENV)
    if url:
        _reset_postgres_schema(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade_to_head(url)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        log_format=LogFormat.CONSOLE,
        log_level="INFO",
        run_worker=False,
    )


async def _delete_all_rows(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())


@pytest.fixture
async def db_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    await _delete_all_rows(engine)
    try:
        yield engine
    finally:
        await _delete_all_rows(engine)
        await engine.dispose()


@pytest.fixture
async def session(db_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with create_sessionmaker(db_engine)() as session:
        yield session


ApiKeyFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def make_api_key(db_engine: AsyncEngine) -> ApiKeyFactory:
    """Issue a real API key through the service, committed, and return the raw key."""
    counter = iter(range(1_000_000))

    async def make(*, name: str | None = None, scopes: tuple[Scope, ...] = DEFAULT_SCOPES) -> str:
        async with create_sessionmaker(db_engine)() as session, session.begin():
            issued = await api_keys.create_client(
                session, name=name or f"client-{next(counter)}", scopes=scopes
            )
        return issued.raw_key

    return make


@pytest.fixture
def live_app_url(settings: Settings, db_engine: AsyncEngine) -> Iterator[str]:
    with live_server(create_app(settings)) as base_url:
        yield base_url


@pytest.fixture
async def api(live_app_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_app_url, timeout=10) as client:
        yield client


@pytest.fixture
def engine_settings(settings: Settings) -> Settings:
    """Settings for running orders end to end: embedded simulator and worker, fast clocks."""
    return settings.model_copy(
        update={
            "run_worker": True,
            "simulator_op_seconds": 0.3,
            "simulator_servers": 6,
            "task_poll_seconds": 0.1,
            "worker_poll_seconds": 0.05,
            "step_retry_base_seconds": 0.05,
            "step_retry_max_seconds": 0.5,
            "shutdown_grace_seconds": 1.0,
        }
    )


@pytest.fixture
async def bridge(engine_settings: Settings, make_api_key: ApiKeyFactory) -> AsyncIterator[Bridge]:
    key = await make_api_key(name="billing")
    with live_server(create_app(engine_settings)) as base_url:
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            yield Bridge(api=client, simulator_url=f"{base_url}/simulator")
