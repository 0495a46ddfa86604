"""The ordered steps each kind of operation is carried out with."""

from __future__ import annotations

from app.config import Settings
from app.orders.models import OperationKind

# Order as real integrations drive DCImanager (HostBill's module, BILLmanager):
# user, server, owner, addresses, OS, then network and power.
PROVISION_STEPS = (
    "ensure_user",
    "claim_server",
    "set_owner",
    "allocate_ips",
    "install_os",
    "ports_up",
    "power_on",
)
# Undo what provisioning did, newest first, when it fails after taking a server.
COMPENSATION_STEPS = ("remove_ips", "release_owner")


def compensation_for(install_attempted: bool, settings: Settings) -> list[str]:
    """Once an OS install may have started, the customer's system (their password,
    keys, perhaps data) may be on the disks: the server goes back to the pool only
    the way a terminated one does, wiped."""
    if install_attempted:
        return steps_for(OperationKind.TERMINATE, settings)
    return list(COMPENSATION_STEPS)


def steps_for(kind: OperationKind, settings: Settings) -> list[str]:
    """Fixed when the request is accepted, so the plan billing sees does not change."""
    match kind:
        case OperationKind.PROVISION:
            return list(PROVISION_STEPS)
        case OperationKind.SUSPEND:
            return ["ports_down", *(["power_off"] if settings.suspend_powers_off else [])]
        case OperationKind.UNSUSPEND:
            return ["ports_up", "restore_power"]
        case OperationKind.TERMINATE:
            wipe = [] if settings.clear_hdd_mode == "none" else ["wipe_disks"]
            return ["power_off", *wipe, "remove_ips", "release_owner"]
        case OperationKind.REINSTALL:
            return ["install_os", "ports_up"]
        case OperationKind.POWER:
            return ["power"]
