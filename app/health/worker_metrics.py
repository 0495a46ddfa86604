"""The GET /metrics of a worker started apart from the API (`dcibridge worker`).

Counters and histograms of operations and steps (how many settled, how long each
step took, every DCImanager call) live in the process that ran them. With
workers in processes of their own, the API's /metrics never sees them, so each
worker serves the same endpoint, token included, on
``DCIBRIDGE_WORKER_METRICS_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import structlog
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import ConfigurationError, Settings
from app.health.metrics import router as metrics_router
from app.kit.errors import install_error_handlers

log = structlog.get_logger(__name__)


def create_metrics_app(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.sessionmaker = sessionmaker
    install_error_handlers(app)
    app.include_router(metrics_router)
    return app


class _MetricsServer(uvicorn.Server):
    """Leaves SIGTERM and SIGINT to the worker, which stops this server as it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving_worker_metrics(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[None]:
    port = settings.worker_metrics_port
    if port is None:
        yield
        return
    try:
        # Bound here, so that a taken port stops the worker with a clear message.
        listening = socket.create_server((settings.host, port))
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve worker metrics on {settings.host}:{port} "
            f"(DCIBRIDGE_WORKER_METRICS_PORT): {exc.strerror}"
        ) from None
    config = uvicorn.Config(
        create_metrics_app(settings, sessionmaker),
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = _MetricsServer(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]), name="worker-metrics")
    log.info("worker.metrics.serving", host=settings.host, port=port)
    try:
        yield
    finally:
        server.should_exit = True
        await serving
        listening.close()
