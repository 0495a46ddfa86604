"""The simulated DCImanager over real HTTP: auth rules, errors, lists and flows."""

from __future__ import annotations

from typing import Any

import pytest

from app.simulator import api_auth, api_dci, control, middleware
from app.simulator.inventory import Inventory
from tests.integration.simulator.conftest import Harness, HarnessFactory, seed_headers

CONFIG = "E-2288G-32Gb-2x480SSD"


def error_of(response: Any) -> tuple[int, int]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "msg", "value"}
    assert isinstance(body["error"]["msg"], str)
    assert body["error"]["msg"]
    assert body["error"]["value"] == {}
    return response.status_code, body["error"]["code"]


def free_count(harness: Harness, configuration: str = CONFIG) -> int:
    rows = harness.ok("GET", "/api/dci/v3/server/configuration")["list"]
    count: int = next(r["free_server_count"] for r in rows if r["configuration"] == configuration)
    return count


def create_user(harness: Harness, email: str = "client@example.com") -> int:
    body = {"email": email, "full_name": "C", "password": "client-pw", "role": "user"}
    user_id = harness.ok("POST", "/api/dci/v3/user", body=body)["id"]
    assert isinstance(user_id, int)
    return user_id


# -- authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    "drop", ["Cookie", "x-xsrf-token", "isp-box-instance"], ids=lambda h: f"without {h}"
)
def test_each_of_the_three_credentials_is_required(harness: Harness, drop: str) -> None:
    headers = seed_headers(harness.token)
    del headers[drop]
    response = harness.client.get("/api/dci/v3/server", headers=headers)
    assert error_of(response) == (401, 3001)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-xsrf-token": "OTHER", "isp-box-instance": "true"},
        {"isp-box-instance": "false"},
        {"Cookie": "ses6=0123456789ABCDEF01234567", "x-xsrf-token": "0123456789ABCDEF01234567"},
    ],
    ids=["xsrf differs", "box instance false", "unknown token"],
)
def test_wrong_credentials_are_refused(harness: Harness, headers: dict[str, str]) -> None:
    sent = seed_headers(harness.token) | headers
    assert error_of(harness.client.get("/api/dci/v3/user", headers=sent)) == (401, 3001)


def test_isp_session_header_may_replace_the_cookie(harness: Harness) -> None:
    headers = {
        "ISP-Session": harness.token,
        "x-xsrf-token": harness.token,
        "isp-box-instance": "true",
    }
    assert harness.client.get("/api/ip/v3/ipnet", headers=headers).status_code == 200


def test_bad_login_is_a_401_error_body(harness: Harness) -> None:
    response = harness.client.post(
        "/api/auth/v4/public/token", json={"email": "admin@dcimanager.local", "password": "no"}
    )
    assert error_of(response) == (401, 3002)
    assert error_of(harness.client.post("/api/auth/v4/public/token", json={})) == (400, 1000)


def test_login_answers_id_and_token_and_logout_ends_the_session(harness: Harness) -> None:
    response = harness.client.post(
        "/api/auth/v4/public/token",
        json={"email": "admin@dcimanager.local", "password": "dcisim-admin"},
    )
    answer = response.json()
    assert isinstance(answer["id"], str)
    assert isinstance(answer["token"], str)
    token = answer["token"]
    assert harness.call("GET", "/api/dci/v3/user", token=token).status_code == 200
    logout = harness.call("DELETE", f"/api/auth/v4/token/{token}", token=token)
    assert logout.status_code == 200
    assert error_of(harness.call("GET", "/api/dci/v3/user", token=token)) == (401, 3001)
    # The other session is untouched.
    assert harness.call("GET", "/api/dci/v3/user").status_code == 200


