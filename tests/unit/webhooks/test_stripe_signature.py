"""dcibridge's Stripe-Signature check decides as Stripe's own library does.

Every case is judged twice: by ``app.webhooks.stripe.verify`` with all the
configured secrets, and by ``stripe.WebhookSignature.verify_header`` tried with
each secret in turn (accepted when any accepts). The decisions must be equal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import stripe

from app.webhooks.stripe import SignatureRejected, signature_header, verify
from tests.fixtures.stripe import events

TOLERANCE = 300
SECRET = "whsec_current_0123456789abcdefABCDEF"
OLD_SECRET = "whsec_previous_9876543210fedcbaFEDCBA"
OTHER_SECRET = "whsec_somebody_else_00000000000000000"
PAYLOAD = events.body(events.event("invoice.payment_failed", events.invoice("svc-1")))


def _sig(secret: str, ts: int, payload: bytes = PAYLOAD) -> str:
    """A bare v1 signature computed by Stripe's library."""
    header = events.signature(payload, secret, timestamp=ts)
    return header.split("v1=", 1)[1]


@dataclass(frozen=True)
class Case:
    header: str | None
    payload: bytes = PAYLOAD
    secrets: tuple[str, ...] = (SECRET,)


def _cases(now: int) -> dict[str, Case]:
    good = _sig(SECRET, now)
    old = _sig(OLD_SECRET, now)
    return {
        "valid": Case(events.signature(PAYLOAD, SECRET, timestamp=now)),
        "valid, our own signer": Case(signature_header(PAYLOAD, SECRET, timestamp=now)),
        "tampered body (appended byte)": Case(f"t={now},v1={good}", payload=PAYLOAD + b" "),
        "tampered body (changed field)": Case(
            f"t={now},v1={good}", payload=PAYLOAD.replace(b"svc-1", b"svc-2")
        ),
        "empty body": Case(f"t={now},v1={good}", payload=b""),
        "wrong secret": Case(f"t={now},v1={_sig(OTHER_SECRET, now)}"),
        "expired timestamp": Case(events.signature(PAYLOAD, SECRET, timestamp=now - 301)),
        "old but within tolerance": Case(events.signature(PAYLOAD, SECRET, timestamp=now - 290)),
        "timestamp in the future": Case(events.signature(PAYLOAD, SECRET, timestamp=now + 3600)),
        "timestamp changed after signing": Case(f"t={now + 1},v1={good}"),
        "several v1, good one last": Case(f"t={now},v1={'0' * 64},v1={good}"),
        "several v1, good one first": Case(f"t={now},v1={good},v1={'f' * 64}"),
        "several v1, none good": Case(f"t={now},v1={'0' * 64},v1={_sig(OTHER_SECRET, now)}"),
        "v0 only, even if correct": Case(f"t={now},v0={good}"),
        "v0 and v1": Case(f"t={now},v0={'0' * 64},v1={good}"),
        "unknown elements ignored": Case(f"t={now},v1={good},x9=abc,flag"),
        "rotation: signed with the old secret": Case(
            f"t={now},v1={old}", secrets=(SECRET, OLD_SECRET)
        ),
        "rotation: signed with the new secret": Case(
            f"t={now},v1={good}", secrets=(OLD_SECRET, SECRET)
        ),
        "rotation: Stripe signs with both": Case(f"t={now},v1={old},v1={good}", secrets=(SECRET,)),
        "rotation: old secret no longer configured": Case(f"t={now},v1={old}"),
        "uppercase hex": Case(f"t={now},v1={good.upper()}"),
        "truncated signature": Case(f"t={now},v1={good[:-1]}"),
        "first t counts (valid first)": Case(f"t={now},v1={good},t=1"),
        "first t counts (stale first)": Case(f"t=1,t={now},v1={good}"),
        "missing header": Case(None),
        "empty header": Case(""),
        "garbage header": Case("garbage"),
        "no timestamp": Case(f"v1={good}"),
        "no signature": Case(f"t={now}"),
        "timestamp not a number": Case(f"t=abc,v1={good}"),
        "empty timestamp": Case(f"t=,v1={good}"),
        "t without value": Case(f"t,v1={good}"),
        "v1 without value": Case(f"t={now},v1"),
        "empty v1": Case(f"t={now},v1="),
        "semicolons": Case(f"t={now};v1={good}"),
        "uppercase keys": Case(f"T={now},V1={good}"),
        "space before v1": Case(f"t={now}, v1={good}"),
        "only commas": Case(",,,"),
        "non-ASCII signature": Case(f"t={now},v1=é{good[1:]}"),
    }


