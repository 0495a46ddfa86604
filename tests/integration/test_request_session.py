"""The request-scoped session commits before the response leaves, and rolls back on error."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from starlette.types import Message, Receive, Scope, Send

from app.auth.models import ApiClient
from app.config import Settings
from app.kit.db import ReadSessionDep, SessionDep
from app.main import create_app
from tests.support.live_server import live_server


async def _clients_named(url: str, name: str) -> int:
    # An engine of its own: this runs on the server thread's event loop, and a
    # driver connection must never cross event loops.
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(ApiClient).where(ApiClient.name == name)
            )
    finally:
        await engine.dispose()
    return int(count or 0)


async def test_commit_happens_before_the_response_is_sent(
    settings: Settings, db_engine: AsyncEngine
) -> None:
    app = create_app(settings)
    seen_at_response_start: list[int] = []

    @app.post("/test/write")
    async def write(session: SessionDep) -> dict[str, bool]:
        session.add(ApiClient(name="committed-first", key_prefix="x", key_hash="h" * 64, scopes=[]))
        return {"ok": True}

    @app.post("/test/write-then-fail")
    async def write_then_fail(session: SessionDep) -> None:
        session.add(ApiClient(name="rolled-back", key_prefix="y", key_hash="g" * 64, scopes=[]))
        await session.flush()
        raise RuntimeError("handler failed after writing")

    async def observe(scope: Scope, receive: Receive, send: Send) -> None:
        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start" and scope["path"] == "/test/write":
                seen_at_response_start.append(
                    await _clients_named(settings.database_url, "committed-first")
                )
            await send(message)

        await app(scope, receive, watching_send)

    with live_server(observe) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            assert (await client.post("/test/write")).status_code == 200
            assert (await client.post("/test/write-then-fail")).status_code == 500

    assert seen_at_response_start == [1]
    assert await _clients_named(settings.database_url, "rolled-back") == 0


async def _driver_in_transaction(session: AsyncSession) -> bool:
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if hasattr(driver, "is_in_transaction"):  # asyncpg
        return bool(driver.is_in_transaction())
    return bool(driver.in_transaction)  # aiosqlite


async def test_a_read_only_request_holds_no_transaction(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/test/read")
    async def read(session: ReadSessionDep) -> dict[str, bool]:
        await session.execute(select(func.count()).select_from(ApiClient))
        return {"in_transaction": await _driver_in_transaction(session)}

    @app.get("/test/write")
    async def write(session: SessionDep) -> dict[str, bool]:
        await session.execute(select(func.count()).select_from(ApiClient))
        return {"in_transaction": await _driver_in_transaction(session)}

    with live_server(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            read_answer = (await client.get("/test/read")).json()
            write_answer = (await client.get("/test/write")).json()

    # Nothing held between a read's statements: no lock on SQLite, no snapshot or
    # BEGIN/ROLLBACK round trips on PostgreSQL. Writes keep their transaction.
    assert read_answer == {"in_transaction": False}
    assert write_answer == {"in_transaction": True}
