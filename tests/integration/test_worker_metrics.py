"""A worker's own GET /metrics: served on its port with the API's token rules, and
a taken port stops the worker with a clear message."""

from __future__ import annotations

import socket

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.config import ConfigurationError, Settings
from app.health.worker_metrics import serving_worker_metrics
from app.kit.metrics import OPERATIONS
from tests.support.live_server import free_port
from tests.support.metrics import scrape, value

TOKEN = "scrape-the-worker"


async def test_the_worker_serves_its_own_counters_behind_the_token(
    settings: Settings, db_engine: AsyncEngine
) -> None:
    port = free_port()
    settings = settings.model_copy(
        update={"worker_metrics_port": port, "metrics_token": SecretStr(TOKEN)}
    )
    async with (
        serving_worker_metrics(settings, async_sessionmaker(db_engine)),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        refused = await client.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        before = await scrape(client, authorization=f"Bearer {TOKEN}")
        OPERATIONS.labels("reinstall", "failed").inc()
        after = await scrape(client, authorization=f"Bearer {TOKEN}")
        name, labels = "dcibridge_operations_total", {"kind": "reinstall", "outcome": "failed"}
        assert value(after, name, **labels) - value(before, name, **labels) == 1
        # Shared gauges are read from the database at scrape time, as on the API.
        assert ("dcibridge_queue_depth", (("status", "queued"),)) in after
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/metrics")


async def test_a_taken_port_is_a_configuration_error(
    settings: Settings, db_engine: AsyncEngine
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = settings.model_copy(update={"worker_metrics_port": port})
        with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}.*WORKER_METRICS_PORT"):
            async with serving_worker_metrics(settings, async_sessionmaker(db_engine)):
                pass
