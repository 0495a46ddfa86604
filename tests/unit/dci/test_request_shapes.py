"""Every call sends exactly what the vendor's examples show: URL, method, headers, body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.dci.client import DCIClient
from app.dci.models import TaskRef
from app.dci.where import Field
from tests.unit.dci.fakes import EMAIL, LOGIN_PATH, PASSWORD, FakeDCI, body_of, make_client

SERVER = {
    "id": 7,
    "domain": "s7.dc.example.net",
    "configuration": "i9-9900K-64Gb-2x1024NVMe",
    "state": "ok",
    "operation": {"id": 40, "type": "diag", "status": "ok", "progress_info": {"step": 3}},
    "os_template": {"id": 1, "name": "Ubuntu 22.04"},
    "ip": [],
    "switch_connection": [{"admin_status": "up", "oper_status": "up", "port": "Gi0/7"}],
    "owner_email": None,
    "is_new": False,
    "location_id": 1,
    "power_status": "on",
    "rack": "R1",
}
USER = {"id": 3, "email": "o'brien+tag@example.com", "server_count": 0, "roles": "[@user]"}
IP = {
    "id": 11,
    "name": "203.0.113.10",
    "domain": "s7.dc.example.net",
    "family": "ipv4",
    "gateway": "203.0.113.1",
    "network": "203.0.113.0/24",
    "server": "7",
    "status": "active",
    "status_info": {},
}
NETWORK = {"id": 1, "name": "203.0.113.0/24", "family": 2, "mask": 24, "total_ip": "254"}
POOL = {"id": 1, "name": "public-a", "userspace": 0, "total_ip": 254, "is_public": "on"}
WRITE = {"id": 7, "task": 41}

Call = Callable[[DCIClient], Awaitable[Any]]

# (call, method, raw path with query, expected JSON body, canned answer)
CASES: list[tuple[str, Call, str, str, Any, Any]] = [
    (
        "free_servers_by_configuration",
        lambda c: c.free_servers_by_configuration(),
        "GET",
        "/api/dci/v3/server/configuration",
        None,
        {"list": [{"configuration": "i9-9900K-64Gb-2x1024NVMe", "free_server_count": 42}]},
    ),
    (
        "list_servers",
        lambda c: c.list_servers(),
        "GET",
        "/api/dci/v3/server",
        None,
        {"list": [SERVER], "size": 1},
    ),
    (
        "list_servers filtered",
        lambda c: c.list_servers(
            where=Field("owner_email").is_null() & Field("is_new").eq(False),
            orderby="id desc",
            limit=5,
            offset=10,
        ),
        "GET",
        "/api/dci/v3/server?where=(owner_email+IS+null)+AND+is_new+EQ+false"
        "&orderby=id+desc&limit=10,5",
        None,
        {"list": [SERVER], "size": 1},
    ),
    (
        "find_free_servers",
        lambda c: c.find_free_servers(configuration="i9-9900K-64Gb-2x1024NVMe", limit=3),
        "GET",
        "/api/dci/v3/server?where=(owner_email+IS+null)+AND+configuration+EQ+"
        "'i9-9900K-64Gb-2x1024NVMe'+AND+state+EQ+'ok'&orderby=id+asc&limit=3",
        None,
        {"list": [SERVER], "size": 1},
    ),
    (
        "get_server",
        lambda c: c.get_server(server_id=7),
        "GET",
        "/api/dci/v3/server/7",
        None,
        SERVER,
    ),
    (
        "get_operation_progress",
        lambda c: c.get_operation_progress(server_id=7),
        "GET",
        "/api/dci/v3/server/7",
        None,
        SERVER,
    ),
    (
        "list_users",
        lambda c: c.list_users(limit=20),
        "GET",
        "/api/dci/v3/user?limit=20",
        None,
        {"list": [USER], "size": 1},
    ),
    (
        "find_user_by_email",
        lambda c: c.find_user_by_email(email="o'brien+tag@example.com"),
        "GET",
        "/api/dci/v3/user?where=email+EQ+'o''brien%2Btag%40example.com'",
        None,
        {"list": [USER], "size": 1},
    ),
    (
        "create_user",
        lambda c: c.create_user(
            email="new@example.com",
            password=SecretStr("customer-pw"),
            full_name="New Customer",
            phone_number="+1 555 0100",
            role="@user",
        ),
        "POST",
        "/api/dci/v3/user",
        {
            "email": "new@example.com",
            "password": "customer-pw",
            "full_name": "New Customer",
            "phone_number": "+1 555 0100",
            "role": "@user",
        },
        {"id": 3},
    ),
    (
        "create_user minimal",
        lambda c: c.create_user(email="new@example.com", password=SecretStr("customer-pw")),
        "POST",
        "/api/dci/v3/user",
        {"email": "new@example.com", "password": "customer-pw"},
        {"id": 3},
    ),
    (
        "set_owner",
        lambda c: c.set_owner(server_id=7, user_id=3),
        "POST",
        "/api/dci/v3/server/7/owner",
        {"owner": 3},
        {"id": 7},
    ),
    (
        "release_owner",
        lambda c: c.release_owner(server_id=7),
        "DELETE",
        "/api/dci/v3/server/7/owner",
        None,
        {"id": 7},
    ),
    (
        "resume_ports",
        lambda c: c.resume_ports(server_id=7),
        "POST",
        "/api/dci/v3/server/7/resume",
        {},
        WRITE,
    ),
    (
        "suspend_ports",
        lambda c: c.suspend_ports(server_id=7),
        "POST",
        "/api/dci/v3/server/7/suspend",
        {},
        WRITE,
    ),
    (
        "power_on",
        lambda c: c.power_on(server_id=7),
        "POST",
        "/api/dci/v3/server/7/power_on",
        {},
        WRITE,
    ),
    (
        "power_off",
        lambda c: c.power_off(server_id=7),
        "POST",
        "/api/dci/v3/server/7/power_off",
        {},
        WRITE,
    ),
    (
        "power_reset",
        lambda c: c.power_reset(server_id=7),
        "POST",
        "/api/dci/v3/server/7/power_reset",
        {},
        WRITE,
    ),
    (
        "list_ips",
        lambda c: c.list_ips(where=Field("server").eq("7")),
        "GET",
        "/api/dci/v3/ip?where=server+EQ+'7'",
        None,
        {"list": [IP], "size": 1},
    ),
    (
        "list_server_ips",
        lambda c: c.list_server_ips(server_id=7),
        "GET",
        "/api/dci/v3/server/7/ip",
        None,
        {"list": [IP], "size": 1},
    ),
    (
        "allocate_ip from a pool",
        lambda c: c.allocate_ip(server_id=7, ip_pool=1, domain="s7.dc.example.net"),
        "POST",
        "/api/dci/v3/server/7/ip",
        {"family": "ipv4", "ip_pool": 1, "domain": "s7.dc.example.net"},
        {"id": 11, "task": 42},
    ),
    (
        "allocate_ip every field",
        lambda c: c.allocate_ip(
            server_id=7,
            domain="s7.dc.example.net",
            ip_name="203.0.113.10",
            ip_net=1,
            ip_pool=1,
            set_as_main_ipv4=True,
            userspace=0,
        ),
        "POST",
        "/api/dci/v3/server/7/ip",
        {
            "family": "ipv4",
            "domain": "s7.dc.example.net",
            "ip_name": "203.0.113.10",
            "ip_net": 1,
            "ip_pool": 1,
            "set_as_main_ipv4": True,
            "userspace": 0,
        },
        {"id": 11, "task": 42},
    ),
    (
        "remove_ip",
        lambda c: c.remove_ip(server_id=7, ip_id=11),
        "POST",
        "/api/dci/v3/server/7/ip/11",
        {},
        {"id": 11, "task": 43},
    ),
    (
        "list_networks",
        lambda c: c.list_networks(),
        "GET",
        "/api/ip/v3/ipnet",
        None,
        {"list": [NETWORK], "size": 1},
    ),
    (
        "list_pools",
        lambda c: c.list_pools(),
        "GET",
        "/api/ip/v3/ippool",
        None,
        {"list": [POOL], "size": 1},
    ),
    (
        "run_diagnostics",
        lambda c: c.run_diagnostics(server_id=7),
        "POST",
        "/api/dci/v3/server/7/operation_diag",
        {"setup_ipmi": False, "ipmi_pool": 0, "os_template_id": 0, "clear_hdd": "none"},
        WRITE,
    ),
    (
        "clear_disks",
        lambda c: c.clear_disks(server_id=7, mode="none"),
        "POST",
        "/api/dci/v3/server/7/operation_clear_hdd",
        {"clear_hdd": "none"},
        WRITE,
    ),
    (
        "install_os",
        lambda c: c.install_os(
            server_id=7,
            os_template_id=2,
            password=SecretStr("root-pw"),
            hdd_raid="raid1",
            ssh_pub_keys=["ssh-ed25519 AAAA key@host"],
        ),
        "POST",
        "/api/dci/v3/server/7/operation_os",
        {
            "hdd_raid": "raid1",
            "os_template_id": 2,
            "password": "root-pw",
            "ssh_pub_keys": ["ssh-ed25519 AAAA key@host"],
        },
        WRITE,
    ),
]


@pytest.mark.parametrize(
    ("call", "method", "raw_target", "body", "answer"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_request_shape(
    call: Call, method: str, raw_target: str, body: Any, answer: Any
) -> None:
    fake = FakeDCI()
    path = raw_target.split("?", 1)[0]
    fake.routes[f"{method} {path}"] = httpx.Response(200, json=answer)
    async with make_client(fake) as client:
        await call(client)

    login, request = fake.requests
    assert request.method == method
    assert request.url.raw_path.decode() == raw_target
    assert str(request.url) == f"https://dci.example{raw_target}"
    assert request.headers["cookie"] == "ses6=tok-1"
    assert request.headers["x-xsrf-token"] == "tok-1"
    assert request.headers["isp-box-instance"] == "true"
    assert body_of(request) == body
    if body is not None:
        assert request.headers["content-type"] == "application/json"
    assert login.method == "POST"
    assert login.url.raw_path.decode() == LOGIN_PATH
    assert body_of(login) == {"email": EMAIL, "password": PASSWORD}
    assert "cookie" not in login.headers
    assert login.headers["isp-box-instance"] == "true"


async def test_answers_become_models_and_unknown_fields_are_kept() -> None:
    fake = FakeDCI()
    fake.routes["GET /api/dci/v3/server/7"] = httpx.Response(200, json=SERVER)
    fake.routes["POST /api/dci/v3/server/7/operation_os"] = httpx.Response(200, json=WRITE)
    async with make_client(fake) as client:
        server = await client.get_server(server_id=7)
        ref = await client.install_os(
            server_id=7, os_template_id=1, password=SecretStr("x"), hdd_raid="none"
        )
    assert server.id == 7
    assert server.operation is not None
    assert server.operation.id == 40
    assert server.switch_connection[0].admin_status == "up"
    assert server.model_extra == {"rack": "R1"}
    assert server.switch_connection[0].model_extra == {"port": "Gi0/7"}
    assert ref == TaskRef(id=7, task=41)


async def test_find_user_by_email_returns_none_when_nobody_matches() -> None:
    fake = FakeDCI()
    fake.routes["GET /api/dci/v3/user"] = httpx.Response(200, json={"list": [], "size": 0})
    async with make_client(fake) as client:
        assert await client.find_user_by_email(email="nobody@example.com") is None


async def test_find_user_by_email_ignores_looser_matches() -> None:
    fake = FakeDCI()
    other = {**USER, "email": "someone-else@example.com"}
    fake.routes["GET /api/dci/v3/user"] = httpx.Response(
        200, json={"list": [other, USER], "size": 2}
    )
    async with make_client(fake) as client:
        user = await client.find_user_by_email(email="O'Brien+tag@example.com")
    assert user is not None
    assert user.id == 3


async def test_list_answers_carry_the_total_size() -> None:
    fake = FakeDCI()
    fake.routes["GET /api/dci/v3/server"] = httpx.Response(
        200, json={"list": [SERVER], "size": 120}
    )
    async with make_client(fake) as client:
        page = await client.list_servers(limit=1)
    assert page.size == 120
    assert [s.id for s in page.items] == [7]


async def test_the_token_is_reused_across_calls() -> None:
    fake = FakeDCI()
    fake.routes["GET /api/dci/v3/server/7"] = httpx.Response(200, json=SERVER)
    async with make_client(fake) as client:
        for _ in range(3):
            await client.get_server(server_id=7)
    assert fake.logins == 1
    assert len(fake.requests) == 4


async def test_an_offset_without_a_limit_is_refused_before_sending() -> None:
    fake = FakeDCI()
    async with make_client(fake) as client:
        with pytest.raises(ValueError, match="offset needs a limit"):
            await client.list_servers(offset=5)
    assert fake.requests == []
