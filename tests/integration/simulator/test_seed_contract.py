"""Replays every request of the vendor's "Examples of API use" page against the
simulator over real HTTP, exactly as its curl lines send them, and checks that
each answer carries every field the page shows, with the same JSON type.

The page is kept verbatim in tests/fixtures/dcimanager6/examples-of-api-use.txt;
the method, path, body and answer of each example are copied below. The page
leaves the server object collapsed ("Response in JSON"), so its shape comes from
the project's API notes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from tests.integration.simulator.conftest import Harness, seed_headers

SEED_FILE = (
    Path(__file__).resolve().parents[2] / "fixtures" / "dcimanager6" / "examples-of-api-use.txt"
)


class Nullable:
    """A field the simulator may leave null (e.g. no owner yet); typed when present."""

    def __init__(self, example: Any) -> None:
        self.example = example


ID = {"id": 0}
ID_TASK = {"id": 0, "task": 0}
IP = {
    "domain": "string",
    "family": "ipv4",
    "gateway": "string",
    "id": 0,
    "name": "string",
    "network": "string",
    "server": "string",
    "status": "allocating",
    "status_info": {},
}
SERVER = {
    "id": 0,
    "domain": "string",
    "configuration": "string",
    "state": "string",
    "state_info": {},
    "hardware_info": {},
    "operation": Nullable(
        {"id": 0, "status": "string", "status_info": {}, "progress_info": {"progress": 0}}
    ),
    "os_template": Nullable({"id": 0, "name": "string"}),
    "ip": [],
    "switch_connection": [{"admin_status": "string", "oper_status": "string"}],
    "pdu_connection": [],
    "owner_email": Nullable("string"),
    "is_new": False,
    "location_id": 0,
    "power_status": "string",
}


@dataclass(frozen=True)
class SeedCall:
    title: str
    method: str
    path: str
    answer: dict[str, Any]
    body: str | None = None
    # Seed placeholders in the path or body, and what this replay puts there.
    values: dict[str, Any] = field(default_factory=dict)


SEED_CALLS = [
    SeedCall(
        "Number of free servers and their configuration",
        "GET",
        "/api/dci/v3/server/configuration",
        {"list": [{"configuration": "i9-9900K-64Gb-2x1024NVMe", "free_server_count": 42}]},
    ),
    SeedCall("List of servers", "GET", "/api/dci/v3/server", {"list": [SERVER]}),
    SeedCall("Server info by ID", "GET", "/api/dci/v3/server/server_id", SERVER),
    SeedCall(
        "List of all users",
        "GET",
        "/api/dci/v3/user",
        {
            "list": [
                {
                    "id": 0,
                    "email": "string",
                    "server_count": 0,
                    "roles": "[@user]",
                    "vlans_per_user": 5,
                }
            ]
        },
    ),
    SeedCall(
        "Adding a user",
        "POST",
        "/api/dci/v3/user",
        ID,
        '{"email":"admin@example.com","full_name":"name","password":"pass",'
        '"phone_number":"phone","role":"level"}',
    ),
    SeedCall(
        "User assignment as server owner",
        "POST",
        "/api/dci/v3/server/server_id/owner",
        ID,
        '{"owner":user_id}',
        {"server_id": "FREE_SERVER", "user_id": "CLIENT"},
    ),
    SeedCall("Server release", "DELETE", "/api/dci/v3/server/server_id/owner", ID),
    SeedCall(
        "Activate server connection ports",
        "POST",
        "/api/dci/v3/server/server_id/resume",
        ID_TASK,
        "{}",
    ),
    SeedCall(
        "Deactivate server connection ports",
        "POST",
        "/api/dci/v3/server/server_id/suspend",
        ID_TASK,
        "{}",
    ),
    SeedCall("Power on", "POST", "/api/dci/v3/server/server_id/power_on", ID_TASK, "{}"),
    SeedCall("Power off", "POST", "/api/dci/v3/server/server_id/power_off", ID_TASK, "{}"),
    SeedCall("Reboot", "POST", "/api/dci/v3/server/server_id/power_reset", ID_TASK, "{}"),
    SeedCall("Getting IP addresses list", "GET", "/api/dci/v3/ip", {"list": [IP]}),
    SeedCall(
        "Getting server IP addresses", "GET", "/api/dci/v3/server/server_id/ip", {"list": [IP]}
    ),
    SeedCall(
        "Getting networks list",
        "GET",
        "/api/ip/v3/ipnet",
        {
            "list": [
                {
                    "id": 0,
                    "name": "string",
                    "family": 2,
                    "mask": 0,
                    "gateway": "string",
                    "userspace": 0,
                    "vlan": "string",
                    "note": "string",
                    "size": "string",
                    "using_ip": "string",
                    "total_ip": "string",
                }
            ]
        },
    ),
    SeedCall(
        "Getting pools list",
        "GET",
        "/api/ip/v3/ippool",
        {
            "list": [
                {
                    "id": 0,
                    "name": "string",
                    "userspace": 0,
                    "note": "string",
                    "is_public": "string",
                    "using_ip": "string",
                    "using_ipv4": "string",
                    "using_ipv6": "string",
                    "total_ip": "string",
                    "total_ipv4": "string",
                    "total_ipv6": "string",
                }
            ]
        },
    ),
    SeedCall(
        "IP address allocation to server",
        "POST",
        "/api/dci/v3/server/server_id/ip",
        ID_TASK,
        '{"domain":"domain_name","family":"version","ip_name":"address","ip_net":net,'
        '"ip_pool":pool,"set_as_main_ipv4":main_ipv4,"userspace":userspace_id}',
        {
            "domain_name": "www.example.com",
            "version": "ipv4",
            "address": "203.0.113.200",
            "net": 1,
            "pool": 1,
            "main_ipv4": True,
            "userspace_id": 0,
        },
    ),
    SeedCall(
        "Deleting IP address from server",
        "POST",
        "/api/dci/v3/server/server_id/ip/ip_id",
        ID_TASK,
        "{}",
    ),
    SeedCall(
        "Server diagnostics",
        "POST",
        "/api/dci/v3/server/server_id/operation_diag",
        ID_TASK,
        '{"setup_ipmi":false,"ipmi_pool":0,"os_template_id":0,"clear_hdd":"none"}',
    ),
    SeedCall(
        "Server disks clearing",
        "POST",
        "/api/dci/v3/server/server_id/operation_clear_hdd",
        ID_TASK,
        '{"clear_hdd":"none"}',
    ),
    SeedCall(
        "OS installation",
        "POST",
        "/api/dci/v3/server/server_id/operation_os",
        ID_TASK,
        '{"hdd_raid":"raid","os_template_id":template_id,"password":"pass",'
        '"ssh_pub_keys":["ssh_keys"]}',
        {"template_id": 1},
    ),
]


@dataclass(frozen=True)
class World:
    provisioned_server: int
    free_server: int
    client: int
    ip: int


def provision(harness: Harness) -> World:
    """One client owning server 1 with an OS and an active address: every seed call
    then has a non-empty list and a real id to work on."""
    dc = harness.sim.dc
    client = dc.create_user(
        email="client@example.com", full_name="Client", password="pw", role="user"
    )
    dc.set_owner(1, client.id)
    dc.start_operation(1, "os_install", os_template_id=1)
    ip = dc.allocate_ip(1, address=None, network_id=None, pool_id=None, domain="", main=True)
    harness.clock.advance(60)
    return World(provisioned_server=1, free_server=2, client=client.id, ip=ip.id)


def fill_in(call: SeedCall, world: World) -> tuple[str, str | None]:
    named = {"FREE_SERVER": world.free_server, "CLIENT": world.client}
    values = {"server_id": world.provisioned_server, "ip_id": world.ip}
    values |= {key: named.get(value, value) for key, value in call.values.items()}
    path = call.path
    for segment in ("server_id", "ip_id"):
        path = path.replace(segment, str(values[segment]))
    body = call.body
    if body is not None:
        for placeholder, value in values.items():
            # A placeholder stands where a JSON value goes, quoted or not.
            body = re.sub(rf':"?{placeholder}"?(?=[,}}])', ":" + json.dumps(value), body)
        json.loads(body)
    return path, body


def assert_shape(actual: Any, example: Any, where: str = "$") -> None:
    if isinstance(example, Nullable):
        if actual is not None:
            assert_shape(actual, example.example, where)
    elif isinstance(example, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in example.items():
            assert key in actual, f"{where}.{key} is missing"
            assert_shape(actual[key], value, f"{where}.{key}")
    elif isinstance(example, list):
        assert isinstance(actual, list), f"{where}: expected a list, got {actual!r}"
        if example:
            assert actual, f"{where}: empty, so its elements cannot be checked"
            for index, item in enumerate(actual):
                assert_shape(item, example[0], f"{where}[{index}]")
    else:
        assert type(actual) is type(example), (
            f"{where}: expected {type(example).__name__}, got {actual!r}"
        )


@pytest.mark.parametrize("call", SEED_CALLS, ids=[c.title for c in SEED_CALLS])
def test_seed_request_gets_an_answer_of_the_seed_shape(harness: Harness, call: SeedCall) -> None:
    path, body = fill_in(call, provision(harness))
    headers = seed_headers(harness.token)
    if body is not None:
        # What `curl -d` sends: the JSON, labelled as form data.
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = harness.client.request(call.method, path, headers=headers, content=body)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert_shape(answer, call.answer)
    if "list" in call.answer:
        assert answer["size"] == len(answer["list"])


def test_every_request_of_the_seed_is_replayed() -> None:
    in_seed = re.findall(r"curl -X (\w+) 'https://domain\.com(/api/[^']+)'", SEED_FILE.read_text())
    assert len(in_seed) == len(SEED_CALLS)
    assert sorted(in_seed) == sorted((c.method, c.path) for c in SEED_CALLS)


def test_seed_calls_had_their_effect(harness: Harness) -> None:
    """The replayed writes are not just answered: each one changes the model."""
    world = provision(harness)
    dc = harness.sim.dc
    for call in SEED_CALLS:
        if call.method == "GET" or call.path.endswith(("/owner", "/ip/ip_id")):
            continue
        path, body = fill_in(call, world)
        response = harness.client.request(
            call.method, path, headers=seed_headers(harness.token), content=body
        )
        assert response.status_code == 200, (call.title, response.text)
        harness.clock.advance(60)
    server = dc.server(world.provisioned_server)
    assert dc.user(world.client).email == "client@example.com"
    assert [u.email for u in dc.users()][-1] == "admin@example.com"
    assert server.power_status == "on"
    assert {(p.admin_status, p.oper_status) for p in server.ports} == {("down", "down")}
    assert [op.kind for op in server.history] == ["os_install", "diag", "clear_hdd", "os_install"]
    assert dc.server_ips(world.provisioned_server)[0].address == IPv4Address("203.0.113.200")
