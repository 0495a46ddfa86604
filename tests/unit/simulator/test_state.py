from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from app.simulator.clock import ManualClock
from app.simulator.errors import ErrorKind, SimError
from app.simulator.faults import FaultableKind
from app.simulator.inventory import ConfigurationSpec, Inventory, Timings
from app.simulator.state import DataCenter

CONFIG_A = "E-2288G-32Gb-2x480SSD"
CONFIG_B = "i9-9900K-64Gb-2x1024NVMe"


class ScriptedFailures:
    """Fails exactly the operation kinds it is told to, so tests need no randomness."""

    def __init__(self) -> None:
        self.kinds: set[FaultableKind] = set()

    def __call__(self, kind: FaultableKind) -> bool:
        return kind in self.kinds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def failures() -> ScriptedFailures:
    return ScriptedFailures()


@pytest.fixture
def dc(clock: ManualClock, failures: ScriptedFailures) -> DataCenter:
    inventory = Inventory(
        configurations=[
            ConfigurationSpec(name=CONFIG_A, servers=2, new_servers=1),
            ConfigurationSpec(name=CONFIG_B, servers=1),
        ],
        timings=Timings(os_install=10, clear_hdd=5, diag=3, ip_allocate=2),
    )
    return DataCenter(inventory, clock=clock, fails=failures)


def expect_error(kind: ErrorKind) -> pytest.RaisesExc[SimError]:
    return pytest.raises(SimError, check=lambda e: e.kind is kind)


def new_user(dc: DataCenter, email: str = "client@example.com") -> int:
    return dc.create_user(email=email, full_name="Client", password="pw", role="user").id


def test_inventory_builds_servers_per_configuration_and_an_admin(dc: DataCenter) -> None:
    servers = dc.servers()
    assert [(s.id, s.configuration, s.is_new) for s in servers] == [
        (1, CONFIG_A, True),
        (2, CONFIG_A, False),
        (3, CONFIG_B, False),
    ]
    assert all(s.power_status == "off" and s.state == "ok" for s in servers)
    [admin] = dc.users()
    assert (admin.email, admin.roles) == ("admin@dcimanager.local", "[@admin]")


def test_free_counts_follow_owner_changes(dc: DataCenter) -> None:
    user = new_user(dc)
    assert dc.free_counts() == {CONFIG_A: 2, CONFIG_B: 1}
    dc.set_owner(2, user)
    assert dc.free_counts() == {CONFIG_A: 1, CONFIG_B: 1}
    assert dc.server_counts()[user] == 1
    assert dc.owner_email(dc.server(2)) == "client@example.com"
    dc.release_owner(2)
    assert dc.free_counts() == {CONFIG_A: 2, CONFIG_B: 1}
    assert dc.server_counts()[user] == 0


def test_owner_rules(dc: DataCenter) -> None:
    first, second = new_user(dc, "a@example.com"), new_user(dc, "b@example.com")
    dc.set_owner(1, first)
    with expect_error(ErrorKind.SERVER_HAS_OWNER):
        dc.set_owner(1, second)
    with expect_error(ErrorKind.SERVER_HAS_OWNER):
        dc.set_owner(1, first)
    with expect_error(ErrorKind.SERVER_HAS_NO_OWNER):
        dc.release_owner(2)
    with expect_error(ErrorKind.USER_NOT_FOUND):
        dc.set_owner(2, 999)
    with expect_error(ErrorKind.SERVER_NOT_FOUND):
        dc.set_owner(999, first)
    assert dc.server(2).owner_id is None


def test_released_server_is_not_free_until_its_wipe_finishes(
    dc: DataCenter, clock: ManualClock
) -> None:
    user = new_user(dc)
    dc.set_owner(3, user)
    dc.start_operation(3, "clear_hdd", clear_hdd="fast")
    dc.release_owner(3)
    assert dc.server(3).state == "operation"
    assert dc.free_counts()[CONFIG_B] == 0
    clock.advance(4.9)
    assert dc.free_counts()[CONFIG_B] == 0
    clock.advance(0.1)
    assert dc.free_counts()[CONFIG_B] == 1
    assert dc.server(3).operation is not None
    assert dc.server(3).operation.status == "ok"  # type: ignore[union-attr]


def test_failed_wipe_keeps_the_server_out_of_stock_until_a_later_one_succeeds(
    dc: DataCenter, clock: ManualClock, failures: ScriptedFailures
) -> None:
    failures.kinds.add("clear_hdd")
    dc.start_operation(3, "clear_hdd", clear_hdd="fast")
    clock.advance(5)
    assert dc.server(3).state == "error"
    assert dc.free_counts()[CONFIG_B] == 0
    failures.kinds.clear()
    dc.start_operation(3, "clear_hdd", clear_hdd="fast")
    clock.advance(5)
    assert dc.server(3).state == "ok"
    assert dc.free_counts()[CONFIG_B] == 1


