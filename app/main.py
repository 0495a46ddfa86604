"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import APIRouter, FastAPI

from app.auth.endpoints import router as auth_router
from app.config import Settings, load_settings
from app.health.checks import database_check
from app.health.endpoints import router as health_router
from app.kit.db import create_engine, create_sessionmaker
from app.kit.errors import install_error_handlers
from app.kit.logging import configure_logging
from app.kit.middleware import RequestContextMiddleware

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine(settings)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.readiness_checks = {"database": database_check(engine)}
    if settings.simulator_mode:
        log.warning(
            "dci.simulator_mode",
            message="SIMULATOR MODE: no DCIBRIDGE_DCI_URL is set, so dcibridge drives its "
            "built-in DCImanager 6 simulator. No real server will be touched.",
        )
    log.info("app.started", database=engine.url.render_as_string(hide_password=True))
    try:
        yield
    finally:
        await engine.dispose()
        log.info("app.stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(level=settings.log_level, log_format=settings.effective_log_format)
    app = FastAPI(
        title="dcibridge",
        summary="Billing-to-bare-metal bridge for ISPsystem DCImanager 6",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(auth_router)
    app.include_router(api)
    app.include_router(health_router)
    return app
