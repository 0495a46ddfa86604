"""Alembic environment: async engine, batch mode on SQLite, URL from dcibridge settings."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url() -> str:
    # Callers inside the application pass the URL explicitly; the plain `alembic`
    # command falls back to the environment through the one Settings definition.
    explicit = config.attributes.get("database_url")
    if explicit:
        return str(explicit)
    from pydantic_settings import BaseSettings, SettingsConfigDict

    from app.config import DEFAULT_SQLITE_URL

    class _DatabaseOnly(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="DCIBRIDGE_", env_file=".env", extra="ignore")
        database_url: str = DEFAULT_SQLITE_URL

    return _DatabaseOnly().database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=False,
    )


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_database_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
    else:
        asyncio.run(_run_online())
