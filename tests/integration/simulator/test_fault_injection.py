"""Fault injection, seen from a client over real HTTP."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from app.simulator import middleware
from app.simulator.app import create_simulator_app
from app.simulator.faults import FaultConfig
from tests.integration.simulator.conftest import Harness, HarnessFactory, seed_headers


def set_faults(harness: Harness, **changes: Any) -> dict[str, Any]:
    response = harness.client.post("/_sim/faults", json=changes)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def owner_of(harness: Harness, server_id: int) -> str | None:
    servers = harness.client.get("/_sim/state").json()["servers"]
    owner: str | None = next(s["owner_email"] for s in servers if s["id"] == server_id)
    return owner


def test_503_comes_before_anything_is_done(harness: Harness) -> None:
    set_faults(harness, error_503_rate=1.0)
    response = harness.call("POST", "/api/dci/v3/server/1/owner", body={"owner": 1})
    assert response.status_code == 503
    assert response.json() == {
        "error": {"code": 5003, "msg": "Service temporarily unavailable", "value": {}}
    }
    assert owner_of(harness, 1) is None
    # Even a bad token: a suspended service does not get as far as checking it.
    assert harness.call("GET", "/api/dci/v3/server", token="WRONG").status_code == 503
    calls = harness.client.get("/_sim/state").json()["calls"]
    assert calls["injected_503"] == 2
    assert calls["by_endpoint"]["POST /api/dci/v3/server/{server_id}/owner"] == 1


def statuses(harness: Harness, n: int = 40) -> list[int]:
    return [harness.call("GET", "/api/dci/v3/user").status_code for _ in range(n)]


def test_503_rate_is_a_fraction_and_reproducible_by_seed(harness: Harness) -> None:
    set_faults(harness, error_503_rate=0.5, seed=11)
    first = statuses(harness)
    set_faults(harness, seed=11)
    assert statuses(harness) == first
    assert set(first) == {200, 503}


def test_down_answers_503_to_everything_including_login(harness: Harness) -> None:
    set_faults(harness, down=True)
    response = harness.client.post(
        "/api/auth/v4/public/token",
        json={"email": "admin@dcimanager.local", "password": "dcisim-admin"},
    )
    assert response.status_code == 503
    assert harness.client.get("/_sim/state").status_code == 200
    set_faults(harness, down=False)
    assert harness.call("GET", "/api/dci/v3/user").status_code == 200


def test_dropped_write_answer_is_a_transport_error_but_the_write_happened(
    harness: Harness,
) -> None:
    set_faults(harness, drop_write_response_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        harness.call("POST", "/api/dci/v3/server/2/owner", body={"owner": 1})
    assert owner_of(harness, 2) == "admin@dcimanager.local"
    # Reads and refused writes keep their answers.
    assert harness.call("GET", "/api/dci/v3/server/2").json()["owner_email"] is not None
    refused = harness.call("POST", "/api/dci/v3/server/2/owner", body={"owner": 1})
    assert refused.status_code == 409
    assert harness.client.get("/_sim/state").json()["calls"]["dropped_responses"] == 1


async def test_dropped_write_in_process_is_the_same_transport_error() -> None:
    # An ASGI transport has no connection to cut: the app's exception is what an
    # in-process client sees, so it is made the error a networked client gets.
    app = create_simulator_app(faults=FaultConfig(drop_write_response_rate=1.0))
    token = app.state.simulator.sessions.issue(1).token
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sim"
    ) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(
                "/api/dci/v3/server/1/power_on", headers=seed_headers(token), content=b"{}"
            )
    assert app.state.simulator.dc.server(1).power_status == "on"


def test_tokens_expire_after_the_ttl(harness: Harness) -> None:
    set_faults(harness, token_ttl_seconds=30)
    fresh = harness.login()
    harness.clock.advance(29)
    assert harness.call("GET", "/api/dci/v3/user", token=fresh).status_code == 200
    harness.clock.advance(1)
    expired = harness.call("GET", "/api/dci/v3/user", token=fresh)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == 3001
    assert harness.call("GET", "/api/dci/v3/user", token=harness.login()).status_code == 200


def test_fail_rate_fails_long_operations(harness: Harness) -> None:
    set_faults(harness, fail_rate={"os_install": 1.0})
    task = harness.ok("POST", "/api/dci/v3/server/1/operation_os", body={"os_template_id": 1})
    harness.clock.advance(60)
    server = harness.ok("GET", "/api/dci/v3/server/1")
    assert server["operation"]["id"] == task["task"]
    assert server["operation"]["status"] == "fail"
    assert server["state"] == "error"
    assert server["os_template"] is None
    diag = harness.ok("POST", "/api/dci/v3/server/1/operation_diag", body={})
    harness.clock.advance(60)
    server = harness.ok("GET", "/api/dci/v3/server/1")
    assert (server["operation"]["id"], server["state"]) == (diag["task"], "ok")


def test_failed_ip_allocation_returns_the_address_to_the_pool(harness: Harness) -> None:
    set_faults(harness, fail_rate={"ip_allocate": 1.0})
    harness.ok("POST", "/api/dci/v3/server/1/ip", body={})
    assert harness.ok("GET", "/api/ip/v3/ipnet")["list"][0]["using_ip"] == "1"
    harness.clock.advance(60)
    [ip] = harness.ok("GET", "/api/dci/v3/server/1/ip")["list"]
    assert ip["status"] == "failed"
    assert harness.ok("GET", "/api/ip/v3/ipnet")["list"][0]["using_ip"] == "0"


def test_fault_settings_given_at_construction_apply(start_simulator: HarnessFactory) -> None:
    harness = start_simulator(faults=FaultConfig(fail_rate={"diag": 1.0}, seed=3))
    harness.ok("POST", "/api/dci/v3/server/1/operation_diag", body={})
    harness.clock.advance(60)
    assert harness.ok("GET", "/api/dci/v3/server/1")["state"] == "error"
    assert harness.client.get("/_sim/faults").json()["fail_rate"] == {"diag": 1.0}


async def test_latency_is_added_to_api_calls_only(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(middleware, "asyncio", SimpleNamespace(sleep=fake_sleep))
    app = create_simulator_app(faults=FaultConfig(latency_ms=250))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sim"
    ) as client:
        await client.get("/_sim/state")
        assert slept == []
        await client.get("/api/dci/v3/server")
        assert slept == [0.25]
