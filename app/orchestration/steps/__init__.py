"""Step handlers by name; the names are what `operation_step.name` stores."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.orchestration.context import StepContext
from app.orchestration.outcomes import StepOutcome
from app.orchestration.steps import provision, server

StepHandler = Callable[[StepContext], Awaitable[StepOutcome]]

HANDLERS: dict[str, StepHandler] = {
    "ensure_user": provision.ensure_user,
    "claim_server": provision.claim_server,
    "set_owner": provision.set_owner,
    "allocate_ips": server.allocate_ips,
    "install_os": server.install_os,
    "wipe_disks": server.wipe_disks,
    "ports_up": server.ports_up,
    "ports_down": server.ports_down,
    "power_on": server.power_on,
    "power_off": server.power_off,
    "restore_power": server.restore_power,
    "power": server.power,
    "remove_ips": server.remove_ips,
    "release_owner": server.release_owner,
}
