"""Which billing requests make sense in which order state, and what they lead to."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.orders.models import OperationKind, Order, OrderStatus


class SuspensionReason(enum.StrEnum):
    NON_PAYMENT = "non_payment"
    ABUSE = "abuse"
    ADMIN = "admin"


# A stronger reason is never replaced or lifted by a weaker one: a payment does
# not end an abuse suspension.
_STRENGTH = {SuspensionReason.NON_PAYMENT: 0, SuspensionReason.ABUSE: 1, SuspensionReason.ADMIN: 1}

_ALLOWED_FROM: dict[OperationKind, frozenset[OrderStatus]] = {
    OperationKind.PROVISION: frozenset({OrderStatus.PROVISIONING}),
    OperationKind.SUSPEND: frozenset({OrderStatus.ACTIVE, OrderStatus.SUSPENDED}),
    OperationKind.UNSUSPEND: frozenset({OrderStatus.SUSPENDED}),
    OperationKind.TERMINATE: frozenset(
        {OrderStatus.ACTIVE, OrderStatus.SUSPENDED, OrderStatus.FAILED}
    ),
    OperationKind.REINSTALL: frozenset({OrderStatus.ACTIVE}),
    OperationKind.POWER: frozenset({OrderStatus.ACTIVE}),
}


@dataclass(frozen=True, slots=True)
class OrderState:
    status: OrderStatus
    suspension_reason: SuspensionReason | None = None


def state_of(order: Order) -> OrderState:
    reason = order.suspension_reason
    return OrderState(order.status, SuspensionReason(reason) if reason else None)


class TransitionRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def stronger(current: SuspensionReason | None, new: SuspensionReason) -> SuspensionReason:
    if current is None or _STRENGTH[new] > _STRENGTH[current]:
        return new
    return current


def apply(state: OrderState, kind: OperationKind, params: dict[str, Any]) -> OrderState:
    """The state after ``kind`` succeeds from ``state``; raises if it makes no sense."""
    if state.status not in _ALLOWED_FROM[kind]:
        raise TransitionRefused(f"cannot {kind.value} an order that is {state.status.value}")
    match kind:
        case OperationKind.SUSPEND:
            reason = SuspensionReason(params["reason"])
            return OrderState(OrderStatus.SUSPENDED, stronger(state.suspension_reason, reason))
        case OperationKind.UNSUSPEND:
            lifting = SuspensionReason(params["reason"])
            held = state.suspension_reason
            if held is not None and _STRENGTH[lifting] < _STRENGTH[held]:
                raise TransitionRefused(
                    f"a {lifting.value} unsuspension does not lift a {held.value} suspension"
                )
            return OrderState(OrderStatus.ACTIVE)
        case OperationKind.TERMINATE:
            return OrderState(OrderStatus.TERMINATED)
        case OperationKind.PROVISION | OperationKind.REINSTALL | OperationKind.POWER:
            return OrderState(OrderStatus.ACTIVE)


def projected(
    state: OrderState, pending: Iterable[tuple[OperationKind, dict[str, Any]]]
) -> OrderState:
    """The state the order reaches once every accepted, unfinished operation succeeds."""
    for kind, params in pending:
        state = apply(state, kind, params)
    return state
