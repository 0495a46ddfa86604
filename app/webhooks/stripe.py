"""Stripe's webhook signature, checked the way Stripe specifies it.

``Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]`` where each ``v1`` is
HMAC-SHA256, keyed with the endpoint's signing secret (the whole ``whsec_...``
string), of ``"<t>.<raw request body>"``. Elements of other schemes (``v0``, or
anything Stripe adds later) are ignored. A request is genuine when any ``v1``
equals the expected signature under any configured secret (several during a
secret rollover) and ``t`` is no older than the tolerance.

Decisions match Stripe's own library (``stripe.WebhookSignature.verify_header``,
compared in tests/unit/webhooks) on every header Stripe sends and on malformed
ones, with two deliberate differences, both stricter and both on headers Stripe
never sends: ``t`` must be plain ASCII digits (the library takes whatever
Python's ``int()`` takes, such as ``" 17"``, ``"+17"`` or ``"1_7"``), and a
``v1`` value is everything after its first ``=`` (the library stops at a second
``=``, so ``v1=<good hex>=junk`` passes there). Like the library, the first
``t`` counts and a timestamp in the future is not refused.

The body is signed as bytes, before any parsing: the request is authenticated
before dcibridge reads anything in it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

SIGNATURE_HEADER = "stripe-signature"
SCHEME = "v1"


class SignatureRejected(Exception):
    """The signature does not prove the request came from Stripe.

    ``reason`` is for dcibridge's own log only; the sender gets one generic answer.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: str | None = None
    signatures: list[str] = []
    for element in header.split(","):
        key, has_value, value = element.partition("=")
        if key == "t":
            if not has_value:
                raise SignatureRejected("malformed header")
            if timestamp is None:
                timestamp = value
        elif key == SCHEME:
            if not has_value:
                raise SignatureRejected("malformed header")
            signatures.append(value)
    if timestamp is None or not (timestamp.isascii() and timestamp.isdigit()):
        raise SignatureRejected("malformed header")
    if not signatures:
        raise SignatureRejected(f"no {SCHEME} signature")
    return int(timestamp), signatures


def expected_signature(secret: str, timestamp: int, payload: bytes) -> str:
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def verify(
    payload: bytes,
    header: str | None,
    secrets: Iterable[str],
    *,
    tolerance_seconds: float,
    now: float | None = None,
) -> int:
    """The signed timestamp when ``header`` proves ``payload`` came from Stripe.

    Raises ``SignatureRejected`` otherwise. Every candidate is compared in
    constant time, and all of them are compared, whichever matches.
    """
    if not header:
        raise SignatureRejected("no Stripe-Signature header")
    timestamp, signatures = _parse(header)
    matched = False
    for secret in secrets:
        expected = expected_signature(secret, timestamp, payload).encode()
        for candidate in signatures:
            # compare_digest on bytes: a non-ASCII candidate is simply unequal.
            matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureRejected("no matching signature")
    current = time.time() if now is None else now
    if timestamp < current - tolerance_seconds:
        raise SignatureRejected("timestamp outside the tolerance")
    return timestamp


def signature_header(payload: bytes, secret: str, *, timestamp: int) -> str:
    """A ``Stripe-Signature`` value for ``payload``: what Stripe would send (tests, tools)."""
    return f"t={timestamp},{SCHEME}={expected_signature(secret, timestamp, payload)}"