def test_os_install_completes_after_its_simulated_time(dc: DataCenter, clock: ManualClock) -> None:
    operation = dc.start_operation(2, "os_install", os_template_id=2)
    server = dc.server(2)
    assert (server.state, operation.status, operation.progress(clock())) == (
        "operation",
        "running",
        0,
    )
    clock.advance(5)
    assert dc.server(2).state == "operation"
    assert operation.progress(clock()) == 50
    assert server.os_template is None
    clock.advance(5)
    server = dc.server(2)
    assert (server.state, operation.status, operation.progress(clock())) == ("ok", "ok", 100)
    assert server.os_template is not None
    assert (server.os_template.id, server.os_template.name) == (2, "Debian 12")
    assert server.power_status == "on"
    assert server.operation is operation


def test_failed_install_leaves_the_server_in_error_without_a_template(
    dc: DataCenter, clock: ManualClock, failures: ScriptedFailures
) -> None:
    failures.kinds.add("os_install")
    operation = dc.start_operation(2, "os_install", os_template_id=1)
    clock.advance(10)
    server = dc.server(2)
    assert (server.state, operation.status, server.os_template) == ("error", "fail", None)
    assert server.power_status == "off"


def test_a_second_long_operation_waits_for_the_first(dc: DataCenter, clock: ManualClock) -> None:
    dc.start_operation(2, "diag")
    with expect_error(ErrorKind.SERVER_BUSY):
        dc.start_operation(2, "os_install", os_template_id=1)
    clock.advance(3)
    dc.start_operation(2, "os_install", os_template_id=1)


def test_unknown_os_template_is_rejected_before_anything_starts(dc: DataCenter) -> None:
    with expect_error(ErrorKind.OS_TEMPLATE_NOT_FOUND):
        dc.start_operation(2, "os_install", os_template_id=42)
    assert dc.server(2).operation is None


def test_wipe_removes_the_installed_system_and_diag_clears_is_new(
    dc: DataCenter, clock: ManualClock
) -> None:
    dc.start_operation(1, "diag")
    clock.advance(3)
    assert dc.server(1).is_new is False
    dc.start_operation(1, "os_install", os_template_id=1)
    clock.advance(10)
    assert dc.server(1).os_template is not None
    dc.start_operation(1, "clear_hdd", clear_hdd="none")
    clock.advance(5)
    assert dc.server(1).os_template is not None
    dc.start_operation(1, "clear_hdd", clear_hdd="full")
    clock.advance(5)
    assert dc.server(1).os_template is None
    assert [op.wipes for op in dc.server(1).history] == [False, False, False, True]


def test_operation_ids_are_task_ids_and_increase(dc: DataCenter, clock: ManualClock) -> None:
    first = dc.start_operation(1, "diag")
    power_task = dc.power(1, "power_on")
    clock.advance(3)
    second = dc.start_operation(1, "diag")
    assert first.id < power_task < second.id


def test_cancelled_operation_counts_as_free(dc: DataCenter) -> None:
    dc.start_operation(3, "os_install", os_template_id=1)
    assert dc.free_counts()[CONFIG_B] == 0
    assert dc.cancel_operation(3).status == "canceled"
    assert dc.free_counts()[CONFIG_B] == 1
    with expect_error(ErrorKind.NO_RUNNING_OPERATION):
        dc.cancel_operation(3)


def test_a_cancelled_operation_stays_cancelled_after_its_due_time(
    dc: DataCenter, clock: ManualClock
) -> None:
    dc.start_operation(3, "os_install", os_template_id=1)
    dc.cancel_operation(3)
    clock.advance(10)
    server = dc.server(3)
    assert (server.state, server.operation and server.operation.status) == ("ok", "canceled")
    assert server.os_template is None


def test_operations_and_allocations_finish_in_due_order_only_when_due(
    dc: DataCenter, clock: ManualClock
) -> None:
    install = dc.start_operation(1, "os_install", os_template_id=1)
    diag = dc.start_operation(2, "diag")
    ip = dc.allocate_ip(3, address=None, network_id=None, pool_id=None, domain="", main=False)
    clock.advance(2)
    assert (diag.status, ip.status, install.status) == ("running", "allocating", "running")
    dc.server(1)
    assert (diag.status, ip.status, install.status) == ("running", "active", "running")
    clock.advance(1)
    dc.server(1)
    assert (diag.status, install.status) == ("ok", "running")
    # Long overdue: finishing it late changes nothing about how it finishes.
    clock.advance(100)
    assert dc.server(1).os_template is not None
    assert install.status == "ok"


def test_an_address_removed_while_allocating_is_not_released_again_when_due(
    dc: DataCenter, clock: ManualClock, failures: ScriptedFailures
) -> None:
    failures.kinds.add("ip_allocate")
    doomed = dc.allocate_ip(1, address=None, network_id=None, pool_id=None, domain="", main=False)
    dc.remove_ip(1, doomed.id)
    failures.kinds.clear()
    successor = dc.allocate_ip(
        2, address=None, network_id=None, pool_id=None, domain="", main=False
    )
    assert successor.address == doomed.address
    clock.advance(2)
    assert dc.server_ips(2)[0].status == "active"
    assert dc.networks()[0].used == {successor.address}


