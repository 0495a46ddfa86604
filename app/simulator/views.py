"""JSON shapes of the simulated objects, and the fields a ``where`` may name for each."""

from __future__ import annotations

from typing import Any

from app.simulator.inventory import OsTemplateSpec
from app.simulator.ipam import Pool, Subnet
from app.simulator.runtime import Simulator
from app.simulator.state import DataCenter, IpAddress, Operation, Server, User

# Family of an ``ipnet`` row: the seed shows the number 2, i.e. AF_INET.
AF_INET = 2
VLANS_PER_USER = 5

SERVER_FIELDS = frozenset(
    {
        "id",
        "domain",
        "configuration",
        "state",
        "owner_email",
        "is_new",
        "location_id",
        "power_status",
    }
)
USER_FIELDS = frozenset({"id", "email", "full_name", "server_count", "roles", "vlans_per_user"})
IP_FIELDS = frozenset({"id", "name", "domain", "family", "gateway", "network", "server", "status"})
CONFIGURATION_FIELDS = frozenset({"configuration", "free_server_count"})
NETWORK_FIELDS = frozenset({"id", "name", "family", "mask", "gateway", "vlan", "note"})
POOL_FIELDS = frozenset({"id", "name", "note"})


def server_fields(dc: DataCenter, server: Server) -> dict[str, Any]:
    """The fields a ``where`` or ``orderby`` may name (``SERVER_FIELDS``): cheap to
    compute for every server, unlike the whole object."""
    return {
        "id": server.id,
        "domain": server.domain,
        "configuration": server.configuration,
        "state": server.state,
        "owner_email": dc.owner_email(server),
        "is_new": server.is_new,
        "location_id": server.location_id,
        "power_status": server.power_status,
    }


def server_json(dc: DataCenter, server: Server) -> dict[str, Any]:
    return {
        **server_fields(dc, server),
        "state_info": {},
        "hardware_info": server.hardware_info,
        "operation": operation_json(server.operation, dc.now),
        "os_template": template_json(server.os_template),
        "ip": [ip_json(ip) for ip in dc.ips_of(server)],
        "switch_connection": [
            {
                "id": port.id,
                "switch": port.switch,
                "port": port.port,
                "admin_status": port.admin_status,
                "oper_status": port.oper_status,
            }
            for port in server.ports
        ],
        "pdu_connection": [],
    }


def operation_json(operation: Operation | None, now: float) -> dict[str, Any] | None:
    if operation is None:
        return None
    status_info = (
        {"msg": f"Simulated {operation.kind} failure"} if operation.status == "fail" else {}
    )
    return {
        "id": operation.id,
        "type": operation.kind,
        "status": operation.status,
        "status_info": status_info,
        "progress_info": {"progress": operation.progress(now)},
    }


def template_json(template: OsTemplateSpec | None) -> dict[str, Any] | None:
    return None if template is None else {"id": template.id, "name": template.name}


def ip_json(ip: IpAddress) -> dict[str, Any]:
    return {
        "id": ip.id,
        "name": str(ip.address),
        "domain": ip.domain,
        "family": "ipv4",
        "gateway": str(ip.subnet.gateway),
        "network": str(ip.subnet.network),
        "server": str(ip.server_id),
        "status": ip.status,
        "status_info": {"msg": "Simulated allocation failure"} if ip.status == "failed" else {},
    }


def users_json(dc: DataCenter) -> list[dict[str, Any]]:
    counts = dc.server_counts()
    return [_user_json(user, counts[user.id]) for user in dc.users()]


def _user_json(user: User, server_count: int) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "full_name": user.full_name,
        "server_count": server_count,
        "roles": user.roles,
        "vlans_per_user": VLANS_PER_USER,
    }


def network_json(subnet: Subnet) -> dict[str, Any]:
    return {
        "id": subnet.id,
        "name": str(subnet.network),
        "family": AF_INET,
        "mask": subnet.network.prefixlen,
        "gateway": str(subnet.gateway),
        "userspace": 0,
        "vlan": subnet.vlan,
        "note": subnet.note,
        "size": str(subnet.network.num_addresses),
        "using_ip": str(len(subnet.used)),
        "total_ip": str(subnet.total),
    }


def pool_json(pool: Pool) -> dict[str, Any]:
    using, total = str(pool.using), str(pool.total)
    return {
        "id": pool.id,
        "name": pool.name,
        "userspace": 0,
        "note": "",
        "is_public": "true",
        "using_ip": using,
        "using_ipv4": using,
        "using_ipv6": "0",
        "total_ip": total,
        "total_ipv4": total,
        "total_ipv6": "0",
    }


def inspection_json(sim: Simulator) -> dict[str, Any]:
    """Everything a test may want to assert on, in one read; not part of the vendor API."""
    dc = sim.dc
    return {
        "now": dc.now,
        "servers": [_server_inspection(dc, server) for server in dc.servers()],
        "users": users_json(dc),
        "ips": [
            {
                "id": ip.id,
                "address": str(ip.address),
                "server": ip.server_id,
                "status": ip.status,
                "network": str(ip.subnet.network),
            }
            for ip in dc.ips()
        ],
        "free_servers": dc.free_counts(),
        "sessions": len(sim.sessions),
        "calls": sim.stats.as_json(),
        "faults": sim.faults.config.model_dump(),
    }


def _server_inspection(dc: DataCenter, server: Server) -> dict[str, Any]:
    return {
        "id": server.id,
        "configuration": server.configuration,
        "owner_email": dc.owner_email(server),
        "free": server.is_free,
        "state": server.state,
        "is_new": server.is_new,
        "power_status": server.power_status,
        "ports": [
            {"admin_status": p.admin_status, "oper_status": p.oper_status} for p in server.ports
        ],
        "ips": [str(ip.address) for ip in dc.ips_of(server)],
        "os_template": template_json(server.os_template),
        "os_install_count": sum(op.kind == "os_install" for op in server.history),
        "wipe_count": sum(op.wipes for op in server.history),
        "operation": operation_json(server.operation, dc.now),
        "operations": [
            {"id": op.id, "type": op.kind, "status": op.status, "clear_hdd": op.clear_hdd}
            for op in server.history
        ],
    }
