"""``/_sim/*``: inspection and steering, separate from the DCImanager API."""

from __future__ import annotations

from tests.integration.simulator.conftest import Harness


def test_state_reports_servers_users_ips_and_call_counters(harness: Harness) -> None:
    harness.ok("POST", "/api/dci/v3/server/1/owner", body={"owner": 1})
    harness.ok("POST", "/api/dci/v3/server/1/ip", body={})
    harness.ok("POST", "/api/dci/v3/server/1/operation_os", body={"os_template_id": 2})
    harness.call("GET", "/api/dci/v3/server/1")
    harness.call("GET", "/api/dci/v3/server/2")

    state = harness.client.get("/_sim/state").json()
    server = state["servers"][0]
    assert server["owner_email"] == "admin@dcimanager.local"
    assert (server["free"], server["state"], server["os_install_count"]) == (False, "operation", 1)
    assert server["ips"] == ["203.0.113.2"]
    assert state["ips"] == [
        {
            "id": 1,
            "address": "203.0.113.2",
            "server": 1,
            "status": "allocating",
            "network": "203.0.113.0/24",
        }
    ]
    assert [u["email"] for u in state["users"]] == ["admin@dcimanager.local"]
    assert state["free_servers"]["i9-9900K-64Gb-2x1024NVMe"] == 2
    calls = state["calls"]
    assert calls["by_endpoint"]["GET /api/dci/v3/server/{server_id}"] == 2
    assert calls["by_endpoint"]["POST /api/auth/v4/public/token"] == 1
    assert calls["total"] == 6
    assert state["sessions"] == 1


def test_reset_restores_the_inventory_and_clears_faults_and_sessions(harness: Harness) -> None:
    harness.ok("POST", "/api/dci/v3/user", body={"email": "x@example.com"})
    harness.ok("POST", "/api/dci/v3/server/1/owner", body={"owner": 2})
    harness.client.post("/_sim/faults", json={"latency_ms": 5, "fail_rate": {"diag": 1}})

    assert harness.client.post("/_sim/reset").json() == {"reset": True}

    state = harness.client.get("/_sim/state").json()
    assert [u["email"] for u in state["users"]] == ["admin@dcimanager.local"]
    assert all(s["owner_email"] is None and s["free"] for s in state["servers"])
    assert state["faults"]["latency_ms"] == 0
    assert state["faults"]["fail_rate"] == {}
    assert (state["sessions"], state["calls"]["total"]) == (0, 0)
    assert harness.call("GET", "/api/dci/v3/user").status_code == 401


def test_faults_accept_partial_updates_and_refuse_bad_ones(harness: Harness) -> None:
    assert harness.client.post("/_sim/faults", json={"latency_ms": 3}).json()["latency_ms"] == 3
    updated = harness.client.post("/_sim/faults", json={"error_503_rate": 0.25}).json()
    assert (updated["latency_ms"], updated["error_503_rate"]) == (3, 0.25)
    assert harness.client.get("/_sim/faults").json() == updated
    for bad in ({"error_503_rate": 2}, {"nonsense": 1}, [1, 2]):
        response = harness.client.post("/_sim/faults", json=bad)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == 1000
    assert harness.client.get("/_sim/faults").json() == updated


def test_skipping_time_finishes_operations(harness: Harness) -> None:
    harness.ok("POST", "/api/dci/v3/server/2/operation_clear_hdd", body={"clear_hdd": "fast"})
    assert harness.ok("GET", "/api/dci/v3/server/2")["state"] == "operation"
    before = harness.client.get("/_sim/state").json()["now"]
    now = harness.client.post("/_sim/clock", json={"advance_seconds": 3}).json()["now"]
    assert now == before + 3
    assert harness.ok("GET", "/api/dci/v3/server/2")["state"] == "ok"
    bad = harness.client.post("/_sim/clock", json={"advance_seconds": -1})
    assert bad.status_code == 400


def test_cancel_makes_the_last_operation_canceled_and_the_server_free(harness: Harness) -> None:
    harness.ok("POST", "/api/dci/v3/server/3/operation_os", body={"os_template_id": 1})
    cancelled = harness.client.post("/_sim/server/3/cancel").json()
    assert cancelled["status"] == "canceled"
    server = harness.ok("GET", "/api/dci/v3/server/3")
    assert (server["state"], server["operation"]["status"]) == ("ok", "canceled")
    again = harness.client.post("/_sim/server/3/cancel")
    assert (again.status_code, again.json()["error"]["code"]) == (409, 2108)
