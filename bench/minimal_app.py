"""The baseline ``bench.api`` compares dcibridge with: a minimal FastAPI app.

Run::

    python -m bench.minimal_app --port 8100 --database-url URL [--engine dcibridge|plain]

(or the URL in ``$BENCH_MINIMAL_DATABASE_URL``).

It serves the same two routes as dcibridge's order API, doing the least a real
app would: ``POST /api/v1/orders`` validates the same JSON body with pydantic and
inserts one row (``202`` with the row), ``GET /api/v1/orders/{id}`` selects one
row by primary key (``404`` if none). No authentication, no middleware, no
per-request log line, no ORM.

What must be equal for the comparison to mean something:

- the database access layer. ``--engine dcibridge`` (the default) builds the
  engine with dcibridge's own ``app.kit.db.create_engine``: SQLAlchemy's async
  engine over asyncpg or aiosqlite, configured exactly as dcibridge runs it
  (a pool of 20 connections kept open, no overflow; PostgreSQL: last in, first
  out, a ping before reusing a connection idle for more than 0.1 s; SQLite: WAL,
  ``synchronous=NORMAL``, ``busy_timeout``, every transaction opened with
  ``BEGIN IMMEDIATE`` after queueing in the event loop for the write lock,
  reads and statements inside a transaction on the event loop's thread, only
  ``BEGIN IMMEDIATE`` and ``COMMIT`` on aiosqlite's thread), and
  reads outside any transaction as dcibridge's read-only requests do (no BEGIN
  and ROLLBACK round trips, no write lock).
  ``--engine plain`` keeps the driver, pool bounds and SQLite durability but
  leaves the rest at SQLAlchemy's defaults (no ping, reads in a transaction,
  SQLite's deferred transactions and its busy handler, SQLAlchemy's own
  aiosqlite adapter), to show what that
  configuration costs;
- the server: ``uvicorn.run`` called exactly as ``dcibridge serve`` calls it (one
  process, default loop and HTTP implementations, ``log_config=None``, access
  log off), with the root logger at the same level.

What dcibridge does beyond that (API-key check, request-id middleware and its
log line, metrics, the customer and the queued operation with its steps, the
order's history) is what the benchmark measures.
The table is created at start-up; point ``--database-url`` at a scratch database.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, HTTPException, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    event,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# The benchmark passes the URL here rather than on the command line, where it would
# make this process look like one of its database's backends to a CPU meter.
DATABASE_URL_VARIABLE = "BENCH_MINIMAL_DATABASE_URL"
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

metadata = MetaData()
orders = Table(
    "bench_order",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("external_id", String(255), nullable=False, unique=True),
    Column("customer", JSON, nullable=False),
    Column("configuration", String(255), nullable=False),
    Column("os_template_id", BigInteger, nullable=False),
    Column("ssh_keys", JSON, nullable=False),
    Column("ipv4_count", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=255)
    email: str = Field(pattern=_EMAIL, max_length=320)
    name: str = Field(default="", max_length=255)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=255)
    customer: CustomerIn
    configuration: str = Field(min_length=1, max_length=255)
    os_template_id: int = Field(ge=0)
    ssh_keys: list[str] = Field(default_factory=list, max_length=32)
    ipv4_count: int = Field(default=1, ge=0, le=64)


class OrderOut(BaseModel):
    id: int
    external_id: str
    customer: CustomerIn
    configuration: str
    os_template_id: int
    ssh_keys: list[str]
    ipv4_count: int
    created_at: datetime


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # dcibridge's durability: anything else would make commits cheaper or dearer
    # here than there.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(database_url: str, *, pool_size: int, flavour: str = "dcibridge") -> AsyncEngine:
    if flavour == "dcibridge":
        # Imported here so that `--engine plain` needs nothing from dcibridge.
        from app.config import Settings
        from app.kit.db import create_engine as dcibridge_engine

        settings = Settings(_env_file=None, database_url=database_url, database_pool_size=pool_size)
        return dcibridge_engine(settings)
    if flavour != "plain":
        raise ValueError(f"unknown engine flavour {flavour!r}")
    plain = create_async_engine(database_url, pool_size=pool_size, max_overflow=0)
    if database_url.startswith("sqlite"):
        event.listen(plain.sync_engine, "connect", _sqlite_pragmas)
    return plain


def create_app(database_url: str, *, pool_size: int = 20, flavour: str = "dcibridge") -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(database_url, pool_size=pool_size, flavour=flavour)
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        app.state.engine = engine
        # Reads as dcibridge runs them: on its read-only engine (no transaction, so
        # no BEGIN and ROLLBACK round trips on PostgreSQL, no write lock on SQLite).
        # The plain flavour reads as SQLAlchemy's defaults do, in a transaction.
        app.state.read_engine = engine
        if flavour == "dcibridge":
            from app.kit.db import read_only

            app.state.read_engine = read_only(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(title="bench minimal app", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/orders", status_code=status.HTTP_202_ACCEPTED)
    async def create_order(data: OrderIn, request: Request) -> OrderOut:
        engine: AsyncEngine = request.app.state.engine
        async with engine.begin() as connection:
            row = (
                await connection.execute(
                    insert(orders)
                    .values(
                        external_id=data.external_id,
                        customer=data.customer.model_dump(),
                        configuration=data.configuration,
                        os_template_id=data.os_template_id,
                        ssh_keys=data.ssh_keys,
                        ipv4_count=data.ipv4_count,
                        created_at=datetime.now(UTC),
                    )
                    .returning(*orders.c)
                )
            ).one()
        return OrderOut.model_validate(row._asdict())

    @app.get("/api/v1/orders/{order_id}")
    async def get_order(
        order_id: Annotated[int, Path(ge=1, le=2**63 - 1)], request: Request
    ) -> OrderOut:
        engine: AsyncEngine = request.app.state.read_engine
        async with engine.connect() as connection:
            row = (
                await connection.execute(select(orders).where(orders.c.id == order_id))
            ).one_or_none()
        if row is None:
            raise HTTPException(status_code=404, detail="not found")
        return OrderOut.model_validate(row._asdict())

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.minimal_app",
        description=__doc__.split("\n\n")[0] if __doc__ else "",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_VARIABLE),
        help=f"SQLAlchemy async URL (default: ${DATABASE_URL_VARIABLE})",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=20,
        help="connections in the pool, no overflow (dcibridge's default 20)",
    )
    parser.add_argument(
        "--engine",
        choices=("dcibridge", "plain"),
        default="dcibridge",
        help="dcibridge's engine configuration (default) or SQLAlchemy's defaults",
    )
    parser.add_argument("--log-level", default="INFO", help="root logger level (default INFO)")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error(f"give --database-url or set {DATABASE_URL_VARIABLE}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(args.log_level.upper())
    # Called as `dcibridge serve` calls it (app/cli.py), so only the app differs.
    uvicorn.run(
        create_app(args.database_url, pool_size=args.pool_size, flavour=args.engine),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
