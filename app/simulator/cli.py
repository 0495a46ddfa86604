"""``dcibridge simulator``: serve a simulated DCImanager 6 over HTTP."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from app.config import LogFormat
from app.kit.heap import settle_heap
from app.kit.logging import configure_logging
from app.simulator.app import create_simulator_app
from app.simulator.inventory import Inventory, load_inventory


def run_simulator(
    *,
    host: str,
    port: int,
    inventory_path: Path | None,
    servers: int | None,
    op_seconds: float | None,
) -> None:
    """Print where and how to log in, then serve until interrupted."""
    inventory = load_inventory(inventory_path) if inventory_path else Inventory()
    app = create_simulator_app(
        inventory=inventory, servers_per_configuration=servers, op_seconds=op_seconds
    )
    admin = inventory.admin
    # The credential is a simulator's, printed on purpose so a demo can use it.
    sys.stdout.write(
        f"DCImanager 6 simulator on http://{host}:{port}\n"
        f"  admin email:    {admin.email}\n"
        f"  admin password: {admin.password}\n"
        f"  inspect:        http://{host}:{port}/_sim/state\n"
    )
    sys.stdout.flush()
    configure_logging(level="INFO", log_format=LogFormat.CONSOLE)
    settle_heap()
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
