"""Which order an event names, and what the operator's policy makes of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from app.config import ConfigurationError, Settings, load_settings
from app.orders.lifecycle import SuspensionReason
from app.orders.models import OperationKind
from app.webhooks.config import GenericWebhookSource, WebhookCancelAction
from app.webhooks.models import PaymentSignal
from app.webhooks.policy import (
    Intent,
    Plan,
    interpret_generic,
    interpret_stripe,
    plan,
    stale,
    stripe_references,
)
from tests.fixtures.stripe import events

KEY = events.METADATA_KEY


def _settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def _stripe(event_type: str, obj: dict[str, Any]) -> Any:
    return interpret_stripe(events.event(event_type, obj), metadata_key=KEY)


@pytest.mark.parametrize("where", ["parent", "legacy", "own", "line"])
def test_the_order_is_found_wherever_the_invoice_carries_it(where: str) -> None:
    meaning = _stripe("invoice.payment_failed", events.invoice("svc-42", where=where))
    assert meaning.intent is Intent.PAYMENT_FAILED
    assert meaning.reference is not None
    assert meaning.reference.value == "svc-42"
    assert meaning.reference.by_id_too
    assert meaning.attempt_count == 1


def test_the_untouched_fixture_names_no_order() -> None:
    # Stripe's example invoice: empty metadata, parent.subscription_details.metadata null.
    obj = events.load("invoice")
    assert obj["parent"]["subscription_details"]["metadata"] is None
    meaning = _stripe("invoice.paid", obj)
    assert meaning.reference is None
    assert meaning.problem == f"no metadata {KEY!r} on the invoice {obj['id']}"


def test_a_subscription_carries_it_in_its_own_or_its_items_metadata() -> None:
    assert (
        _stripe("customer.subscription.deleted", events.subscription("svc-7")).reference is not None
    )
    obj = events.subscription(None)
    obj["items"]["data"][0]["metadata"] = {KEY: "svc-8"}
    assert stripe_references(obj, KEY) == ["svc-8"]


def test_the_same_reference_in_several_places_is_one_reference() -> None:
    obj = events.invoice("svc-1", where="parent")
    obj["metadata"] = {KEY: "svc-1"}
    obj["lines"]["data"][0]["metadata"] = {KEY: " svc-1 "}
    meaning = _stripe("invoice.paid", obj)
    assert meaning.reference is not None
    assert meaning.reference.value == "svc-1"


def test_conflicting_references_are_refused_rather_than_guessed() -> None:
    obj = events.invoice("svc-1", where="parent")
    obj["lines"]["data"][0]["metadata"] = {KEY: "svc-2"}
    meaning = _stripe("invoice.payment_failed", obj)
    assert meaning.reference is None
    assert meaning.problem is not None
    assert "conflicting" in meaning.problem


def test_odd_shapes_do_not_break_the_lookup() -> None:
    obj = events.invoice(None)
    obj["metadata"] = {KEY: 42}  # Stripe metadata values are strings; anything else is skipped
    obj["parent"] = "not an object"
    obj["lines"] = {"data": [None, {"metadata": None}, {"metadata": {KEY: ""}}]}
    assert stripe_references(obj, KEY) == []
    event = events.event("invoice.paid", obj)
    event["data"] = []
    assert interpret_stripe(event, metadata_key=KEY).problem == "the event has no data.object"


def test_the_metadata_key_is_a_setting() -> None:
    obj = events.invoice(None, metadata={"billing_service": "svc-9"})
    meaning = interpret_stripe(events.event("invoice.paid", obj), metadata_key="billing_service")
    assert meaning.reference is not None
    assert meaning.reference.value == "svc-9"


def test_other_stripe_events_are_not_looked_into() -> None:
    meaning = interpret_stripe(events.load("event"), metadata_key=KEY)
    assert meaning.intent is Intent.OTHER
    assert plan(meaning, _settings()).kind is None


def test_generic_events_name_an_external_id_only() -> None:
    meaning = interpret_generic({"type": "payment.failed", "order_external_id": "42"})
    assert meaning.intent is Intent.PAYMENT_FAILED
    assert meaning.reference is not None
    assert not meaning.reference.by_id_too
    assert interpret_generic({"type": "service.cancelled"}).problem == "no order_external_id"
    assert interpret_generic({"type": "refund.created"}).intent is Intent.OTHER


def test_default_policy() -> None:
    settings = _settings()
    failed = plan(_stripe("invoice.payment_failed", events.invoice("x")), settings)
    assert failed == Plan(
        OperationKind.SUSPEND, SuspensionReason.NON_PAYMENT, PaymentSignal.FAILURE
    )
    assert failed.params == {"reason": "non_payment"}
    for paid in ("invoice.paid", "invoice.payment_succeeded"):
        assert plan(_stripe(paid, events.invoice("x")), settings) == Plan(
            OperationKind.UNSUSPEND, SuspensionReason.NON_PAYMENT, PaymentSignal.SUCCESS
        )
    cancelled = plan(_stripe("customer.subscription.deleted", events.subscription("x")), settings)
    assert cancelled == Plan(OperationKind.TERMINATE)
    assert cancelled.params == {}


def test_suspension_can_wait_for_several_failed_attempts() -> None:
    settings = _settings(stripe_suspend_after_attempts=3)
    for attempt, kind in [
        (1, None),
        (2, None),
        (3, OperationKind.SUSPEND),
        (4, OperationKind.SUSPEND),
    ]:
        meaning = _stripe("invoice.payment_failed", events.invoice("x", attempt_count=attempt))
        decided = plan(meaning, settings)
        assert decided.kind is kind
        # Below the threshold it is not a suspension-worthy failure for ordering either.
        assert decided.signal is (PaymentSignal.FAILURE if kind else None)
    assert "attempt 1" in (
        plan(_stripe("invoice.payment_failed", events.invoice("x")), settings).why_not or ""
    )


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (WebhookCancelAction.TERMINATE, Plan(OperationKind.TERMINATE)),
        (WebhookCancelAction.SUSPEND, Plan(OperationKind.SUSPEND, SuspensionReason.ADMIN)),
        (WebhookCancelAction.IGNORE, None),
    ],
)
def test_cancellation_action_is_a_setting(
    action: WebhookCancelAction, expected: Plan | None
) -> None:
    decided = plan(
        interpret_generic({"type": "service.cancelled", "order_external_id": "x"}),
        _settings(webhook_cancel_action=action),
    )
    if expected is None:
        assert decided.kind is None
        assert decided.why_not is not None
    else:
        assert decided == expected


def test_payment_can_be_kept_from_unsuspending() -> None:
    decided = plan(
        interpret_generic({"type": "payment.succeeded", "order_external_id": "x"}),
        _settings(webhook_unsuspend_on_payment=False),
    )
    assert decided.kind is None
    # Still a payment: an older failure that arrives later must not suspend a payer.
    assert decided.signal is PaymentSignal.SUCCESS


T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SUSPEND = Plan(OperationKind.SUSPEND, SuspensionReason.NON_PAYMENT, PaymentSignal.FAILURE)
UNSUSPEND = Plan(OperationKind.UNSUSPEND, SuspensionReason.NON_PAYMENT, PaymentSignal.SUCCESS)


def test_an_older_payment_does_not_lift_a_newer_failure() -> None:
    assert stale(UNSUSPEND, T0, T0 + timedelta(seconds=1)) is not None
    assert stale(UNSUSPEND, T0, T0 - timedelta(seconds=1)) is None
    assert stale(UNSUSPEND, T0, None) is None


def test_an_older_failure_does_not_suspend_after_a_newer_payment() -> None:
    assert stale(SUSPEND, T0, T0 + timedelta(seconds=1)) is not None
    assert stale(SUSPEND, T0, T0 - timedelta(seconds=1)) is None


def test_a_tie_goes_to_the_payment() -> None:
    assert stale(UNSUSPEND, T0, T0) is None
    assert stale(SUSPEND, T0, T0) is not None


def test_cancellations_are_not_ordered_against_payments() -> None:
    assert stale(Plan(OperationKind.TERMINATE), T0, T0 + timedelta(days=1)) is None


# -- settings -------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith("DCIBRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


GOOD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_stripe_secrets_are_a_comma_separated_secret(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DCIBRIDGE_STRIPE_WEBHOOK_SECRETS", " whsec_new , whsec_old,")
    clean_env.setenv("DCIBRIDGE_STRIPE_API_CLIENT", "billing")
    settings = load_settings()
    assert settings.stripe_secrets == ["whsec_new", "whsec_old"]
    assert "whsec_new" not in repr(settings)


def test_stripe_secrets_need_the_api_client_they_act_for(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DCIBRIDGE_STRIPE_WEBHOOK_SECRETS", "whsec_new")
    with pytest.raises(ConfigurationError, match="DCIBRIDGE_STRIPE_API_CLIENT"):
        load_settings()


def test_no_secret_means_no_stripe_receiver(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DCIBRIDGE_STRIPE_WEBHOOK_SECRETS", "")
    assert load_settings().stripe_secrets == []


def test_generic_sources_are_json(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(
        "DCIBRIDGE_GENERIC_WEBHOOK_SOURCES",
        f'{{"acme-pay": {{"api_client": "billing", "secrets": ["{GOOD_SECRET}"]}}}}',
    )
    settings = load_settings()
    source = settings.generic_webhook_sources["acme-pay"]
    assert source.api_client == "billing"
    assert source.secrets[0].get_secret_value() == GOOD_SECRET
    assert GOOD_SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f'{{"bad name": {{"api_client": "b", "secrets": ["{GOOD_SECRET}"]}}}}', "source name"),
        ('{"acme": {"api_client": "b", "secrets": ["whsec_not base64!"]}}', "Standard Webhooks"),
        ('{"acme": {"api_client": "b", "secrets": ["whsec_c2hvcnQ="]}}', "Standard Webhooks"),
        ('{"acme": {"api_client": "b", "secrets": []}}', "at least 1"),
    ],
)
def test_bad_generic_sources_stop_start_up(
    clean_env: pytest.MonkeyPatch, value: str, message: str
) -> None:
    clean_env.setenv("DCIBRIDGE_GENERIC_WEBHOOK_SOURCES", value)
    with pytest.raises(ConfigurationError, match=message) as stopped:
        load_settings()
    assert "not base64!" not in str(stopped.value)


def test_generic_source_model() -> None:
    source = GenericWebhookSource(api_client="billing", secrets=[SecretStr(GOOD_SECRET)])
    assert source.secrets[0].get_secret_value() == GOOD_SECRET
