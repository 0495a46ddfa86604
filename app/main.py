"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from app.admin.endpoints import router as admin_router
from app.auth.endpoints import router as auth_router
from app.callbacks.endpoints import router as callbacks_router
from app.config import Settings, load_settings
from app.health.checks import (
    ReadinessCheck,
    database_check,
    dci_check,
    migrations_check,
    worker_check,
)
from app.health.endpoints import router as health_router
from app.health.metrics import router as metrics_router
from app.idempotency.middleware import IdempotencyMiddleware
from app.kit.api import API_PREFIX, flat_routes
from app.kit.db import read_only
from app.kit.errors import install_error_handlers
from app.kit.heap import settle_heap
from app.kit.logging import configure_logging
from app.kit.middleware import RequestContextMiddleware
from app.kit.openapi import document_idempotency
from app.orders.endpoints import router as orders_router
from app.runtime import Runtime, build_runtime, create_embedded_simulator
from app.stock.endpoints import router as stock_router
from app.webhooks.endpoints import router as webhooks_router

log = structlog.get_logger(__name__)

SIMULATOR_MOUNT = "/simulator"


def _readiness_checks(runtime: Runtime) -> dict[str, ReadinessCheck]:
    settings = runtime.settings
    return {
        "database": database_check(runtime.engine),
        "migrations": migrations_check(runtime.engine),
        "dcimanager": dci_check(runtime.dci),
        "worker": worker_check(
            runtime.sessionmaker, stale_after_seconds=3 * settings.worker_heartbeat_seconds
        ),
    }


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.simulator_mode:
        log.warning(
            "dci.simulator_mode",
            message="SIMULATOR MODE: no DCIBRIDGE_DCI_URL is set, so dcibridge drives its "
            f"built-in DCImanager 6 simulator (inspect it at {SIMULATOR_MOUNT}/_sim/state). "
            "No real server will be touched.",
        )
    async with build_runtime(settings, simulator=app.state.simulator) as runtime:
        state = app.state
        state.runtime = runtime
        state.sessionmaker = runtime.sessionmaker
        state.read_engine = read_only(runtime.engine)
        state.secrets = runtime.secrets
        state.stock = runtime.stock
        state.readiness_checks = _readiness_checks(runtime)
        worker_task: asyncio.Task[None] | None = None
        state.worker = None
        if settings.run_worker:
            state.worker = runtime.worker()
            worker_task = asyncio.create_task(state.worker.run(), name="worker")
        log.info(
            "app.started",
            database=runtime.engine.url.render_as_string(hide_password=True),
            worker="embedded" if settings.run_worker else "external",
        )
        if state.owns_process:
            settle_heap()
        try:
            yield
        finally:
            if worker_task is not None:
                state.worker.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            log.info("app.stopped")


def create_app(settings: Settings | None = None, *, owns_process: bool = False) -> FastAPI:
    """``owns_process``: the app is the process's whole program (``dcibridge serve``),
    so it may tune process-wide settings such as the garbage collector's."""
    settings = settings or load_settings()
    configure_logging(level=settings.log_level, log_format=settings.effective_log_format)
    app = FastAPI(
        title="dcibridge",
        summary="Billing-to-bare-metal bridge for ISPsystem DCImanager 6",
        version="0.1.0",
        lifespan=lifespan,
        # The order routes first: they are matched in turn, and billing polls the read.
        routes=flat_routes(
            orders_router, auth_router, callbacks_router, stock_router, webhooks_router
        ),
    )
    app.state.settings = settings
    app.state.owns_process = owns_process
    install_error_handlers(app)
    app.add_middleware(IdempotencyMiddleware, path_prefix=f"{API_PREFIX}/")
    app.add_middleware(RequestContextMiddleware)

    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(admin_router)

    document_idempotency(app)

    app.state.simulator = None
    if settings.simulator_mode:
        app.state.simulator = create_embedded_simulator(settings)
        simulator_app, _ = app.state.simulator
        app.mount(SIMULATOR_MOUNT, simulator_app)
    return app
