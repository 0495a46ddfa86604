"""The client against the DCImanager simulator, served over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.config import Settings
from app.dci.client import DCIClient, create_dci_client
from app.simulator.app import create_simulator_app
from app.simulator.clock import ManualClock
from app.simulator.inventory import AdminSpec
from app.simulator.runtime import Simulator
from tests.support.live_server import live_server

OP_SECONDS = 30.0


@dataclass
class LiveSimulator:
    app: FastAPI
    base_url: str
    clock: ManualClock

    @property
    def sim(self) -> Simulator:
        simulator = self.app.state.simulator
        assert isinstance(simulator, Simulator)
        return simulator

    def calls(self, endpoint: str) -> int:
        return self.sim.stats.by_endpoint[endpoint]

    def faults(self, **changes: Any) -> None:
        self.sim.faults.update(changes)

    def settle(self) -> None:
        """Let every long operation and address allocation finish."""
        self.clock.advance(OP_SECONDS + 1)


@pytest.fixture(scope="module")
def _served() -> Iterator[LiveSimulator]:
    clock = ManualClock()
    app = create_simulator_app(op_seconds=OP_SECONDS, clock=clock)
    with live_server(app) as base_url:
        yield LiveSimulator(app=app, base_url=base_url, clock=clock)


@pytest.fixture
def simulator(_served: LiveSimulator) -> LiveSimulator:
    _served.sim.reset()
    return _served


def client_settings(**overrides: Any) -> Settings:
    admin = AdminSpec()
    values: dict[str, Any] = {
        "dci_email": admin.email,
        "dci_password": SecretStr(admin.password),
        "dci_retry_503_seconds": 5.0,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
async def client(simulator: LiveSimulator) -> AsyncIterator[DCIClient]:
    async with create_dci_client(client_settings(), base_url=simulator.base_url) as dci:
        yield dci
