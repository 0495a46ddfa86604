from __future__ import annotations

import pytest

from app.orders.lifecycle import (
    OrderState,
    SuspensionReason,
    TransitionRefused,
    apply,
    projected,
)
from app.orders.models import OperationKind, OrderStatus

ACTIVE = OrderState(OrderStatus.ACTIVE)


def test_provisioning_order_projects_to_active_so_follow_ups_queue_behind_it() -> None:
    state = projected(
        OrderState(OrderStatus.PROVISIONING),
        [(OperationKind.PROVISION, {}), (OperationKind.SUSPEND, {"reason": "non_payment"})],
    )
    assert state == OrderState(OrderStatus.SUSPENDED, SuspensionReason.NON_PAYMENT)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (OrderStatus.TERMINATED, OperationKind.TERMINATE),
        (OrderStatus.ACTIVE, OperationKind.UNSUSPEND),
        (OrderStatus.SUSPENDED, OperationKind.REINSTALL),
        (OrderStatus.FAILED, OperationKind.SUSPEND),
        (OrderStatus.ACTIVE, OperationKind.PROVISION),
    ],
)
def test_nonsense_transitions_are_refused(status: OrderStatus, kind: OperationKind) -> None:
    with pytest.raises(TransitionRefused):
        apply(OrderState(status), kind, {"reason": "admin"})


def test_payment_does_not_lift_an_abuse_suspension() -> None:
    suspended = apply(ACTIVE, OperationKind.SUSPEND, {"reason": "abuse"})
    with pytest.raises(TransitionRefused, match="does not lift"):
        apply(suspended, OperationKind.UNSUSPEND, {"reason": "non_payment"})
    assert apply(suspended, OperationKind.UNSUSPEND, {"reason": "admin"}).status is (
        OrderStatus.ACTIVE
    )


def test_weaker_suspension_does_not_replace_a_stronger_one() -> None:
    abuse = apply(ACTIVE, OperationKind.SUSPEND, {"reason": "abuse"})
    again = apply(abuse, OperationKind.SUSPEND, {"reason": "non_payment"})
    assert again.suspension_reason is SuspensionReason.ABUSE
    upgraded = apply(
        apply(ACTIVE, OperationKind.SUSPEND, {"reason": "non_payment"}),
        OperationKind.SUSPEND,
        {"reason": "admin"},
    )
    assert upgraded.suspension_reason is SuspensionReason.ADMIN