def ours(case: Case) -> bool:
    try:
        verify(case.payload, case.header, case.secrets, tolerance_seconds=TOLERANCE)
    except SignatureRejected:
        return False
    return True


def stripes(case: Case) -> bool:
    for secret in case.secrets:
        try:
            stripe.WebhookSignature.verify_header(case.payload, case.header, secret, TOLERANCE)
        except stripe.SignatureVerificationError:
            continue
        except TypeError:
            # The library's compare_digest on str raises on a non-ASCII signature:
            # not an acceptance (dcibridge compares bytes and simply refuses it).
            continue
        return True
    return False


NOW = int(time.time())


@pytest.mark.parametrize("name", list(_cases(NOW)))
def test_decision_matches_stripes_library(name: str) -> None:
    case = _cases(int(time.time()))[name]
    assert ours(case) == stripes(case)


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("valid", True),
        ("rotation: signed with the old secret", True),
        ("several v1, good one last", True),
        ("timestamp in the future", True),
        ("expired timestamp", False),
        ("wrong secret", False),
        ("tampered body (appended byte)", False),
        ("v0 only, even if correct", False),
        ("malformed", False),
    ],
)
def test_the_cases_mean_what_they_say(name: str, accepted: bool) -> None:
    """Guards the comparison above against both verifiers agreeing on nonsense."""
    cases = _cases(int(time.time()))
    case = cases.get(name, cases["garbage header"])
    assert ours(case) is accepted


Tweak = Callable[[int, str], str]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(lambda now, sig: f"t=+{now},v1={sig}", id="plus sign"),
        pytest.param(lambda now, sig: f"t= {now},v1={sig}", id="leading space"),
        pytest.param(lambda now, sig: f"t={now} ,v1={sig}", id="trailing space"),
        pytest.param(lambda now, sig: f"t={now},v1={sig}=junk", id="junk after a second ="),
    ],
)
def test_stricter_than_stripes_library_on_headers_stripe_never_sends(header: Tweak) -> None:
    """Deliberate differences: a timestamp must be plain digits, a signature exact.

    Stripe's library parses ``t`` with Python's ``int()`` and cuts a value at a
    second ``=``; Stripe itself never sends such headers, and dcibridge refuses them.
    """
    now = int(time.time())
    case = Case(header(now, _sig(SECRET, now)))
    assert stripes(case) is True
    assert ours(case) is False


def test_the_reason_is_kept_for_the_log_only() -> None:
    now = int(time.time())
    with pytest.raises(SignatureRejected) as expired:
        verify(
            PAYLOAD,
            events.signature(PAYLOAD, SECRET, timestamp=now - 1000),
            [SECRET],
            tolerance_seconds=TOLERANCE,
        )
    assert expired.value.reason == "timestamp outside the tolerance"
    with pytest.raises(SignatureRejected) as wrong:
        verify(PAYLOAD, f"t={now},v1={'0' * 64}", [SECRET], tolerance_seconds=TOLERANCE)
    assert wrong.value.reason == "no matching signature"


def test_the_tolerance_is_a_setting() -> None:
    now = int(time.time())
    header = events.signature(PAYLOAD, SECRET, timestamp=now - 100)
    assert verify(PAYLOAD, header, [SECRET], tolerance_seconds=300) == now - 100
    with pytest.raises(SignatureRejected):
        verify(PAYLOAD, header, [SECRET], tolerance_seconds=60)
