"""What must hold once a chaos run has settled, however the run went.

Each check adds violations as sentences; none is a pass. Together they
compare three independent records: what billing was told (the accepted
requests), what dcibridge recorded (orders, operations, the callback outbox),
and what DCImanager did (the simulator's own state and install history), plus
what billing's endpoint received.

No operation may fail: none of the legitimate reasons can arise here. The run
sizes stock above demand (no ``out_of_stock``), keeps DCImanager's outage inside
the workers' 503 retry budget and their step attempt budget above what its
worker kills can use up (no ``retries_exhausted``, see ``WORKER_ENV``), injects
no failing DCImanager operations (no ``os_install_failed``, ``clear_hdd_failed``),
never hands a server to someone else (no ``server_reassigned``), and only sends
requests that are valid in the order's projected state (no
``invalid_order_state``). Any failure is therefore one dcibridge caused.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.harness import Delivery
from tests.chaos.workload import OrderSpec

LIVE = frozenset({"active", "suspended"})


@dataclass
class Accepted:
    """An order billing was told exists, and the operations it was told were accepted."""

    spec: OrderSpec
    order_id: int
    operation_ids: list[int]
    plan_submitted: bool = False

    @property
    def kinds(self) -> list[str]:
        return ["provision", *(request.verb for request in self.spec.plan)]


@dataclass
class Findings:
    violations: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.violations.append(message)


def check_all(
    *,
    accepted: list[Accepted],
    orders: list[dict[str, Any]],
    state: dict[str, Any],
    events: list[dict[str, Any]],
    deliveries: list[Delivery],
) -> list[str]:
    findings = Findings()
    by_id = {order["id"]: order for order in orders}
    check_nothing_lost(findings, accepted, by_id)
    check_operations(findings, accepted, by_id)
    check_order_states(findings, accepted, by_id)
    check_dcimanager(findings, accepted, by_id, state)
    check_callbacks(findings, by_id, events, deliveries)
    return findings.violations


def check_nothing_lost(
    findings: Findings, accepted: list[Accepted], by_id: dict[int, dict[str, Any]]
) -> None:
    ours = {record.order_id for record in accepted}
    for record in accepted:
        order = by_id.get(record.order_id)
        if order is None:
            findings.add(f"lost: order {record.order_id} ({record.spec.external_id}) was accepted")
        elif order["external_id"] != record.spec.external_id:
            findings.add(
                f"order {record.order_id} is {order['external_id']}, "
                f"accepted as {record.spec.external_id}"
            )
    for order_id in by_id.keys() - ours:
        findings.add(f"order {order_id} ({by_id[order_id]['external_id']}) nobody was told of")


def check_operations(
    findings: Findings, accepted: list[Accepted], by_id: dict[int, dict[str, Any]]
) -> None:
    for record in accepted:
        order = by_id.get(record.order_id)
        if order is None:
            continue
        name = f"order {record.order_id} ({record.spec.external_id})"
        operations = order["operations"]
        ids = [op["id"] for op in operations]
        kinds = [op["kind"] for op in operations]
        if ids != record.operation_ids:
            findings.add(f"{name}: operations {ids}, but billing was given {record.operation_ids}")
        if record.plan_submitted and kinds != record.kinds:
            findings.add(f"{name}: operations {kinds}, billing asked for {record.kinds}")
        for op in operations:
            if op["status"] != "succeeded":
                findings.add(
                    f"{name}: {op['kind']} operation {op['id']} is {op['status']} "
                    f"({op['error_code']}: {op['error']}); steps "
                    + ", ".join(f"{s['name']}={s['status']}" for s in op["steps"])
                )
                continue
            unfinished = [s["name"] for s in op["steps"] if s["status"] != "succeeded"]
            if unfinished:
                findings.add(f"{name}: {op['kind']} {op['id']} succeeded with steps {unfinished}")


def check_order_states(
    findings: Findings, accepted: list[Accepted], by_id: dict[int, dict[str, Any]]
) -> None:
    for record in accepted:
        order = by_id.get(record.order_id)
        if order is None or not record.plan_submitted:
            continue
        name = f"order {record.order_id} ({record.spec.external_id})"
        expected = record.spec.expectation()
        actual = (order["status"], order["suspension_reason"], order["os_template_id"])
        wanted = (expected.status, expected.suspension_reason, expected.os_template_id)
        if actual != wanted:
            findings.add(f"{name}: (status, suspension, template) {actual}, expected {wanted}")
        if order["server_id"] is None:
            findings.add(f"{name}: no server recorded")
        addresses = order["ip_addresses"]
        if expected.status == "terminated":
            if addresses:
                findings.add(f"{name}: terminated but still records addresses {addresses}")
        elif len(addresses) != record.spec.ipv4_count or len(set(addresses)) != len(addresses):
            findings.add(f"{name}: addresses {addresses}, wanted {record.spec.ipv4_count}")


def check_dcimanager(
    findings: Findings,
    accepted: list[Accepted],
    by_id: dict[int, dict[str, Any]],
    state: dict[str, Any],
) -> None:
    servers = {server["id"]: server for server in state["servers"]}
    orders = [by_id[r.order_id] for r in accepted if r.order_id in by_id]
    specs = {r.order_id: r.spec for r in accepted}

    live_by_server: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for order in orders:
        if order["status"] in LIVE and order["server_id"] is not None:
            live_by_server[order["server_id"]].append(order)
    for server_id, holders in live_by_server.items():
        if len(holders) > 1:
            findings.add(f"server {server_id} held by live orders {[o['id'] for o in holders]}")

    # Each live order's server is its customer's, with exactly its addresses.
    for server_id, holders in live_by_server.items():
        order = holders[0]
        spec = specs[order["id"]]
        expected = spec.expectation()
        name = f"order {order['id']} ({order['external_id']})"
        server = servers.get(server_id)
        if server is None:
            findings.add(f"{name}: DCImanager has no server {server_id}")
            continue
        owner = (server["owner_email"] or "").casefold()
        if owner != spec.email.casefold():
            findings.add(f"{name}: server {server_id} owned by {server['owner_email']}")
        if sorted(server["ips"]) != sorted(order["ip_addresses"]):
            findings.add(
                f"{name}: server {server_id} has {server['ips']}, order {order['ip_addresses']}"
            )
        template = (server["os_template"] or {}).get("id")
        if template != expected.os_template_id:
            findings.add(f"{name}: server {server_id} runs template {template}")
        if server["power_status"] != expected.power:
            findings.add(
                f"{name}: server {server_id} power {server['power_status']}, "
                f"expected {expected.power}"
            )
        ports = {port["admin_status"] for port in server["ports"]}
        wanted_ports = {"down" if order["status"] == "suspended" else "up"}
        if ports != wanted_ports:
            findings.add(f"{name}: server {server_id} ports {sorted(ports)}, not {wanted_ports}")
        if server["state"] != "ok":
            findings.add(f"{name}: server {server_id} is in state {server['state']}")

    # Nothing held without a live order: no owner, no address, not off the shelf.
    for server in state["servers"]:
        if server["id"] in live_by_server:
            continue
        if server["owner_email"] is not None:
            findings.add(f"leak: server {server['id']} owned by {server['owner_email']}, no order")
        if server["ips"]:
            findings.add(f"leak: server {server['id']} holds {server['ips']} for no live order")
        if not server["free"]:
            findings.add(f"leak: server {server['id']} is not free ({server['state']})")
        # A former customer's system (their password, their keys) must not stay on
        # a server that is back on the shelf.
        if server["os_template"] is not None:
            findings.add(f"server {server['id']} is free but still has an OS installed")

    addresses = Counter(ip["address"] for ip in state["ips"])
    for address, count in addresses.items():
        if count > 1:
            findings.add(f"address {address} allocated {count} times")
    for ip in state["ips"]:
        if ip["server"] not in live_by_server:
            findings.add(f"leak: address {ip['address']} on server {ip['server']}, no live order")
        if ip["status"] != "active":
            findings.add(f"address {ip['address']} is {ip['status']}")

    # DCImanager's own history: one install per provision and reinstall, one wipe
    # per termination, summed over every order that ever held the server.
    installs: Counter[int] = Counter()
    wipes: Counter[int] = Counter()
    for order in orders:
        if order["server_id"] is None or order["status"] in ("provisioning", "failed"):
            continue
        done = [op for op in order["operations"] if op["status"] == "succeeded"]
        installs[order["server_id"]] += sum(op["kind"] in ("provision", "reinstall") for op in done)
        wipes[order["server_id"]] += sum(op["kind"] == "terminate" for op in done)
    for server in state["servers"]:
        history = server["operations"]
        got_installs = sum(op["type"] == "os_install" for op in history)
        got_wipes = sum(op["type"] == "clear_hdd" for op in history)
        if got_installs != installs[server["id"]] or got_wipes != wipes[server["id"]]:
            findings.add(
                f"server {server['id']}: {got_installs} OS installs and {got_wipes} wipes, "
                f"expected {installs[server['id']]} and {wipes[server['id']]}"
            )
        unsuccessful = [op for op in history if op["status"] != "ok"]
        if unsuccessful:
            findings.add(f"server {server['id']}: operations that did not succeed {unsuccessful}")

    users = Counter((user["email"] or "").casefold() for user in state["users"])
    for email in {spec.email.casefold() for spec in specs.values()}:
        if users[email] != 1:
            findings.add(f"customer {email} has {users[email]} DCImanager users")


EVENT_OF_SUCCESS = {
    "provision": "order.active",
    "suspend": "order.suspended",
    "unsuspend": "order.unsuspended",
    "terminate": "order.terminated",
    "reinstall": "order.reinstalled",
}


def check_callbacks(
    findings: Findings,
    by_id: dict[int, dict[str, Any]],
    events: list[dict[str, Any]],
    deliveries: list[Delivery],
) -> None:
    # One outbox event per settled operation billing cares about, of the right type.
    by_operation: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_operation[event["payload"]["data"]["operation"]["id"]].append(event)
    for order in by_id.values():
        for op in order["operations"]:
            if op["status"] == "succeeded":
                wanted = EVENT_OF_SUCCESS.get(op["kind"])
            elif op["status"] == "failed":
                wanted = "order.failed" if op["kind"] == "provision" else "operation.failed"
            else:
                wanted = None
            got = [event["type"] for event in by_operation.get(op["id"], [])]
            if got != ([wanted] if wanted else []):
                findings.add(f"operation {op['id']} ({op['kind']}): callbacks {got}, not {wanted}")

    # Every event delivered, signed, with the outbox's body; nothing unknown received.
    received: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        received[delivery.webhook_id].append(delivery)
        if not delivery.verified:
            findings.add(f"callback {delivery.webhook_id} failed verification: {delivery.problem}")
    known = {event["message_id"] for event in events}
    for webhook_id in received.keys() - known:
        findings.add(f"callback {webhook_id} received, but no such event in the outbox")
    first_seen: dict[str, float] = {}
    for event in events:
        got = received.get(event["message_id"], [])
        if event["status"] != "delivered":
            findings.add(
                f"callback {event['id']} ({event['type']}) is {event['status']}: "
                f"{event['last_error']}"
            )
        if not got:
            findings.add(f"callback {event['id']} ({event['type']}) never reached billing")
            continue
        first_seen[event["message_id"]] = min(d.received_at for d in got)
        for delivery in got:
            if json.loads(delivery.body) != event["payload"]:
                findings.add(f"callback {event['id']}: delivered body differs from the outbox")

    # An order's events reach billing in the order they happened.
    per_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if event["message_id"] in first_seen:
            per_order[event["order_id"]].append(event)
    for order_id, order_events in per_order.items():
        arrival = sorted(order_events, key=lambda e: first_seen[e["message_id"]])
        if [e["id"] for e in arrival] != [e["id"] for e in order_events]:
            findings.add(
                f"order {order_id}: callbacks arrived as {[e['type'] for e in arrival]}, "
                f"happened as {[e['type'] for e in order_events]}"
            )
