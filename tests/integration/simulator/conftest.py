"""A simulator served over real HTTP, with a manual clock and a logged-in admin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.simulator.app import create_simulator_app
from app.simulator.clock import ManualClock
from app.simulator.inventory import DEFAULT_ADMIN_PASSWORD
from app.simulator.runtime import Simulator
from tests.support.live_server import live_server

ADMIN_EMAIL = "admin@dcimanager.local"


def seed_headers(token: str) -> dict[str, str]:
    """The three credentials every curl line of the vendor's examples sends."""
    return {"Cookie": f"ses6={token}", "x-xsrf-token": token, "isp-box-instance": "true"}


@dataclass
class Harness:
    app: FastAPI
    client: httpx.Client
    clock: ManualClock
    token: str = ""

    @property
    def sim(self) -> Simulator:
        simulator = self.app.state.simulator
        assert isinstance(simulator, Simulator)
        return simulator

    def login(self, email: str = ADMIN_EMAIL, password: str = DEFAULT_ADMIN_PASSWORD) -> str:
        response = self.client.post(
            "/api/auth/v4/public/token", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        token = response.json()["token"]
        assert isinstance(token, str)
        return token

    def call(
        self, method: str, path: str, *, body: Any = None, token: str | None = None
    ) -> httpx.Response:
        return self.client.request(
            method, path, headers=seed_headers(token or self.token), json=body
        )

    def ok(self, method: str, path: str, *, body: Any = None) -> Any:
        response = self.call(method, path, body=body)
        assert response.status_code == 200, response.text
        return response.json()


HarnessFactory = Callable[..., Harness]


def _serve(stack: ExitStack, **options: Any) -> Harness:
    clock = options.setdefault("clock", ManualClock())
    options.setdefault("servers_per_configuration", 3)
    app = create_simulator_app(**options)
    base_url = stack.enter_context(live_server(app))
    client = stack.enter_context(httpx.Client(base_url=base_url, timeout=10))
    return Harness(app, client, clock)


@pytest.fixture
def start_simulator() -> Iterator[HarnessFactory]:
    """Start a simulator of its own (``create_simulator_app`` keywords), admin logged in."""
    with ExitStack() as stack:

        def start(**options: Any) -> Harness:
            harness = _serve(stack, **options)
            harness.token = harness.login()
            return harness

        yield start


@pytest.fixture(scope="session")
def _shared_simulator() -> Iterator[Harness]:
    # Starting and stopping uvicorn costs a few hundred milliseconds; tests that
    # need no special construction share one server, reset between tests.
    with ExitStack() as stack:
        yield _serve(stack)


@pytest.fixture
def harness(_shared_simulator: Harness) -> Harness:
    """The shared simulator, back at its initial inventory, admin logged in."""
    response = _shared_simulator.client.post("/_sim/reset")
    assert response.status_code == 200
    _shared_simulator.token = _shared_simulator.login()
    return _shared_simulator
