"""``Idempotency-Key`` on every POST under /api/v1, with Stripe's semantics.

A POST whose path starts with the API prefix and that carries an
``Idempotency-Key`` header (1 to 255 printable ASCII characters, else ``400
invalid_idempotency_key``) and a bearer token runs at most once per key and API
client: the key's scope is the hash of the bearer token, so two clients never
share keys. Anything else passes through untouched; a request without a bearer
token gets its 401 from the app.

A request is "the same" when method, path, query string and raw body are
(a sha256 fingerprint). For a key already seen within 24 hours:

- another request under it: ``422 idempotency_key_reused``, and nothing runs;
- the first attempt still running: ``409 idempotency_key_in_use``;
- the first attempt's process died (in progress for longer than any request can
  take): this attempt takes the key over and runs;
- answered: that answer again (status, body, Content-Type, Location,
  Preference-Applied) with ``Idempotent-Replayed: true``. Expired keys count as
  never used.

Which answers are kept for replay, the rule: those that show the endpoint ran.
2xx, and 4xx that are the endpoint's verdict (404 not found, 409 invalid state,
422 unknown configuration...), are kept. Not kept -- the key is released so a
corrected retry runs -- are answers given before the endpoint ran (401 and 403
from authentication, 429, and 422 ``validation_error`` from request validation),
5xx (the request's transaction was rolled back: nothing happened), redirects,
and a request that raised or was never answered.

Each database step is its own short transaction, none open while the app runs:
on SQLite every transaction holds the write lock. The answer is stored before
it is passed on, so a client that has the answer and retries gets the replay,
never a 409. The request body is buffered (to fingerprint it) and handed to the
app unchanged; so is the response (API answers are small). Bodies are never
logged: they can carry passwords.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.service import hash_key
from app.idempotency import service
from app.idempotency.exceptions import IdempotencyError
from app.idempotency.service import Claim, StoredResponse
from app.kit.errors import problem_response
from app.kit.models import utcnow

log = structlog.get_logger(__name__)

IDEMPOTENCY_KEY_HEADER = b"idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"


class IdempotencyMiddleware:
    """Pure ASGI, so the request body can be read once and handed on unchanged."""

    def __init__(self, app: ASGIApp, *, path_prefix: str) -> None:
        self.app = app
        self.path_prefix = path_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith(self.path_prefix)
        ):
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        raw_keys = [value for name, value in headers if name == IDEMPOTENCY_KEY_HEADER]
        token = service.bearer_token(headers)
        if not raw_keys or token is None:
            await self.app(scope, receive, send)
            return
        try:
            key = service.parse_key(raw_keys)
        except IdempotencyError as exc:
            log.info("idempotency.invalid_key")
            await _problem(exc, scope, receive, send)
            return

        body = await _read_body(receive)
        if body is None:
            return  # the client left before sending its request: nothing to answer
        request_fingerprint = service.fingerprint(
            method=scope["method"],
            path=scope["path"],
            query_string=scope.get("query_string", b""),
            body=body,
        )
        sessionmaker: async_sessionmaker[AsyncSession] = scope["app"].state.sessionmaker
        try:
            async with sessionmaker() as session, session.begin():
                outcome = await service.claim(
                    session,
                    scope=hash_key(token),
                    key=key,
                    fingerprint=request_fingerprint,
                    now=utcnow(),
                )
        except IdempotencyError as exc:
            await _problem(exc, scope, receive, send)
            return

        if isinstance(outcome, StoredResponse):
            log.info("idempotency.replayed", idempotency_key=key, status=outcome.status)
            await _replay(outcome, scope, receive, send)
            return
        await _run(self.app, outcome, key, sessionmaker, scope, _replaying(body, receive), send)


async def _run(
    app: ASGIApp,
    claimed: Claim,
    key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Run the app under a claimed key; keep or release its answer before passing it on."""
    start: Message | None = None
    chunks: list[bytes] = []
    settled = False

    async def capture(message: Message) -> None:
        nonlocal start, settled
        if settled:
            await send(message)
        elif message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body" and start is not None:
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            settled = True
            body = b"".join(chunks)
            await _settle(sessionmaker, claimed, key, start, body)
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})
        else:  # pragma: no cover - no other message comes before a response's end
            await send(message)

    try:
        await app(scope, receive, capture)
    except Exception:
        if not settled:
            # Raised before answering: the outermost middleware turns it into a 500.
            await _release(sessionmaker, claimed, key, status=None)
        raise
    if not settled:  # pragma: no cover - the app returned without answering
        await _release(sessionmaker, claimed, key, status=None)


async def _settle(
    sessionmaker: async_sessionmaker[AsyncSession],
    claimed: Claim,
    key: str,
    start: Message,
    body: bytes,
) -> None:
    status = int(start["status"])
    kept: list[tuple[str, str]] = []
    for raw_name, raw_value in start.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        if name in service.REPLAYED_HEADERS:
            kept.append((name, raw_value.decode("latin-1")))
    content_type = next((value for name, value in kept if name == "content-type"), "")
    if not service.should_store(status, content_type, body):
        await _release(sessionmaker, claimed, key, status=status)
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:  # pragma: no cover - every API answer is JSON
        log.warning("idempotency.unstorable_response", idempotency_key=key, status=status)
        await _release(sessionmaker, claimed, key, status=status)
        return
    try:
        async with sessionmaker() as session, session.begin():
            stored = await service.complete(
                session, claimed, status=status, headers=kept, body=text
            )
    except Exception:
        # The request did run; the answer still goes out. The key stays in progress
        # and a retry is refused until the row is stale, then runs again: the same
        # outcome as a crash at this point.
        log.exception("idempotency.store_failed", idempotency_key=key, status=status)
        return
    if stored:
        log.debug("idempotency.stored", idempotency_key=key, status=status)
    else:
        log.warning("idempotency.lost", idempotency_key=key, status=status)


async def _release(
    sessionmaker: async_sessionmaker[AsyncSession],
    claimed: Claim,
    key: str,
    *,
    status: int | None,
) -> None:
    try:
        async with sessionmaker() as session, session.begin():
            released = await service.release(session, claimed)
    except Exception:
        # Left in progress, the key is taken over once stale: retries are only delayed.
        log.exception("idempotency.release_failed", idempotency_key=key, status=status)
        return
    if released:
        log.info("idempotency.released", idempotency_key=key, status=status)
    else:
        log.warning("idempotency.lost", idempotency_key=key, status=status)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the buffered body, then defers to the real one."""
    delivered = False

    async def receive_again() -> Message:
        nonlocal delivered
        if delivered:
            # Only a disconnect can come now; the app may wait for one.
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again


async def _replay(stored: StoredResponse, scope: Scope, receive: Receive, send: Send) -> None:
    headers: dict[str, str] = dict(stored.headers)
    headers[REPLAYED_HEADER] = "true"
    response = Response(content=stored.body, status_code=stored.status, headers=headers)
    await response(scope, receive, send)


async def _problem(exc: IdempotencyError, scope: Scope, receive: Receive, send: Send) -> None:
    extensions: dict[str, Any] = exc.extensions
    response = problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=scope["path"],
        headers=exc.headers or None,
        **extensions,
    )
    await response(scope, receive, send)
