"""The decisions behind ``Idempotency-Key`` (the rules are in ``middleware.py``)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.idempotency import repository
from app.idempotency.exceptions import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
)
from app.idempotency.models import IdempotencyStatus
from app.kit.errors import PROBLEM_CONTENT_TYPE, problem_type
from app.kit.prefer import MAX_WAIT_SECONDS

log = structlog.get_logger(__name__)

# How long an answer is replayed; after that the key counts as never used.
KEY_TTL = timedelta(hours=24)
# An in-progress row older than this belongs to an attempt whose process died, and
# the next attempt takes it over. It must be longer than any request can run, or a
# slow first attempt would run twice at once. The longest is a `Prefer: wait`
# request: up to MAX_WAIT_SECONDS of waiting, after DCImanager's configuration list
# (cut off at 5 s) and SQLite's busy timeout (10 s); four more minutes is a wide
# margin. Not a setting: nothing is gained by tuning it.
STALE_AFTER = timedelta(seconds=MAX_WAIT_SECONDS) + timedelta(minutes=4)
MAX_KEY_LENGTH = 255
# Printable ASCII, as Stripe accepts; anything else is far more likely a client bug
# than a key, and must not end up in logs or the database.
_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}")
# Only the headers that are part of the answer itself (Preference-Applied says why
# it is a 200 or a 202): X-Request-ID belongs to each request, and Content-Length
# is recomputed on replay.
REPLAYED_HEADERS = frozenset({"content-type", "location", "preference-applied"})
# A row can vanish between our insert seeing it and our read (its first attempt was
# released, or it was purged); the insert is then simply tried again.
_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Claim:
    """This attempt owns the key and runs the request; ``locked_at`` is its token."""

    row_id: int
    locked_at: datetime


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first attempt's answer, to be replayed."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def parse_key(values: Sequence[bytes]) -> str:
    """The one ``Idempotency-Key`` header's value, or InvalidIdempotencyKey."""
    if len(values) != 1:
        # Two keys on one request: which one would a retry repeat? Refuse to guess.
        raise InvalidIdempotencyKey(MAX_KEY_LENGTH)
    key = values[0].decode("latin-1")
    if not _KEY.fullmatch(key):
        raise InvalidIdempotencyKey(MAX_KEY_LENGTH)
    return key


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The token of ``Authorization: Bearer <token>``, parsed as the auth dependency does."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                return token
            return None
    return None


def fingerprint(*, method: str, path: str, query_string: bytes, body: bytes) -> str:
    """What makes two requests "the same request" for one key."""
    digest = hashlib.sha256()
    # Each part is length-prefixed so no shift of bytes between parts (a path that
    # ends where a query begins) can make two different requests hash alike.
    for part in (method.encode(), path.encode("utf-8", "surrogateescape"), query_string, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def should_store(status: int, content_type: str, body: bytes) -> bool:
    """Whether an answer shows the endpoint ran, so that a retry must replay it."""
    if 200 <= status < 300:
        return True
    # 401/403: refused before the endpoint ran (a fixed key must be able to retry).
    # 429: likewise refused before running, should a rate limit ever answer it.
    if status in (401, 403, 429):
        return False
    if status == 422 and _is_validation_error(content_type, body):
        return False
    # Other 4xx are the endpoint's own verdict (not found, invalid state, unknown
    # configuration) and are replayed. 5xx rolled the request's transaction back,
    # and 1xx/3xx (a slash redirect) never reached an endpoint: neither is kept.
    return 400 <= status < 500


def _is_validation_error(content_type: str, body: bytes) -> bool:
    if content_type.split(";")[0].strip() != PROBLEM_CONTENT_TYPE:
        return False
    try:
        problem = json.loads(body)
    except ValueError:
        return False
    return isinstance(problem, dict) and problem.get("type") == problem_type("validation_error")


def encode_headers(headers: Iterable[tuple[str, str]]) -> str:
    return json.dumps([[name, value] for name, value in headers])


def _decode_headers(stored: str | None) -> list[tuple[str, str]]:
    return [(str(name), str(value)) for name, value in json.loads(stored or "[]")]


async def claim(
    session: AsyncSession, *, scope: str, key: str, fingerprint: str, now: datetime
) -> Claim | StoredResponse:
    """Start an attempt under the key, or say why not; call in its own transaction.

    Returns a Claim (run the request), a StoredResponse (replay it), or raises
    IdempotencyKeyReused (another request used the key) or IdempotencyKeyInUse
    (the first attempt is still running).
    """
    expires_at = now + KEY_TTL
    for _ in range(_CLAIM_ATTEMPTS):
        row_id = await repository.insert_in_progress(
            session, scope=scope, key=key, fingerprint=fingerprint, now=now, expires_at=expires_at
        )
        if row_id is not None:
            return Claim(row_id=row_id, locked_at=now)
        row = await repository.get_for_update(session, scope=scope, key=key)
        if row is None:
            continue
        if row.expires_at <= now:
            # An expired key counts as never used, whatever it was used for.
            await repository.restart(
                session, row_id=row.id, fingerprint=fingerprint, now=now, expires_at=expires_at
            )
            log.info("idempotency.expired_replaced", idempotency_key=key)
            return Claim(row_id=row.id, locked_at=now)
        if row.fingerprint != fingerprint:
            log.info("idempotency.reused", idempotency_key=key)
            raise IdempotencyKeyReused()
        if row.status is IdempotencyStatus.IN_PROGRESS:
            if now - row.locked_at < STALE_AFTER:
                log.info("idempotency.conflict", idempotency_key=key)
                raise IdempotencyKeyInUse()
            await repository.take_over(session, row_id=row.id, locked_at=now)
            log.warning(
                "idempotency.taken_over",
                idempotency_key=key,
                abandoned_at=row.locked_at.isoformat(),
            )
            return Claim(row_id=row.id, locked_at=now)
        if row.response_status is None:  # pragma: no cover - completed rows always have one
            raise RuntimeError(f"completed idempotency row {row.id} has no response")
        return StoredResponse(
            status=row.response_status,
            headers=_decode_headers(row.response_headers),
            body=(row.response_body or "").encode(),
        )
    # Released under us every time: a first attempt is being retried right now.
    log.info("idempotency.conflict", idempotency_key=key)
    raise IdempotencyKeyInUse()


async def complete(
    session: AsyncSession,
    claimed: Claim,
    *,
    status: int,
    headers: Iterable[tuple[str, str]],
    body: str,
) -> bool:
    return await repository.complete(
        session,
        row_id=claimed.row_id,
        locked_at=claimed.locked_at,
        response_status=status,
        response_headers=encode_headers(headers),
        response_body=body,
    )


async def release(session: AsyncSession, claimed: Claim) -> bool:
    return await repository.release(session, row_id=claimed.row_id, locked_at=claimed.locked_at)