def test_created_users_can_log_in(harness: Harness) -> None:
    create_user(harness)
    token = harness.login("client@example.com", "client-pw")
    assert harness.call("GET", "/api/dci/v3/server", token=token).status_code == 200


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/api/dci/v3/no_such_thing", None, (404, 1106)),
        ("GET", "/api/vm/v3/host", None, (404, 1106)),
        ("PUT", "/api/dci/v3/server/1", None, (405, 1107)),
        ("GET", "/api/dci/v3/server/999", None, (404, 2001)),
        ("GET", "/api/dci/v3/server/abc", None, (400, 1000)),
        ("POST", "/api/dci/v3/server/999/power_on", {}, (404, 2001)),
        ("POST", "/api/dci/v3/server/1/owner", {"owner": 999}, (404, 2002)),
        ("POST", "/api/dci/v3/server/1/owner", {"owner": "me"}, (400, 1000)),
        ("DELETE", "/api/dci/v3/server/1/owner", None, (409, 2102)),
        ("POST", "/api/dci/v3/server/1/ip/999", {}, (404, 2003)),
        ("POST", "/api/dci/v3/server/1/ip", {"ip_net": 99}, (404, 2004)),
        ("POST", "/api/dci/v3/server/1/ip", {"ip_pool": 99}, (404, 2005)),
        ("POST", "/api/dci/v3/server/1/ip", {"family": "ipv6"}, (400, 1000)),
        ("POST", "/api/dci/v3/server/1/ip", {"ip_name": "203.0.113.1"}, (409, 2105)),
        ("POST", "/api/dci/v3/server/1/operation_os", {"os_template_id": 99}, (404, 2006)),
        ("POST", "/api/dci/v3/server/1/operation_os", {}, (400, 1000)),
        ("POST", "/api/dci/v3/server/1/operation_clear_hdd", {}, (400, 1000)),
        ("POST", "/api/dci/v3/user", {"email": "not-an-email"}, (400, 1000)),
        ("POST", "/api/dci/v3/user", {"email": "admin@dcimanager.local"}, (409, 2104)),
    ],
)
def test_errors_have_status_and_code(
    harness: Harness,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    expected: tuple[int, int],
) -> None:
    assert error_of(harness.call(method, path, body=body)) == expected


def test_malformed_json_body_is_a_400(harness: Harness) -> None:
    response = harness.client.post(
        "/api/dci/v3/user", headers=seed_headers(harness.token), content=b"{not json"
    )
    assert error_of(response) == (400, 1000)


# -- lists ------------------------------------------------------------------------------


def test_where_arrives_unescaped_as_public_clients_send_it(harness: Harness) -> None:
    harness.sim.dc.set_owner(4, 1)
    url = (
        "/api/dci/v3/server?where=(owner_email+IS+null)+AND+is_new+EQ+false"
        f"+AND+configuration+EQ+'{CONFIG}'&orderby=id+desc&limit=0,10"
    )
    response = harness.client.get(url, headers=seed_headers(harness.token))
    answer = response.json()
    assert [s["id"] for s in answer["list"]] == [6, 5]
    assert answer["size"] == 2


def test_size_is_the_total_before_limit(harness: Harness) -> None:
    answer = harness.ok("GET", "/api/dci/v3/server?limit=2,3")
    assert [s["id"] for s in answer["list"]] == [3, 4, 5]
    assert answer["size"] == 9


def test_quoted_literal_with_an_escaped_quote(harness: Harness) -> None:
    create_user(harness, "o'brien@example.com")
    response = harness.client.get(
        "/api/dci/v3/user",
        params={"where": "email EQ 'o''brien@example.com'"},
        headers=seed_headers(harness.token),
    )
    assert [u["email"] for u in response.json()["list"]] == ["o'brien@example.com"]


@pytest.mark.parametrize(
    "query",
    ["where=colour+EQ+'red'", "where=id+EQ", "orderby=colour", "limit=x"],
)
def test_bad_list_parameters_are_a_400(harness: Harness, query: str) -> None:
    response = harness.client.get(
        f"/api/dci/v3/server?{query}", headers=seed_headers(harness.token)
    )
    assert error_of(response) == (400, 1001)


def test_ip_list_filters_on_server_and_status(harness: Harness) -> None:
    for server in (1, 1, 2):
        harness.ok("POST", f"/api/dci/v3/server/{server}/ip", body={})
    answer = harness.ok("GET", "/api/dci/v3/ip?where=server+EQ+'1'+AND+status+EQ+'allocating'")
    assert [ip["name"] for ip in answer["list"]] == ["203.0.113.2", "203.0.113.3"]
    assert harness.ok("GET", "/api/dci/v3/ip?where=family+EQ+'ipv4'")["size"] == 3


