"""Build the simulator's ASGI app."""

from __future__ import annotations

import time

from fastapi import FastAPI

from app.simulator import api_auth, api_dci, api_ip, control
from app.simulator.faults import FaultConfig
from app.simulator.handlers import install_error_handlers
from app.simulator.inventory import Inventory
from app.simulator.middleware import FaultMiddleware, quiet_dropped_responses
from app.simulator.runtime import Simulator
from app.simulator.state import Clock

API_MODULES = (api_auth, api_dci, api_ip)


def create_simulator_app(
    *,
    inventory: Inventory | None = None,
    servers_per_configuration: int | None = None,
    op_seconds: float | None = None,
    faults: FaultConfig | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """A DCImanager 6 look-alike; its :class:`Simulator` is ``app.state.simulator``.

    ``servers_per_configuration`` and ``op_seconds`` override the inventory's
    server counts and long-operation durations; ``clock`` (seconds, default
    :func:`time.monotonic`) lets tests decide when operations finish.
    """
    simulator = Simulator(
        (inventory or Inventory()).with_overrides(
            servers_per_configuration=servers_per_configuration, op_seconds=op_seconds
        ),
        faults=faults or FaultConfig(),
        clock=clock or time.monotonic,
    )
    app = FastAPI(title="DCImanager 6 simulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.simulator = simulator
    install_error_handlers(app)
    for module in (*API_MODULES, control):
        app.include_router(module.router)
    api_routes = [route for module in API_MODULES for route in module.router.routes]
    app.add_middleware(FaultMiddleware, simulator=simulator, routes=api_routes)
    quiet_dropped_responses()
    return app
