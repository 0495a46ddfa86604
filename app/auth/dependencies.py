"""The FastAPI dependencies that check ``Authorization: Bearer <key>``.

The key is looked up in the database on every request, so a revoked key stops
working at once. Two flavours differ only in which transaction does the lookup:

- ``require_scope``: a short transaction of its own, ended before the handler
  runs. For handlers that may wait on something else (DCImanager) before their
  own database work: the request's transaction then starts only when the handler
  touches the database, so it is not held meanwhile (on SQLite: the write lock).
- ``require_scope_in_request``: the request's own read-only session
  (``ReadSessionDep``). For handlers that only read: one connection checkout and
  one transaction per request instead of two, which is most of what a simple
  read costs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import service
from app.auth.exceptions import InvalidApiKey, MissingScope
from app.auth.models import ApiClient
from app.auth.scopes import Scope, grants
from app.kit.db import ReadSessionDep

_bearer = HTTPBearer(
    auto_error=False, description="An API key issued by `dcibridge api-key create`."
)


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidApiKey()
    return credentials.credentials


def _authorize(request: Request, client: ApiClient, needed: Scope) -> ApiClient:
    structlog.contextvars.bind_contextvars(api_client=client.name)
    if not grants(client.scopes, needed):
        raise MissingScope(needed)
    request.state.api_client = client
    return client


def require_scope(needed: Scope) -> Callable[..., Awaitable[ApiClient]]:
    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> ApiClient:
        token = _token(credentials)
        sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
        async with sessionmaker() as session, session.begin():
            client = await service.authenticate(session, token)
        return _authorize(request, client, needed)

    return dependency


def require_scope_in_request(needed: Scope) -> Callable[..., Awaitable[ApiClient]]:
    async def dependency(
        request: Request,
        session: ReadSessionDep,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> ApiClient:
        token = _token(credentials)
        # The handler's own ReadSessionDep is this same session (FastAPI resolves a
        # dependency once per request); a refused key rolls it back like any error.
        client = await service.authenticate(session, token)
        return _authorize(request, client, needed)

    return dependency