# -- flows ------------------------------------------------------------------------------


def test_provisioning_flow(harness: Harness) -> None:
    before = free_count(harness)
    user = create_user(harness)
    [server] = harness.ok(
        "GET",
        f"/api/dci/v3/server?where=owner_email+IS+null+AND+configuration+EQ+'{CONFIG}'&limit=1",
    )["list"]
    server_id = server["id"]
    assert harness.ok("POST", f"/api/dci/v3/server/{server_id}/owner", body={"owner": user}) == {
        "id": server_id
    }
    assert free_count(harness) == before - 1
    again = harness.call("POST", f"/api/dci/v3/server/{server_id}/owner", body={"owner": user})
    assert error_of(again) == (409, 2101)
    users = harness.ok("GET", "/api/dci/v3/user?where=email+EQ+'client@example.com'")["list"]
    assert users[0]["server_count"] == 1

    allocated = harness.ok("POST", f"/api/dci/v3/server/{server_id}/ip", body={"ip_pool": 2})
    [ip] = harness.ok("GET", f"/api/dci/v3/server/{server_id}/ip")["list"]
    assert (ip["id"], ip["name"], ip["status"]) == (allocated["id"], "198.51.100.2", "allocating")
    assert (ip["gateway"], ip["network"], ip["server"]) == (
        "198.51.100.1",
        "198.51.100.0/24",
        str(server_id),
    )

    started = harness.ok(
        "POST",
        f"/api/dci/v3/server/{server_id}/operation_os",
        body={"os_template_id": 3, "password": "root-pw", "ssh_pub_keys": []},
    )
    assert started["id"] == server_id
    running = harness.ok("GET", f"/api/dci/v3/server/{server_id}")
    assert running["state"] == "operation"
    assert running["operation"]["id"] == started["task"]
    assert running["operation"]["status"] == "running"
    assert running["operation"]["type"] == "os_install"
    busy = harness.call(
        "POST", f"/api/dci/v3/server/{server_id}/operation_clear_hdd", body={"clear_hdd": "fast"}
    )
    assert error_of(busy) == (409, 2103)

    harness.clock.advance(2)
    done = harness.ok("GET", f"/api/dci/v3/server/{server_id}")
    assert (done["state"], done["power_status"]) == ("ok", "on")
    assert done["operation"]["status"] == "ok"
    assert done["operation"]["progress_info"] == {"progress": 100}
    assert done["os_template"] == {"id": 3, "name": "AlmaLinux 9"}
    assert done["owner_email"] == "client@example.com"
    assert [i["status"] for i in done["ip"]] == ["active"]
    pools = harness.ok("GET", "/api/ip/v3/ippool")["list"]
    assert [(p["using_ip"], p["total_ip"]) for p in pools] == [("0", "253"), ("1", "253")]


def test_termination_returns_the_server_to_stock_only_after_the_wipe(harness: Harness) -> None:
    user = create_user(harness)
    server = 4
    harness.ok("POST", f"/api/dci/v3/server/{server}/owner", body={"owner": user})
    ip = harness.ok("POST", f"/api/dci/v3/server/{server}/ip", body={})["id"]
    harness.clock.advance(1)
    stock = free_count(harness)

    harness.ok("POST", f"/api/dci/v3/server/{server}/suspend", body={})
    harness.ok("POST", f"/api/dci/v3/server/{server}/power_off", body={})
    harness.ok(
        "POST", f"/api/dci/v3/server/{server}/operation_clear_hdd", body={"clear_hdd": "fast"}
    )
    assert harness.ok("POST", f"/api/dci/v3/server/{server}/ip/{ip}", body={})["id"] == ip
    harness.ok("DELETE", f"/api/dci/v3/server/{server}/owner")
    assert free_count(harness) == stock
    networks = harness.ok("GET", "/api/ip/v3/ipnet")["list"]
    assert networks[0]["using_ip"] == "0"

    harness.clock.advance(2)
    assert free_count(harness) == stock + 1
    state = harness.client.get("/_sim/state").json()
    inspected = next(s for s in state["servers"] if s["id"] == server)
    assert inspected["wipe_count"] == 1
    assert inspected["ports"] == [{"admin_status": "down", "oper_status": "down"}]
    assert (inspected["power_status"], inspected["ips"], inspected["free"]) == ("off", [], True)