def test_power_and_ports_change_at_once(dc: DataCenter) -> None:
    dc.power(1, "power_on")
    assert dc.server(1).power_status == "on"
    dc.power(1, "power_off")
    assert dc.server(1).power_status == "off"
    dc.power(1, "power_reset")
    assert dc.server(1).power_status == "on"
    dc.set_ports(1, up=False)
    assert {(p.admin_status, p.oper_status) for p in dc.server(1).ports} == {("down", "down")}
    dc.set_ports(1, up=True)
    assert {(p.admin_status, p.oper_status) for p in dc.server(1).ports} == {("up", "up")}


def test_ip_goes_active_after_its_allocation_time(dc: DataCenter, clock: ManualClock) -> None:
    ip = dc.allocate_ip(1, address=None, network_id=None, pool_id=None, domain="a", main=False)
    assert (str(ip.address), ip.status) == ("203.0.113.2", "allocating")
    clock.advance(1.9)
    assert dc.ips()[0].status == "allocating"
    clock.advance(0.1)
    assert dc.ips()[0].status == "active"
    assert dc.networks()[0].used == {IPv4Address("203.0.113.2")}


def test_failed_ip_allocation_returns_the_address(
    dc: DataCenter, clock: ManualClock, failures: ScriptedFailures
) -> None:
    failures.kinds.add("ip_allocate")
    failed = dc.allocate_ip(1, address=None, network_id=None, pool_id=None, domain="", main=False)
    clock.advance(2)
    assert dc.server_ips(1)[0].status == "failed"
    assert dc.networks()[0].used == set()
    failures.kinds.clear()
    again = dc.allocate_ip(2, address=None, network_id=None, pool_id=None, domain="", main=False)
    assert again.address == failed.address
    # Removing the failed record must not free the address its successor now holds.
    dc.remove_ip(1, failed.id)
    assert dc.networks()[0].used == {again.address}


def test_ip_removal_frees_the_address_and_checks_the_owner(dc: DataCenter) -> None:
    ip = dc.allocate_ip(1, address=None, network_id=None, pool_id=None, domain="", main=False)
    with expect_error(ErrorKind.IP_NOT_ON_SERVER):
        dc.remove_ip(2, ip.id)
    with expect_error(ErrorKind.IP_NOT_FOUND):
        dc.remove_ip(1, 999)
    dc.remove_ip(1, ip.id)
    assert dc.server_ips(1) == []
    assert dc.ips() == []
    assert dc.networks()[0].used == set()
    with expect_error(ErrorKind.IP_NOT_FOUND):
        dc.remove_ip(1, ip.id)


def test_ip_network_and_pool_selection(dc: DataCenter) -> None:
    from_b = dc.allocate_ip(1, address=None, network_id=2, pool_id=None, domain="", main=False)
    assert str(from_b.address) == "198.51.100.2"
    from_pool_b = dc.allocate_ip(1, address=None, network_id=None, pool_id=2, domain="", main=True)
    assert str(from_pool_b.address) == "198.51.100.3"
    assert [ip.id for ip in dc.server_ips(1)] == [from_pool_b.id, from_b.id]
    named = IPv4Address("203.0.113.77")
    assert dc.allocate_ip(1, address=named, network_id=None, pool_id=None, domain="", main=False)
    with expect_error(ErrorKind.ADDRESS_TAKEN):
        dc.allocate_ip(2, address=named, network_id=None, pool_id=None, domain="", main=False)
    with expect_error(ErrorKind.ADDRESS_TAKEN):
        dc.allocate_ip(
            2,
            address=IPv4Address("203.0.113.1"),
            network_id=None,
            pool_id=None,
            domain="",
            main=False,
        )
    with expect_error(ErrorKind.INVALID_REQUEST):
        dc.allocate_ip(2, address=None, network_id=2, pool_id=1, domain="", main=False)
    with expect_error(ErrorKind.NETWORK_NOT_FOUND):
        dc.allocate_ip(2, address=None, network_id=9, pool_id=None, domain="", main=False)
    with expect_error(ErrorKind.POOL_NOT_FOUND):
        dc.allocate_ip(2, address=None, network_id=None, pool_id=9, domain="", main=False)
    assert [p.using for p in dc.ip_pools()] == [1, 2]


def test_users_and_logins(dc: DataCenter) -> None:
    user = new_user(dc, "Client@Example.com")
    with expect_error(ErrorKind.EMAIL_TAKEN):
        new_user(dc, "client@example.COM")
    assert dc.authenticate("client@example.com", "pw").id == user
    with expect_error(ErrorKind.BAD_CREDENTIALS):
        dc.authenticate("client@example.com", "wrong")
    dc.create_user(email="nopw@example.com", full_name="", password="", role="user")
    with expect_error(ErrorKind.BAD_CREDENTIALS):
        dc.authenticate("nopw@example.com", "")
    assert dc.user(user).roles == "[@user]"
    with expect_error(ErrorKind.USER_NOT_FOUND):
        dc.user(999)
