"""Async engine, sessionmaker and the request-scoped session."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import ColumnElement, delete, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only

from app.config import Settings
from app.kit import sqlite_driver

SQLITE_BUSY_TIMEOUT_SECONDS = 30
_HELD_WRITE_LOCK = "dcibridge_write_lock"


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN is switched off: _SQLiteWriteQueue.begin emits it.
    dbapi_connection.isolation_level = None
    # WAL lets readers proceed while one writer commits; foreign keys are off by
    # default in SQLite; busy_timeout makes a writer in another process wait instead
    # of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# Execution option of the engine that read-only sessions use (``ReadSessionDep``).
READ_ONLY = "dcibridge_read_only"


class _SQLiteWriteQueue:
    """One write transaction at a time per process, queued in the event loop.

    SQLite lets one connection write at a time. Left to SQLite, the others would
    wait in its busy handler, which sleeps in steps of up to 100 ms and retries:
    in a burst the write lock sits free while every waiter sleeps, and a request
    can wait seconds behind transactions that took milliseconds. Queued here
    instead, the next transaction starts the moment the last one's connection is
    back in the pool. SQLite takes one process (see the operations guide); a
    second one (``dcibridge api-key create``, a backup) still waits on
    ``busy_timeout``.
    """

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def _acquire(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        try:
            async with asyncio.timeout(self._timeout):
                await lock.acquire()
        except TimeoutError:
            raise TimeoutError(f"waited {self._timeout:.0f} s for the SQLite write lock") from None
        return lock

    def begin(self, connection: Any) -> None:
        # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY)
        # when another connection wrote in between; taking the write lock up front
        # avoids that. It also gives SQLite working SAVEPOINTs under SQLAlchemy. A
        # session that only reads opens no transaction at all: each statement reads
        # a snapshot of its own under WAL, beside the writer instead of queueing.
        if connection.get_execution_options().get(READ_ONLY):
            return
        info = connection.info
        if _HELD_WRITE_LOCK not in info:
            info[_HELD_WRITE_LOCK] = await_only(self._acquire())
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    @staticmethod
    def release(_dbapi_connection: Any, record: Any) -> None:
        lock = record.info.pop(_HELD_WRITE_LOCK, None)
        if lock is not None:
            lock.release()


# A pooled PostgreSQL connection used less than this long ago is handed out
# without a ping. SQLAlchemy's pre-ping costs three round trips (BEGIN, ";",
# ROLLBACK) on every checkout, about a third of a short transaction's CPU. Even a
# fast restart of an idle cluster takes twice this (0.2 s), so a connection that
# lived through one has been idle long enough to be pinged; one the server drops
# in the window fails its transaction like one dropped mid-transaction would.
# HikariCP's "alive bypass window" is the same rule at 500 ms.
PING_AFTER_IDLE_SECONDS = 0.1
_LAST_USED = "dcibridge_last_used"


def _note_use(_dbapi_connection: Any, record: Any) -> None:
    record.info[_LAST_USED] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    last_used = record.info.get(_LAST_USED)
    if last_used is not None and time.monotonic() - last_used < PING_AFTER_IDLE_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        # The pool discards the connection and hands out a new one.
        raise DisconnectionError("pooled connection failed its ping") from error


def create_engine(settings: Settings) -> AsyncEngine:
    pool = {"pool_size": settings.database_pool_size, "max_overflow": 0}
    if settings.is_sqlite:
        url = make_url(settings.database_url)
        # The file and options as SQLAlchemy would hand them to aiosqlite.
        [database], connect_args = url.get_dialect(_is_async=True)().create_connect_args(url)
        engine = create_async_engine(
            url,
            echo=settings.database_echo,
            async_creator=sqlite_driver.connector(database, **connect_args),
            **pool,
        )
        event.listen(engine.sync_engine, "connect", _enable_sqlite_pragmas)
        writes = _SQLiteWriteQueue(timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
        event.listen(engine.sync_engine, "begin", writes.begin)
        event.listen(engine.sync_engine.pool, "checkin", writes.release)
        return engine
    # Last in, first out: under load the same few connections stay warm inside the
    # ping window, and the rest idle rather than each being used just often enough
    # to need pinging.
    engine = create_async_engine(
        settings.database_url, echo=settings.database_echo, pool_use_lifo=True, **pool
    )
    event.listen(engine.sync_engine.pool, "connect", _note_use)
    event.listen(engine.sync_engine.pool, "checkin", _note_use)
    event.listen(engine.sync_engine.pool, "checkout", _ping_if_idle)
    return engine


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, for sessions that only read: their statements run outside any
    transaction, which saves the BEGIN and ROLLBACK round trips per request. Each
    statement still sees a consistent snapshot; no read here needs two statements
    to agree beyond what separate snapshots give."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{READ_ONLY: True})
    return engine.execution_options(isolation_level="AUTOCOMMIT")


T = TypeVar("T")


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def upsert_into(session: AsyncSession, table: Any) -> Any:
    """An INSERT that can say ON CONFLICT, for the session's database: PostgreSQL
    and SQLite spell it the same way, but SQLAlchemy has a construct for each."""
    return postgresql.insert(table) if is_postgres(session) else sqlite.insert(table)


def prebuilt_upsert(build: Callable[[Callable[[Any], Any]], T]) -> Callable[[AsyncSession], T]:
    """``build(insert)`` made once for each database, picked by session: building an
    ON CONFLICT statement costs more than running it, on a path every order takes.
    The statement's values come as execution parameters."""
    on_postgres, on_sqlite = build(postgresql.insert), build(sqlite.insert)

    def for_session(session: AsyncSession) -> T:
        return on_postgres if is_postgres(session) else on_sqlite

    return for_session


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the handler succeeds, rolled back otherwise."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


def read_connection(request: Request) -> AsyncConnection:
    """A connection on ``read_only``'s engine, to use as ``async with``, for a
    handler that reads with plain statements and no ORM. It costs about a tenth
    of a millisecond less CPU than ``ReadSessionDep``: no session, and no
    generator dependency, which FastAPI wraps in an exit stack and a shielded
    cancel scope."""
    engine: AsyncEngine = request.app.state.read_engine
    return engine.connect()


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request for handlers that only read, on ``read_only``'s engine."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker(bind=request.app.state.read_engine) as session:
        yield session


# "function" scope: the commit happens when the handler returns, before the response
# is sent, so a client never sees 2xx for work that was not durably recorded.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]


async def delete_oldest(
    session: AsyncSession, model: Any, *conditions: ColumnElement[bool], limit: int
) -> int:
    """Delete up to ``limit`` rows of ``model`` that meet ``conditions``, lowest ids
    first; how many went. Bounded, so that a purge of a long backlog can be split
    into short transactions."""
    oldest = select(model.id).where(*conditions).order_by(model.id).limit(limit)
    result = await session.execute(
        delete(model)
        .where(model.id.in_(oldest.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
