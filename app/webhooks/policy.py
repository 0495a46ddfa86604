"""What an event means for an order: pure rules, no I/O.

An event is read into an ``Interpretation`` (what happened: a payment failed, a
payment succeeded, the service was cancelled, or something dcibridge does not
act on; and which order it names), and the operator's settings turn that into a
``Plan`` (the operation to request, if any, and the payment signal it records
for ordering late events).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.config import Settings
from app.orders.lifecycle import SuspensionReason
from app.orders.models import OperationKind
from app.webhooks.config import WebhookCancelAction
from app.webhooks.models import PaymentSignal


class Intent(enum.StrEnum):
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    CANCELLED = "cancelled"
    OTHER = "other"


STRIPE_INTENTS: Mapping[str, Intent] = {
    "invoice.payment_failed": Intent.PAYMENT_FAILED,
    "invoice.paid": Intent.PAYMENT_SUCCEEDED,
    "invoice.payment_succeeded": Intent.PAYMENT_SUCCEEDED,
    "customer.subscription.deleted": Intent.CANCELLED,
}

GENERIC_INTENTS: Mapping[str, Intent] = {
    "payment.failed": Intent.PAYMENT_FAILED,
    "payment.succeeded": Intent.PAYMENT_SUCCEEDED,
    "service.cancelled": Intent.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class OrderReference:
    """Billing's ``external_id``, or (``by_id_too``) possibly dcibridge's order id."""

    value: str
    by_id_too: bool


@dataclass(frozen=True, slots=True)
class Interpretation:
    intent: Intent
    # None when the event names no order; ``problem`` then says why.
    reference: OrderReference | None = None
    problem: str | None = None
    # Stripe invoices: which collection attempt failed.
    attempt_count: int | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with the event's order; ``kind`` None: nothing (``why_not`` says why)."""

    kind: OperationKind | None
    reason: SuspensionReason | None = None
    signal: PaymentSignal | None = None
    why_not: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        return {"reason": self.reason.value} if self.reason is not None else {}


# -- Stripe -------------------------------------------------------------------------


def _metadata_value(holder: Any, key: str) -> str | None:
    if not isinstance(holder, Mapping):
        return None
    metadata = holder.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    value = metadata.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _list_items(holder: Any, field: str) -> Iterator[Any]:
    container = holder.get(field) if isinstance(holder, Mapping) else None
    data = container.get("data") if isinstance(container, Mapping) else None
    if isinstance(data, list):
        yield from data


def stripe_references(obj: Mapping[str, Any], key: str) -> list[str]:
    """Every value of metadata ``key`` on a Stripe object, in order of precedence.

    The object's own metadata; for an invoice its subscription's metadata
    (``parent.subscription_details``, and the top-level ``subscription_details``
    of API versions before 2025-03-31) and each line item's; for a subscription
    each item's.
    """
    holders: list[Any] = [obj]
    parent = obj.get("parent")
    if isinstance(parent, Mapping):
        holders.append(parent.get("subscription_details"))
    holders.append(obj.get("subscription_details"))
    holders.extend(_list_items(obj, "lines"))
    holders.extend(_list_items(obj, "items"))
    found = (_metadata_value(holder, key) for holder in holders)
    return [value for value in found if value is not None]


def single_reference(values: list[str]) -> tuple[str | None, str | None]:
    """The one order reference among ``values``, or why there is none to trust."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 1:
        shown = ", ".join(repr(value[:64]) for value in distinct[:5])
        return None, f"conflicting order references ({shown}): refusing to guess"
    return (distinct[0], None) if distinct else (None, None)


def interpret_stripe(event: Mapping[str, Any], *, metadata_key: str) -> Interpretation:
    intent = STRIPE_INTENTS.get(str(event.get("type")), Intent.OTHER)
    if intent is Intent.OTHER:
        return Interpretation(intent)
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        return Interpretation(intent, problem="the event has no data.object")
    attempts = obj.get("attempt_count")
    counted = isinstance(attempts, int) and not isinstance(attempts, bool)
    attempt_count = attempts if counted else None
    value, conflict = single_reference(stripe_references(obj, metadata_key))
    if value is None:
        described = f"{obj.get('object', 'object')} {str(obj.get('id', ''))[:64]}".strip()
        problem = conflict or f"no metadata {metadata_key!r} on the {described}"
        return Interpretation(intent, problem=problem, attempt_count=attempt_count)
    return Interpretation(
        intent, OrderReference(value, by_id_too=True), attempt_count=attempt_count
    )


# -- Standard Webhooks senders ------------------------------------------------------


def interpret_generic(event: Mapping[str, Any]) -> Interpretation:
    intent = GENERIC_INTENTS.get(str(event.get("type")), Intent.OTHER)
    if intent is Intent.OTHER:
        return Interpretation(intent)
    external_id = event.get("order_external_id")
    if not isinstance(external_id, str) or not external_id.strip():
        return Interpretation(intent, problem="no order_external_id")
    return Interpretation(intent, OrderReference(external_id.strip(), by_id_too=False))


# -- the operator's policy -------------------------------------------------------------


def plan(interpretation: Interpretation, settings: Settings) -> Plan:
    match interpretation.intent:
        case Intent.PAYMENT_FAILED:
            needed = settings.stripe_suspend_after_attempts
            attempts = interpretation.attempt_count
            if attempts is not None and attempts < needed:
                return Plan(
                    None,
                    why_not=f"payment attempt {attempts}: suspension starts at attempt {needed}",
                )
            return Plan(OperationKind.SUSPEND, SuspensionReason.NON_PAYMENT, PaymentSignal.FAILURE)
        case Intent.PAYMENT_SUCCEEDED:
            if not settings.webhook_unsuspend_on_payment:
                return Plan(
                    None,
                    signal=PaymentSignal.SUCCESS,
                    why_not="unsuspension on payment is switched off "
                    "(DCIBRIDGE_WEBHOOK_UNSUSPEND_ON_PAYMENT)",
                )
            return Plan(
                OperationKind.UNSUSPEND, SuspensionReason.NON_PAYMENT, PaymentSignal.SUCCESS
            )
        case Intent.CANCELLED:
            match settings.webhook_cancel_action:
                case WebhookCancelAction.TERMINATE:
                    return Plan(OperationKind.TERMINATE)
                case WebhookCancelAction.SUSPEND:
                    return Plan(OperationKind.SUSPEND, SuspensionReason.ADMIN)
                case WebhookCancelAction.IGNORE:
                    return Plan(
                        None,
                        why_not="cancellations are not acted on (DCIBRIDGE_WEBHOOK_CANCEL_ACTION)",
                    )
        case Intent.OTHER:
            pass
    return Plan(None, why_not="dcibridge does not act on this event type")


def stale(plan_: Plan, occurred_at: datetime, opposite_at: datetime | None) -> str | None:
    """Why a payment event is out of date, or None when it is the newest word.

    A success lifts a suspension only if no suspension-worthy failure happened
    after it; a failure suspends only if no payment succeeded at or after it
    (a tie goes to the payment: dcibridge would rather not cut off a payer).
    """
    if opposite_at is None or plan_.signal is None:
        return None
    if plan_.signal is PaymentSignal.SUCCESS and opposite_at > occurred_at:
        return f"a newer payment failure ({opposite_at.isoformat()}) still stands"
    if plan_.signal is PaymentSignal.FAILURE and opposite_at >= occurred_at:
        return f"a payment succeeded at or after it ({opposite_at.isoformat()})"
    return None
