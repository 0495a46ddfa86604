"""aiosqlite with at most one trip to the connection's thread per statement, and
none for most.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's
adapter makes four such calls per statement (open a cursor, execute, fetch the
rows, close the cursor); an idle pooled connection returned to the pool costs one
more, for a rollback with nothing to roll back. Each trip wakes that thread and
then the event loop, and sqlite3 lets go of the GIL and takes it back around
every row it steps, so while the event loop is busy a statement on the thread
costs several times the statement itself. Here:

- a statement that cannot wait for a lock runs on the event loop's thread,
  executed, fetched and closed in one go: a read (the database is in WAL mode,
  where readers never wait) and any statement inside a transaction (every
  transaction begins with ``BEGIN IMMEDIATE``, so it already holds the write
  lock);
- what may wait, ``BEGIN IMMEDIATE`` for another process's write lock and
  ``COMMIT`` for a checkpoint's writes to disk, goes to the thread in one trip,
  so the event loop never waits for a lock or the disk;
- commit and rollback skip the trip when no transaction is open.

SQLAlchemy's adapter drives this through the interface it uses of aiosqlite (the
same private members it reaches for, ``_conn`` and ``_tx``, are inherited from
aiosqlite's connection), so behaviour is aiosqlite's in everything but where the
calls run. A connection is only ever used by one task at a time, and each trip to
the thread is awaited, so the thread is idle whenever the event loop's thread
uses the connection. Rows are fetched in full, as the adapter did already,
streamed results included: a stream here bounds nothing but what the caller
handles at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import aiosqlite

_Outcome = tuple[Any, int, int | None, list[Any]]


def _run(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Outcome:
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters if parameters is not None else ())
        rows = cursor.fetchall() if cursor.description else []
        # Read after the fetch: with RETURNING, SQLite counts rows as they are stepped.
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor:
    """The part of aiosqlite's cursor SQLAlchemy's adapter calls, with the whole
    statement done by ``execute``."""

    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def _run(self, sql: str, parameters: Any, many: bool) -> OneTripCursor:
        connection = self._connection
        if connection.never_waits(sql):
            outcome = _run(connection._conn, sql, parameters, many)
        else:
            on_its_thread = cast(Callable[..., Awaitable[_Outcome]], connection._execute)
            outcome = await on_its_thread(_run, connection._conn, sql, parameters, many)
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def execute(self, sql: str, parameters: Any = None) -> OneTripCursor:
        return await self._run(sql, parameters, many=False)

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> OneTripCursor:
        return await self._run(sql, parameters, many=True)

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []


class OneTripConnection(aiosqlite.Connection):
    def __init__(
        self, connector: Callable[[], sqlite3.Connection], *, shared_with_threads: bool
    ) -> None:
        super().__init__(connector, 64)
        # sqlite3 refuses calls from any thread but its own unless told otherwise
        # (SQLAlchemy tells it so for a database file).
        self._inline_allowed = shared_with_threads

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    def never_waits(self, sql: str) -> bool:
        """Whether ``sql`` may run on the event loop's thread: see the module's text."""
        if not self._inline_allowed or self._connection is None:
            return False
        return self._connection.in_transaction or sql.lstrip()[:6].upper() == "SELECT"

    def _idle(self) -> bool:
        # sqlite3 reads this flag without touching the database; SQLAlchemy never
        # uses a connection from two places at once, so nothing runs beside it.
        return self._connection is not None and not self._connection.in_transaction

    async def commit(self) -> None:
        if not self._idle():
            await super().commit()

    async def rollback(self) -> None:
        if not self._idle():
            await super().rollback()


def connector(database: str, **kwargs: Any) -> Callable[[], Awaitable[OneTripConnection]]:
    """An ``async_creator`` for ``create_async_engine``: connections to ``database``
    opened with ``sqlite3.connect(database, **kwargs)``, as aiosqlite would."""

    async def connect() -> OneTripConnection:
        connection = OneTripConnection(
            lambda: sqlite3.connect(database, **kwargs),
            shared_with_threads=kwargs.get("check_same_thread") is False,
        )
        # As SQLAlchemy does for aiosqlite: an engine never disposed must not keep
        # the interpreter from exiting.
        connection._thread.daemon = True
        await connection
        return connection

    return connect
