"""IPv4 address bookkeeping for the simulated networks and pools.

A network hands out its host addresses lowest first; its network address,
broadcast address and gateway are never handed out. A released address is free
again at once, so the next allocation may reuse it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from app.simulator.errors import ErrorKind, SimError


@dataclass(slots=True)
class Subnet:
    id: int
    network: IPv4Network
    gateway: IPv4Address
    pool_id: int
    vlan: str = ""
    note: str = ""
    used: set[IPv4Address] = field(default_factory=set)

    @property
    def total(self) -> int:
        return self.network.num_addresses - 3

    def assignable(self, address: IPv4Address) -> bool:
        """Whether ``address`` could ever be given to a server from this network."""
        return address in self.network and address not in (
            self.network.network_address,
            self.network.broadcast_address,
            self.gateway,
        )

    def take(self, address: IPv4Address | None = None) -> IPv4Address | None:
        """Reserve ``address`` (or the lowest free one); ``None`` if it cannot be had."""
        if address is None:
            address = next(self._free(), None)
        elif not self.assignable(address) or address in self.used:
            return None
        if address is not None:
            self.used.add(address)
        return address

    def release(self, address: IPv4Address) -> None:
        self.used.discard(address)

    def _free(self) -> Iterator[IPv4Address]:
        return (a for a in self.network.hosts() if a != self.gateway and a not in self.used)


@dataclass(slots=True)
class Pool:
    id: int
    name: str
    subnets: list[Subnet] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(subnet.total for subnet in self.subnets)

    @property
    def using(self) -> int:
        return sum(len(subnet.used) for subnet in self.subnets)


def take_address(subnets: list[Subnet], address: IPv4Address | None) -> tuple[Subnet, IPv4Address]:
    """Reserve ``address``, or the first free one, from the first of ``subnets`` that can."""
    if address is not None:
        owner = next((s for s in subnets if address in s.network), None)
        taken = owner.take(address) if owner is not None else None
        if owner is None or taken is None:
            raise SimError(ErrorKind.ADDRESS_TAKEN, f"IP address {address} is not available")
        return owner, taken
    for subnet in subnets:
        taken = subnet.take()
        if taken is not None:
            return subnet, taken
    raise SimError(ErrorKind.NO_FREE_ADDRESS)
