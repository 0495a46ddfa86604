"""Every client call, end to end against the simulator over real HTTP."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import SecretStr

from app.dci.client import DCIClient, create_dci_client
from app.dci.completion import (
    CompletionStatus,
    ObjectStateStrategy,
    WorkKind,
    wait_for_completion,
)
from app.dci.exceptions import (
    DCIAuthError,
    DCINotFound,
    DCIOutcomeUnknown,
    DCIRequestError,
    DCIRetryableError,
)
from app.dci.models import TaskRef
from app.dci.where import Field
from tests.integration.dci.conftest import LiveSimulator, client_settings

CONFIG = "i9-9900K-64Gb-2x1024NVMe"
LOGIN = "POST /api/auth/v4/public/token"


async def test_stock_and_server_lists(client: DCIClient) -> None:
    stock = await client.free_servers_by_configuration()
    counts = {row.configuration: row.free_server_count for row in stock.items}
    assert counts[CONFIG] == 4

    everything = await client.list_servers()
    assert everything.size == len(everything.items) == 12

    page = await client.list_servers(
        where=Field("configuration").eq(CONFIG), orderby="id desc", limit=2, offset=1
    )
    assert page.size == 4
    assert len(page.items) == 2
    assert page.items[0].id > page.items[1].id
    assert {s.configuration for s in page.items} == {CONFIG}


async def test_get_server_and_free_server_lookup(client: DCIClient) -> None:
    free = await client.find_free_servers(configuration=CONFIG, limit=2)
    assert len(free) == 2
    server = await client.get_server(server_id=free[0].id)
    assert server.configuration == CONFIG
    assert server.owner_email is None
    assert server.state == "ok"
    assert server.power_status in ("on", "off")
    assert server.switch_connection
    assert await client.get_operation_progress(server_id=server.id) is None


async def test_users_created_and_found_by_an_awkward_email(client: DCIClient) -> None:
    email = "o'brien+billing@example.com"
    created = await client.create_user(
        email=email,
        password=SecretStr("customer-pw-1"),
        full_name="Pat O'Brien",
        phone_number="+1 555 0100",
        role="user",
    )
    found = await client.find_user_by_email(email=email)
    assert found is not None
    assert found.id == created.id
    assert found.email == email
    assert await client.find_user_by_email(email="obrien+billing@example.com") is None
    users = await client.list_users()
    assert created.id in [u.id for u in users.items]

    with pytest.raises(DCIRequestError) as caught:
        await client.create_user(email=email, password=SecretStr("x"))
    assert caught.value.code == 2104


async def test_owner_ports_and_power(client: DCIClient, simulator: LiveSimulator) -> None:
    user = await client.create_user(email="owner@example.com", password=SecretStr("pw-owner"))
    [server] = await client.find_free_servers(configuration=CONFIG)
    strategy = ObjectStateStrategy(client)

    assert await client.set_owner(server_id=server.id, user_id=user.id) == TaskRef(id=server.id)
    assert (await client.get_server(server_id=server.id)).owner_email == "owner@example.com"
    with pytest.raises(DCIRequestError) as caught:
        await client.set_owner(server_id=server.id, user_id=user.id)
    assert (caught.value.status, caught.value.code) == (409, 2101)

    suspended = await client.suspend_ports(server_id=server.id)
    assert suspended.id == server.id
    assert suspended.task is not None
    ports = (await client.get_server(server_id=server.id)).switch_connection
    assert {p.admin_status for p in ports} == {"down"}
    await client.resume_ports(server_id=server.id)
    ports = (await client.get_server(server_id=server.id)).switch_connection
    assert {p.admin_status for p in ports} == {"up"}

    on = await client.power_on(server_id=server.id)
    done = await strategy.check(kind=WorkKind.POWER_ON, server_id=server.id, ref=on)
    assert done.status is CompletionStatus.OK
    await client.power_reset(server_id=server.id)
    off = await client.power_off(server_id=server.id)
    done = await strategy.check(kind=WorkKind.POWER_OFF, server_id=server.id, ref=off)
    assert done.status is CompletionStatus.OK

    assert await client.release_owner(server_id=server.id) == TaskRef(id=server.id)
    with pytest.raises(DCIRequestError) as caught:
        await client.release_owner(server_id=server.id)
    assert caught.value.code == 2102


async def test_addresses(client: DCIClient, simulator: LiveSimulator) -> None:
    [server] = await client.find_free_servers(configuration=CONFIG)
    networks = await client.list_networks()
    pools = await client.list_pools()
    assert networks.items
    assert networks.items[0].family == 2
    pool = pools.items[0]
    strategy = ObjectStateStrategy(client)

    ref = await client.allocate_ip(
        server_id=server.id, ip_pool=pool.id, domain=server.domain, set_as_main_ipv4=True
    )
    assert ref.task is not None
    check = await strategy.check(kind=WorkKind.IP_ALLOCATION, server_id=server.id, ref=ref)
    assert check.status is CompletionStatus.RUNNING
    simulator.settle()
    check = await strategy.check(kind=WorkKind.IP_ALLOCATION, server_id=server.id, ref=ref)
    assert check.status is CompletionStatus.OK

    [ip] = (await client.list_server_ips(server_id=server.id)).items
    assert ip.id == ref.id
    assert ip.status == "active"
    assert ip.server == str(server.id)
    listed = await client.list_ips(where=Field("server").eq(str(server.id)))
    assert [i.id for i in listed.items] == [ip.id]

    removal = await client.remove_ip(server_id=server.id, ip_id=ip.id)
    check = await strategy.check(kind=WorkKind.IP_REMOVAL, server_id=server.id, ref=removal)
    assert check.status is CompletionStatus.OK
    assert (await client.list_server_ips(server_id=server.id)).items == []


async def test_diagnostics_wipe_and_os_install(client: DCIClient, simulator: LiveSimulator) -> None:
    [server] = await client.find_free_servers(configuration=CONFIG)
    strategy = ObjectStateStrategy(client)

    diag = await client.run_diagnostics(server_id=server.id)
    assert diag.id == server.id
    running = await strategy.check(kind=WorkKind.DIAG, server_id=server.id, ref=diag)
    assert running.status is CompletionStatus.RUNNING
    progress = await client.get_operation_progress(server_id=server.id)
    assert progress is not None
    assert (progress.id, progress.type, progress.status) == (diag.task, "diag", "running")
    with pytest.raises(DCIRequestError) as busy:
        await client.clear_disks(server_id=server.id, mode="none")
    assert busy.value.code == 2103
    simulator.settle()
    finished = await strategy.check(kind=WorkKind.DIAG, server_id=server.id, ref=diag)
    assert finished.status is CompletionStatus.OK

    wipe = await client.clear_disks(server_id=server.id, mode="none")
    simulator.settle()
    assert (await strategy.check(kind=WorkKind.CLEAR_HDD, server_id=server.id, ref=wipe)).finished

    install = await client.install_os(
        server_id=server.id,
        os_template_id=1,
        password=SecretStr("root-pw-1"),
        hdd_raid="none",
        ssh_pub_keys=["ssh-ed25519 AAAAC3Nza test@example"],
    )

    async def sleep_in_simulated_time(seconds: float) -> None:
        simulator.clock.advance(seconds)

    completion = await wait_for_completion(
        strategy,
        kind=WorkKind.OS_INSTALL,
        server_id=server.id,
        ref=install,
        timeout_seconds=300,
        poll_interval=10,
        sleep=sleep_in_simulated_time,
        clock=simulator.clock,
    )
    assert completion.status is CompletionStatus.OK
    installed = await client.get_server(server_id=server.id)
    assert installed.os_template is not None
    assert installed.os_template.id == 1
    assert installed.power_status == "on"


async def test_a_failed_operation_is_reported_with_its_information(
    client: DCIClient, simulator: LiveSimulator
) -> None:
    simulator.faults(fail_rate={"os_install": 1.0})
    [server] = await client.find_free_servers(configuration=CONFIG)
    install = await client.install_os(
        server_id=server.id, os_template_id=2, password=SecretStr("pw"), hdd_raid="none"
    )
    simulator.settle()
    completion = await ObjectStateStrategy(client).check(
        kind=WorkKind.OS_INSTALL, server_id=server.id, ref=install
    )
    assert completion.status is CompletionStatus.FAILED
    assert completion.info == {"msg": "Simulated os_install failure"}


async def test_errors_carry_dcimanager_codes(client: DCIClient) -> None:
    with pytest.raises(DCINotFound) as missing:
        await client.get_server(server_id=9999)
    assert (missing.value.status, missing.value.code) == (404, 2001)
    with pytest.raises(DCIRequestError) as bad_query:
        await client.list_servers(where=Field("no_such_field").eq(1))
    assert (bad_query.value.status, bad_query.value.code) == (400, 1001)


async def test_wrong_password_is_an_auth_error(simulator: LiveSimulator) -> None:
    settings = client_settings(dci_password=SecretStr("wrong"))
    async with create_dci_client(settings, base_url=simulator.base_url) as client:
        with pytest.raises(DCIAuthError) as caught:
            await client.list_pools()
    assert caught.value.code == 3002


async def test_503_bursts_are_ridden_out(client: DCIClient, simulator: LiveSimulator) -> None:
    await client.list_pools()
    simulator.faults(down=True)

    async def wake_up_later() -> None:
        await asyncio.sleep(0.8)
        simulator.faults(down=False)

    waking = asyncio.create_task(wake_up_later())
    pools = await client.list_pools()
    await waking
    assert pools.items
    assert simulator.sim.stats.injected_503 >= 2


async def test_503_past_the_budget_gives_up(simulator: LiveSimulator) -> None:
    simulator.faults(down=True)
    settings = client_settings(dci_retry_503_seconds=0.3)
    async with create_dci_client(settings, base_url=simulator.base_url) as client:
        with pytest.raises(DCIRetryableError) as caught:
            await client.list_pools()
    assert (caught.value.status, caught.value.code) == (503, 5003)


async def test_a_dropped_write_answer_is_an_unknown_outcome_sent_once(
    client: DCIClient, simulator: LiveSimulator
) -> None:
    [server] = await client.find_free_servers(configuration=CONFIG)
    await client.power_on(server_id=server.id)
    simulator.faults(drop_write_response_rate=1.0)
    with pytest.raises(DCIOutcomeUnknown):
        await client.power_off(server_id=server.id)
    assert simulator.calls("POST /api/dci/v3/server/{server_id}/power_off") == 1
    # The write took effect: only looking tells, which is what the caller must do.
    assert (await client.get_server(server_id=server.id)).power_status == "off"


async def test_expired_session_is_renewed_once_for_concurrent_callers(
    client: DCIClient, simulator: LiveSimulator
) -> None:
    simulator.faults(token_ttl_seconds=60)
    await client.list_pools()
    assert simulator.calls(LOGIN) == 1
    simulator.clock.advance(61)
    results = await asyncio.gather(*(client.list_pools() for _ in range(20)))
    assert all(page.items for page in results)
    assert simulator.calls(LOGIN) == 2


async def test_logout_ends_the_session(client: DCIClient, simulator: LiveSimulator) -> None:
    await client.list_networks()
    assert len(simulator.sim.sessions) == 1
    await client.logout()
    assert len(simulator.sim.sessions) == 0
    await client.list_networks()
    assert simulator.calls(LOGIN) == 2


async def test_in_process_simulator_through_asgi_transport(simulator: LiveSimulator) -> None:
    # raise_app_exceptions=False turns the simulator's cut-off answer into an empty
    # response, as a real connection would; the default re-raises its exception.
    transport = httpx.ASGITransport(simulator.app, raise_app_exceptions=False)
    async with create_dci_client(
        client_settings(), transport=transport, base_url="http://simulator/"
    ) as client:
        [server] = await client.find_free_servers(configuration=CONFIG)
        simulator.faults(drop_write_response_rate=1.0)
        with pytest.raises(DCIOutcomeUnknown):
            await client.power_on(server_id=server.id)
    assert simulator.calls("POST /api/dci/v3/server/{server_id}/power_on") == 1
