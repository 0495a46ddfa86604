from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from app.simulator.errors import ErrorKind, SimError
from app.simulator.ipam import Pool, Subnet, take_address


def subnet(cidr: str, gateway: str | None = None, subnet_id: int = 1) -> Subnet:
    network = IPv4Network(cidr)
    return Subnet(
        id=subnet_id,
        network=network,
        gateway=IPv4Address(gateway) if gateway else next(network.hosts()),
        pool_id=1,
    )


def test_a_29_hands_out_every_host_but_the_gateway_once() -> None:
    net = subnet("192.0.2.0/29")
    handed_out = [net.take() for _ in range(net.total)]
    assert handed_out == [IPv4Address(f"192.0.2.{n}") for n in range(2, 7)]
    assert net.total == 5
    assert net.take() is None


def test_network_broadcast_and_gateway_are_never_assignable() -> None:
    net = subnet("192.0.2.0/29", gateway="192.0.2.6")
    for reserved in ("192.0.2.0", "192.0.2.7", "192.0.2.6"):
        assert not net.assignable(IPv4Address(reserved))
        assert net.take(IPv4Address(reserved)) is None
    taken = {net.take() for _ in range(net.total)}
    assert taken == {IPv4Address(f"192.0.2.{n}") for n in range(1, 6)}


def test_released_address_is_reused_and_nothing_is_handed_out_twice() -> None:
    net = subnet("198.51.100.0/24")
    first, second, third = net.take(), net.take(), net.take()
    assert first is not None
    assert second is not None
    net.release(second)
    assert net.take() == second
    assert len({first, second, third}) == 3
    assert len(net.used) == 3


def test_a_specific_address_is_taken_only_when_free() -> None:
    net = subnet("198.51.100.0/24")
    wanted = IPv4Address("198.51.100.50")
    assert net.take(wanted) == wanted
    assert net.take(wanted) is None
    assert net.take(IPv4Address("203.0.113.5")) is None
    # The scan for "next free" skips what was taken by name.
    assert net.take() == IPv4Address("198.51.100.2")


def test_take_address_falls_through_to_the_next_subnet_then_reports_exhaustion() -> None:
    small, other = subnet("192.0.2.0/30"), subnet("192.0.2.8/30", subnet_id=2)
    assert take_address([small, other], None) == (small, IPv4Address("192.0.2.2"))
    assert take_address([small, other], None) == (other, IPv4Address("192.0.2.10"))
    with pytest.raises(SimError) as caught:
        take_address([small, other], None)
    assert caught.value.kind is ErrorKind.NO_FREE_ADDRESS


def test_take_address_by_name_finds_its_subnet_or_says_it_is_taken() -> None:
    first, second = subnet("192.0.2.0/29"), subnet("192.0.2.8/29", subnet_id=2)
    assert take_address([first, second], IPv4Address("192.0.2.12")) == (
        second,
        IPv4Address("192.0.2.12"),
    )
    for address in ("192.0.2.12", "192.0.2.9", "10.0.0.1"):
        with pytest.raises(SimError) as caught:
            take_address([first, second], IPv4Address(address))
        assert caught.value.kind is ErrorKind.ADDRESS_TAKEN


def test_pool_counters_sum_their_subnets() -> None:
    a, b = subnet("192.0.2.0/29"), subnet("192.0.2.8/29", subnet_id=2)
    pool = Pool(1, "p", [a, b])
    a.take()
    b.take()
    b.take()
    assert (pool.using, pool.total) == (3, 10)
