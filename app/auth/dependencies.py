"""The FastAPI dependencies that check ``Authorization: Bearer <key>``.

The key is looked up in the database on every request, so a revoked key stops
working at once. The flavours differ only in which transaction does the lookup:

- ``require_scope``: a short transaction of its own, ended before the handler
  runs. For handlers that wait on something else (DCImanager) while they hold
  their session: the key's check then holds nothing meanwhile.
- ``require_scope_in_request``: the request's read-only session
  (``ReadSessionDep``), for handlers that only read.
- ``require_scope_in_write``: the request's own session (``SessionDep``), for
  handlers that write and wait on nothing once they touch the database.

The last two make one connection checkout per request instead of two, which is
most of what a simple request costs. ``BearerToken`` and ``authorize`` serve a
handler that checks the key in the same statement as its own read, one round
trip instead of two (``GET /orders/{id}``, which billing polls).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.requests import HTTPConnection
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import service
from app.auth.exceptions import InvalidApiKey, MissingScope
from app.auth.models import Caller
from app.auth.scopes import Scope, grants
from app.kit.db import get_read_session, get_session


class _BearerKey(HTTPBearer):
    """``Authorization: Bearer <key>``, giving the key itself (401 when there is
    none): one dependency where a function depending on ``HTTPBearer`` would be
    two, each of which FastAPI resolves anew on every request."""

    async def __call__(self, request: HTTPConnection) -> str:  # type: ignore[override]
        credentials = await super().__call__(request)
        if credentials is None:
            raise InvalidApiKey()
        return credentials.credentials


_bearer_key = _BearerKey(
    auto_error=False,
    description="An API key issued by `dcibridge api-key create`.",
    scheme_name="HTTPBearer",
)


def authorize(request: Request, client: Caller | None, needed: Scope) -> Caller:
    """The key's verdict: ``client`` is whom it belongs to, None if it is unknown or
    its client disabled."""
    if client is None:
        raise InvalidApiKey()
    structlog.contextvars.bind_contextvars(api_client=client.name)
    if not grants(client.scopes, needed):
        raise MissingScope(needed)
    request.state.api_client = client
    return client


def require_scope(needed: Scope) -> Callable[..., Awaitable[Caller]]:
    async def dependency(
        request: Request,
        token: str = Depends(_bearer_key),
    ) -> Caller:
        sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
        async with sessionmaker() as session, session.begin():
            client = await service.authenticate(session, token)
        return authorize(request, client, needed)

    return dependency


def _in_session(
    needed: Scope, session_dependency: Callable[[Request], AsyncIterator[AsyncSession]]
) -> Callable[..., Awaitable[Caller]]:
    async def dependency(
        request: Request,
        # The handler's own session (FastAPI resolves a dependency once per
        # request); a refused key rolls it back like any error.
        session: AsyncSession = Depends(session_dependency, scope="function"),
        token: str = Depends(_bearer_key),
    ) -> Caller:
        client = await service.authenticate(session, token)
        return authorize(request, client, needed)

    return dependency


def require_scope_in_request(needed: Scope) -> Callable[..., Awaitable[Caller]]:
    return _in_session(needed, get_read_session)


def require_scope_in_write(needed: Scope) -> Callable[..., Awaitable[Caller]]:
    """The handler's transaction starts with this check."""
    return _in_session(needed, get_session)


# The presented key, not yet checked: the handler passes it to ``authorize``.
BearerToken = Annotated[str, Depends(_bearer_key)]
