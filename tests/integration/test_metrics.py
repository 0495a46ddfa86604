"""/metrics after a lifecycle run: the counters and histograms moved as they should."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from app.config import Settings
from tests.support.bridge import Bridge
from tests.support.metrics import scrape, value


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    return engine_settings.model_copy(update={"metrics_token": SecretStr("scrape-me-please")})


async def test_lifecycle_moves_the_counters(bridge: Bridge) -> None:
    auth = {"authorization": "Bearer scrape-me-please"}
    refused = await bridge.api.get("/metrics", headers={"authorization": "Bearer wrong"})
    assert refused.status_code == 401

    before = await scrape(bridge.api, **auth)
    order = await bridge.create("svc-metrics")
    order = await bridge.wait_order(order["id"], lambda o: o["status"] == "active")
    await bridge.request(order["id"], "terminate")
    await bridge.wait_order(order["id"], lambda o: o["status"] == "terminated")
    after = await scrape(bridge.api, **auth)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("dcibridge_operations_total", kind="provision", outcome="succeeded") == 1
    assert delta("dcibridge_operations_total", kind="terminate", outcome="succeeded") == 1
    assert delta("dcibridge_step_duration_seconds_count", step="install_os") >= 2  # start + poll
    assert delta("dcibridge_step_duration_seconds_sum", step="install_os") > 0
    assert (
        delta(
            "dcibridge_dci_calls_total",
            method="POST",
            endpoint="/api/dci/v3/server/{id}/operation_os",
            status="200",
        )
        == 1
    )
    assert (
        delta(
            "dcibridge_dci_call_duration_seconds_count",
            method="GET",
            endpoint="/api/dci/v3/server/{id}",
        )
        > 0
    )
    assert (
        delta("dcibridge_http_requests_total", method="POST", route="/api/v1/orders", status="202")
        == 1
    )
    assert (
        delta(
            "dcibridge_http_request_duration_seconds_count",
            method="GET",
            route="/api/v1/orders/{order_id}",
        )
        >= 2
    )
    assert value(after, "dcibridge_queue_depth", status="queued") == 0
    assert value(after, "dcibridge_queue_depth", status="running") == 0
    assert 0 <= value(after, "dcibridge_worker_heartbeat_age_seconds") < 30
