"""What billing asks for in a chaos run, and what each order must look like afterwards.

The workload is drawn from the run's seeded generator before anything starts:
orders (configuration, IPv4 count, template, shared customers) and, for each,
the plan of requests billing sends once the order is active. Every plan is
valid in the order's projected state, so each request must be accepted and
must succeed; the state an order ends in follows from its plan alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from app.orders.lifecycle import SuspensionReason

CONFIGURATIONS = (
    "i9-9900K-64Gb-2x1024NVMe",
    "E-2288G-32Gb-2x480SSD",
    "EPYC-7443P-128Gb-2x1920NVMe",
)
OS_TEMPLATES = {1: "Ubuntu 22.04", 2: "Debian 12", 3: "AlmaLinux 9"}
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0 chaos@example"
# A payment does not lift an abuse suspension; an abuse "unsuspension" lifts either.
_STRENGTH = {SuspensionReason.NON_PAYMENT: 0, SuspensionReason.ABUSE: 1}


@dataclass(frozen=True)
class Request:
    """One follow-up request: ``POST /api/v1/orders/{id}/{verb}`` with ``body``."""

    verb: str
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        body = self.body
        detail = body.get("reason") or body.get("action") or body.get("os_template_id")
        return f"{self.verb}:{detail}" if detail is not None else self.verb


def _suspend(reason: str) -> Request:
    return Request("suspend", {"reason": reason})


def _unsuspend(reason: str) -> Request:
    return Request("unsuspend", {"reason": reason})


def _power(action: str) -> Request:
    return Request("power", {"action": action})


def _reinstall(template: int, *, password: bool) -> Request:
    body: dict[str, Any] = {"os_template_id": template, "ssh_keys": [SSH_KEY]}
    if password:
        body["password"] = "Reinstall-Root-Pass-1"
    return Request("reinstall", body)


TERMINATE = Request("terminate")

# (weight, plan). A power reset is never combined with "off": a reset whose answer
# is lost is deliberately not repeated (it would reboot the customer twice), so the
# power state after an off-then-reset would depend on luck.
PLANS: tuple[tuple[int, tuple[Request, ...]], ...] = (
    (1, ()),
    (3, (_suspend("non_payment"), _unsuspend("non_payment"))),
    (2, (_reinstall(2, password=True),)),
    (2, (_power("off"), _power("on"))),
    (1, (_power("reset"),)),
    (1, (_suspend("abuse"),)),
    (2, (TERMINATE,)),
    (2, (_suspend("non_payment"), TERMINATE)),
    (1, (_reinstall(3, password=False), _power("off"))),
    (1, (_power("off"), _reinstall(2, password=False))),
    (1, (_suspend("non_payment"), _suspend("abuse"), _unsuspend("abuse"))),
    (1, (_reinstall(3, password=True), _suspend("non_payment"), _unsuspend("non_payment"))),
    (1, (_power("off"), _suspend("non_payment"), TERMINATE)),
)


@dataclass(frozen=True)
class Expectation:
    """Where an order must end up, in dcibridge and in DCImanager."""

    status: str
    suspension_reason: str | None
    power: str
    os_template_id: int
    installs: int
    wipes: int


@dataclass(frozen=True)
class OrderSpec:
    index: int
    wave: int
    external_id: str
    customer_external_id: str
    configuration: str
    ipv4_count: int
    os_template_id: int
    password: str | None
    plan: tuple[Request, ...]

    @property
    def email(self) -> str:
        return f"{self.customer_external_id}@customers.example.com"

    def create_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "external_id": self.external_id,
            "customer": {
                "external_id": self.customer_external_id,
                "email": self.email,
                "name": f"Customer {self.customer_external_id}",
            },
            "configuration": self.configuration,
            "os_template_id": self.os_template_id,
            "ssh_keys": [SSH_KEY],
            "ipv4_count": self.ipv4_count,
            "hostname": f"{self.external_id}.example.com",
        }
        if self.password is not None:
            body["password"] = self.password
        return body

    def expectation(self) -> Expectation:
        """The state after the provision and then every request of the plan succeeded."""
        status, reason, power = "active", None, "on"
        template, installs, wipes = self.os_template_id, 1, 0
        for request in self.plan:
            match request.verb:
                case "suspend":
                    new = SuspensionReason(request.body["reason"])
                    held = SuspensionReason(reason) if reason else None
                    if held is None or _STRENGTH[new] > _STRENGTH[held]:
                        reason = new.value
                    status = "suspended"
                case "unsuspend":
                    status, reason = "active", None
                case "reinstall":
                    # An install powers the server on.
                    template = int(request.body["os_template_id"])
                    installs, power = installs + 1, "on"
                case "power":
                    power = "off" if request.body["action"] == "off" else "on"
                case "terminate":
                    status, reason, power, wipes = "terminated", None, "off", wipes + 1
                case other:
                    raise AssertionError(f"unknown verb {other}")
        return Expectation(status, reason, power, template, installs, wipes)


def build_workload(
    rng: random.Random, *, target_operations: int, waves: int, max_per_configuration: int
) -> list[OrderSpec]:
    """Orders until their provisions and plans add up to ``target_operations``.

    Configurations go round a shuffled cycle so none holds more orders than it has
    servers: running out of stock would be a legitimate failure, and this run wants
    none. Customers are shared (about two orders each) so that orders race to
    create the same DCImanager user.
    """
    weights = [weight for weight, _ in PLANS]
    plans = [plan for _, plan in PLANS]
    drawn: list[tuple[Request, ...]] = []
    operations = 0
    while operations < target_operations:
        plan = rng.choices(plans, weights=weights)[0]
        drawn.append(plan)
        operations += 1 + len(plan)
    count = len(drawn)
    if count > max_per_configuration * len(CONFIGURATIONS):
        raise AssertionError(f"{count} orders do not fit the simulator's servers")
    configurations = [CONFIGURATIONS[i % len(CONFIGURATIONS)] for i in range(count)]
    rng.shuffle(configurations)
    customers = max(1, count // 2)
    specs = []
    for index, plan in enumerate(drawn):
        specs.append(
            OrderSpec(
                index=index,
                wave=index * waves // count,
                external_id=f"chaos-{index:03d}",
                customer_external_id=f"cust-{rng.randrange(customers):03d}",
                configuration=configurations[index],
                ipv4_count=rng.randint(1, 2),
                os_template_id=rng.choice(sorted(OS_TEMPLATES)),
                password="Initial-Root-Pass-1" if rng.random() < 0.5 else None,
                plan=plan,
            )
        )
    return specs
