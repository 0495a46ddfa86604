"""The simulated data centre: servers, users, addresses and their long operations.

Pure Python and single-threaded. Time comes from an injected clock, and nothing
runs in the background: every query and command first brings the model up to
the clock's "now", finishing any operation or address allocation whose time is up.
What is pending waits in a heap ordered by due time, so bringing the model up to
date costs only what is due, however many servers the inventory has.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Literal

from app.simulator.errors import ErrorKind, SimError
from app.simulator.faults import FaultableKind, OperationKind
from app.simulator.inventory import Inventory, OsTemplateSpec
from app.simulator.ipam import Pool, Subnet, take_address

Clock = Callable[[], float]
FailureOracle = Callable[[FaultableKind], bool]
OperationStatus = Literal["running", "ok", "fail", "canceled"]
PowerAction = Literal["power_on", "power_off", "power_reset"]

NO_WIPE = "none"


@dataclass(slots=True)
class SwitchPort:
    id: int
    switch: str
    port: str
    admin_status: str = "up"
    oper_status: str = "up"


@dataclass(slots=True)
class Operation:
    id: int
    kind: OperationKind
    started_at: float
    finishes_at: float
    will_fail: bool
    clear_hdd: str = NO_WIPE
    os_template: OsTemplateSpec | None = None
    status: OperationStatus = "running"

    @property
    def wipes(self) -> bool:
        return self.clear_hdd != NO_WIPE

    def due(self, now: float) -> bool:
        return self.status == "running" and self.finishes_at <= now

    def progress(self, now: float) -> int:
        if self.status != "running":
            return 100 if self.status == "ok" else 0
        span = self.finishes_at - self.started_at
        done = 1.0 if span <= 0 else (now - self.started_at) / span
        return max(0, min(99, int(done * 100)))


@dataclass(slots=True)
class Server:
    id: int
    domain: str
    configuration: str
    location_id: int
    hardware_info: dict[str, Any]
    ports: list[SwitchPort]
    is_new: bool
    power_status: str = "off"
    owner_id: int | None = None
    os_template: OsTemplateSpec | None = None
    history: list[Operation] = field(default_factory=list)
    ip_ids: list[int] = field(default_factory=list)

    @property
    def operation(self) -> Operation | None:
        return self.history[-1] if self.history else None

    @property
    def state(self) -> str:
        operation = self.operation
        if operation is not None and operation.status == "running":
            return "operation"
        if operation is not None and operation.status == "fail":
            return "error"
        return "ok"

    @property
    def is_free(self) -> bool:
        # BILLmanager's rule, as far as the simulator models it: no owner, nothing
        # running, and the last operation (if any) did not fail.
        return self.owner_id is None and self.state == "ok"


@dataclass(slots=True)
class User:
    id: int
    email: str
    full_name: str
    role: str
    password: str = field(repr=False)

    @property
    def roles(self) -> str:
        return f"[@{self.role}]"


@dataclass(slots=True)
class IpAddress:
    id: int
    address: IPv4Address
    subnet: Subnet
    server_id: int
    domain: str
    task_id: int
    ready_at: float
    will_fail: bool
    status: Literal["allocating", "active", "failed"] = "allocating"


_Pending = IpAddress | tuple[Server, Operation]


class DataCenter:
    """Queries and commands bring the model up to date first; the helpers that take
    an object already fetched (``ips_of``, ``owner_email``, ``server_counts``) do not,
    so rendering a long list stays linear."""

    def __init__(self, inventory: Inventory, *, clock: Clock, fails: FailureOracle) -> None:
        self._inventory = inventory
        self._clock = clock
        self._fails = fails
        self._next_id: dict[str, int] = {}
        self._os_templates = {t.id: t for t in inventory.os_templates}
        self._users: dict[int, User] = {}
        self._servers: dict[int, Server] = {}
        self._ips: dict[int, IpAddress] = {}
        self._pools: list[Pool] = []
        self._subnets: list[Subnet] = []
        # (due time, tie-breaker, what finishes then)
        self._pending: list[tuple[float, int, _Pending]] = []
        self._tie_breaker = itertools.count()
        self._build(inventory)

    # -- construction -------------------------------------------------------------

    def _new_id(self, kind: str) -> int:
        self._next_id[kind] = self._next_id.get(kind, 0) + 1
        return self._next_id[kind]

    def _build(self, inventory: Inventory) -> None:
        admin = inventory.admin
        self._add_user(admin.email, admin.full_name, admin.password, "admin")
        for spec in inventory.configurations:
            for index in range(spec.servers):
                server_id = self._new_id("server")
                ports = [
                    SwitchPort(
                        id=self._new_id("port"),
                        switch=f"sw-{spec.location_id}-{server_id // 48 + 1:02d}",
                        port=f"Gi1/0/{(server_id - 1) % 48 + 1}",
                    )
                    for _ in range(spec.switch_ports)
                ]
                self._servers[server_id] = Server(
                    id=server_id,
                    domain=f"srv{server_id:04d}.{inventory.domain_suffix}",
                    configuration=spec.name,
                    location_id=spec.location_id,
                    hardware_info={"cpu": spec.cpu, "ram_gb": spec.ram_gb, "disks": spec.disks},
                    ports=ports,
                    is_new=index < spec.new_servers,
                )
        pools: dict[str, Pool] = {}
        for network in inventory.networks:
            pool = pools.get(network.pool)
            if pool is None:
                pool = pools[network.pool] = Pool(self._new_id("pool"), network.pool)
            subnet = Subnet(
                id=self._new_id("subnet"),
                network=network.cidr,
                gateway=network.effective_gateway,
                pool_id=pool.id,
                vlan=network.vlan,
                note=network.note,
            )
            pool.subnets.append(subnet)
            self._subnets.append(subnet)
        self._pools = list(pools.values())

    def _add_user(self, email: str, full_name: str, password: str, role: str) -> User:
        user = User(self._new_id("user"), email, full_name, role, password)
        self._users[user.id] = user
        return user

    # -- time ---------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self._clock()

    def advance(self) -> None:
        """Finish whatever the clock says is finished."""
        now = self._clock()
        pending = self._pending
        while pending and pending[0][0] <= now:
            _, _, item = heapq.heappop(pending)
            if isinstance(item, IpAddress):
                self._settle_ip(item)
            else:
                server, operation = item
                # A canceled operation stays canceled.
                if operation.due(now):
                    self._finish(server, operation)

    def _wait_for(self, due: float, item: _Pending) -> None:
        heapq.heappush(self._pending, (due, next(self._tie_breaker), item))

    def _settle_ip(self, ip: IpAddress) -> None:
        # An address removed while it was allocating is gone, its address released.
        if ip.status != "allocating" or self._ips.get(ip.id) is not ip:
            return
        ip.status = "failed" if ip.will_fail else "active"
        if ip.will_fail:
            ip.subnet.release(ip.address)

    def _finish(self, server: Server, operation: Operation) -> None:
        if operation.will_fail:
            operation.status = "fail"
            return
        operation.status = "ok"
        if operation.wipes:
            server.os_template = None
        if operation.kind == "os_install":
            server.os_template = operation.os_template
            server.power_status = "on"
        elif operation.kind == "diag":
            server.is_new = False

    def _next_task(self) -> int:
        return self._new_id("task")

    # -- users --------------------------------------------------------------------

    def authenticate(self, email: str, password: str) -> User:
        self.advance()
        for user in self._users.values():
            # An empty password must not match an empty guess.
            if (
                user.password
                and user.email.casefold() == email.casefold()
                and secrets.compare_digest(user.password.encode(), password.encode())
            ):
                return user
        raise SimError(ErrorKind.BAD_CREDENTIALS)

    def users(self) -> list[User]:
        self.advance()
        return list(self._users.values())

    def user(self, user_id: int) -> User:
        self.advance()
        user = self._users.get(user_id)
        if user is None:
            raise SimError(ErrorKind.USER_NOT_FOUND, f"User {user_id} not found")
        return user

    def create_user(self, *, email: str, full_name: str, password: str, role: str) -> User:
        self.advance()
        if any(u.email.casefold() == email.casefold() for u in self._users.values()):
            raise SimError(ErrorKind.EMAIL_TAKEN)
        return self._add_user(email, full_name, password, role)

    def server_counts(self) -> Counter[int]:
        """Servers owned, by user id."""
        return Counter(s.owner_id for s in self._servers.values() if s.owner_id is not None)

    # -- servers ------------------------------------------------------------------

    def servers(self) -> list[Server]:
        self.advance()
        return list(self._servers.values())

    def servers_with_ids(self, server_ids: set[int]) -> list[Server]:
        """The servers of ``server_ids`` that exist, in id order: a lookup by key."""
        self.advance()
        found = (self._servers.get(server_id) for server_id in sorted(server_ids))
        return [server for server in found if server is not None]

    def server(self, server_id: int) -> Server:
        self.advance()
        server = self._servers.get(server_id)
        if server is None:
            raise SimError(ErrorKind.SERVER_NOT_FOUND, f"Server {server_id} not found")
        return server

    def free_counts(self) -> dict[str, int]:
        """Free servers per configuration, zero included, in inventory order."""
        counts = {spec.name: 0 for spec in self._inventory.configurations}
        for server in self.servers():
            counts[server.configuration] += server.is_free
        return counts

    def owner_email(self, server: Server) -> str | None:
        if server.owner_id is None:
            return None
        return self._users[server.owner_id].email

    def set_owner(self, server_id: int, user_id: int) -> None:
        server = self.server(server_id)
        self.user(user_id)
        if server.owner_id is not None:
            raise SimError(ErrorKind.SERVER_HAS_OWNER)
        server.owner_id = user_id

    def release_owner(self, server_id: int) -> None:
        server = self.server(server_id)
        if server.owner_id is None:
            raise SimError(ErrorKind.SERVER_HAS_NO_OWNER)
        server.owner_id = None

    def set_ports(self, server_id: int, *, up: bool) -> int:
        server = self.server(server_id)
        status = "up" if up else "down"
        for port in server.ports:
            port.admin_status = port.oper_status = status
        return self._next_task()

    def power(self, server_id: int, action: PowerAction) -> int:
        server = self.server(server_id)
        server.power_status = "off" if action == "power_off" else "on"
        return self._next_task()

    def start_operation(
        self,
        server_id: int,
        kind: OperationKind,
        *,
        clear_hdd: str = NO_WIPE,
        os_template_id: int | None = None,
    ) -> Operation:
        server = self.server(server_id)
        template = None
        if os_template_id is not None:
            template = self._os_templates.get(os_template_id)
            if template is None:
                raise SimError(
                    ErrorKind.OS_TEMPLATE_NOT_FOUND, f"OS template {os_template_id} not found"
                )
        if server.state == "operation":
            raise SimError(ErrorKind.SERVER_BUSY)
        now = self._clock()
        operation = Operation(
            id=self._next_task(),
            kind=kind,
            started_at=now,
            finishes_at=now + self._inventory.timings.seconds(kind),
            will_fail=self._fails(kind),
            clear_hdd=clear_hdd,
            os_template=template,
        )
        server.history.append(operation)
        self._wait_for(operation.finishes_at, (server, operation))
        return operation

    def cancel_operation(self, server_id: int) -> Operation:
        server = self.server(server_id)
        operation = server.operation
        if operation is None or operation.status != "running":
            raise SimError(ErrorKind.NO_RUNNING_OPERATION)
        operation.status = "canceled"
        return operation

    # -- addresses ----------------------------------------------------------------

    def ips(self) -> list[IpAddress]:
        self.advance()
        return list(self._ips.values())

    def server_ips(self, server_id: int) -> list[IpAddress]:
        return self.ips_of(self.server(server_id))

    def ips_of(self, server: Server) -> list[IpAddress]:
        return [self._ips[ip_id] for ip_id in server.ip_ids]

    def allocate_ip(
        self,
        server_id: int,
        *,
        address: IPv4Address | None,
        network_id: int | None,
        pool_id: int | None,
        domain: str,
        main: bool,
    ) -> IpAddress:
        server = self.server(server_id)
        subnet, taken = take_address(self._candidate_subnets(network_id, pool_id), address)
        ip = IpAddress(
            id=self._new_id("ip"),
            address=taken,
            subnet=subnet,
            server_id=server.id,
            domain=domain,
            task_id=self._next_task(),
            ready_at=self._clock() + self._inventory.timings.seconds("ip_allocate"),
            will_fail=self._fails("ip_allocate"),
        )
        self._ips[ip.id] = ip
        self._wait_for(ip.ready_at, ip)
        server.ip_ids.insert(0 if main else len(server.ip_ids), ip.id)
        return ip

    def _candidate_subnets(self, network_id: int | None, pool_id: int | None) -> list[Subnet]:
        if pool_id is not None and all(pool.id != pool_id for pool in self._pools):
            raise SimError(ErrorKind.POOL_NOT_FOUND, f"IP pool {pool_id} not found")
        if network_id is None:
            return [s for s in self._subnets if pool_id is None or s.pool_id == pool_id]
        subnet = next((s for s in self._subnets if s.id == network_id), None)
        if subnet is None:
            raise SimError(ErrorKind.NETWORK_NOT_FOUND, f"Network {network_id} not found")
        if pool_id is not None and subnet.pool_id != pool_id:
            raise SimError(ErrorKind.INVALID_REQUEST, f"Network {network_id} is not in the pool")
        return [subnet]

    def remove_ip(self, server_id: int, ip_id: int) -> int:
        server = self.server(server_id)
        ip = self._ips.get(ip_id)
        if ip is None:
            raise SimError(ErrorKind.IP_NOT_FOUND, f"IP address {ip_id} not found")
        if ip.server_id != server.id:
            raise SimError(ErrorKind.IP_NOT_ON_SERVER)
        if ip.status != "failed":
            ip.subnet.release(ip.address)
        del self._ips[ip_id]
        server.ip_ids.remove(ip_id)
        return self._next_task()

    def networks(self) -> list[Subnet]:
        self.advance()
        return list(self._subnets)

    def ip_pools(self) -> list[Pool]:
        self.advance()
        return list(self._pools)