def test_ip_belonging_to_another_server_cannot_be_removed(harness: Harness) -> None:
    ip = harness.ok("POST", "/api/dci/v3/server/1/ip", body={})["id"]
    assert error_of(harness.call("POST", f"/api/dci/v3/server/2/ip/{ip}", body={})) == (409, 2107)
    assert [i["id"] for i in harness.ok("GET", "/api/dci/v3/server/1/ip")["list"]] == [ip]


def test_named_address_and_exhaustion(start_simulator: HarnessFactory) -> None:
    inventory = Inventory.model_validate({"networks": [{"cidr": "192.0.2.0/29", "pool": "tiny"}]})
    harness = start_simulator(inventory=inventory)
    named = harness.ok("POST", "/api/dci/v3/server/1/ip", body={"ip_name": "192.0.2.5"})
    taken = harness.call("POST", "/api/dci/v3/server/2/ip", body={"ip_name": "192.0.2.5"})
    assert error_of(taken) == (409, 2105)
    names = [
        harness.ok("GET", "/api/dci/v3/ip?where=id+EQ+" + str(answer["id"]))["list"][0]["name"]
        for answer in [harness.ok("POST", "/api/dci/v3/server/2/ip", body={}) for _ in range(4)]
    ]
    assert names == ["192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.6"]
    assert error_of(harness.call("POST", "/api/dci/v3/server/3/ip", body={})) == (409, 2106)
    harness.ok("POST", f"/api/dci/v3/server/1/ip/{named['id']}", body={})
    reused = harness.ok("POST", "/api/dci/v3/server/3/ip", body={})
    assert harness.ok("GET", f"/api/dci/v3/ip?where=id+EQ+{reused['id']}")["list"][0]["name"] == (
        "192.0.2.5"
    )


class RecordingLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))


def test_passwords_and_tokens_appear_in_no_answer_and_no_log(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = RecordingLog()
    for module in (api_auth, api_dci, control, middleware):
        monkeypatch.setattr(module, "log", recorder)
    secrets = ["client-pw", "install-root-pw"]
    answers = []
    user = create_user(harness)
    token = harness.login("client@example.com", "client-pw")
    secrets.append(token)
    answers.append(harness.call("GET", "/api/dci/v3/user").text)
    harness.ok("POST", "/api/dci/v3/server/1/owner", body={"owner": user})
    harness.ok(
        "POST",
        "/api/dci/v3/server/1/operation_os",
        body={"os_template_id": 1, "password": "install-root-pw"},
    )
    harness.call("DELETE", f"/api/auth/v4/token/{token}", token=token)
    harness.clock.advance(5)
    answers.append(harness.call("GET", "/api/dci/v3/server/1").text)
    answers.append(harness.client.get("/_sim/state").text)

    logged = repr(recorder.events)
    assert "simulator.operation_started" in logged
    assert "simulator.request" in logged
    for secret in secrets:
        assert secret not in logged
        for answer in answers:
            assert secret not in answer


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("id+EQ+3+OR+id+EQ+1+OR+id+EQ+999", id="ids-only"),
        pytest.param("(id+EQ+'3'+OR+id+EQ+1)+AND+state+EQ+'ok'", id="ids-and-more"),
    ],
)
def test_a_filter_on_ids_answers_exactly_the_servers_it_names(harness: Harness, where: str) -> None:
    answer = harness.ok("GET", f"/api/dci/v3/server?where={where}")
    assert [server["id"] for server in answer["list"]] == [1, 3]
    assert answer["size"] == 2
    # Each item is the whole server, as a single read shows it.
    assert answer["list"][1] == harness.ok("GET", "/api/dci/v3/server/3")
