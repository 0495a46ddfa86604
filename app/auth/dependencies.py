"""The one FastAPI dependency that checks ``Authorization: Bearer <key>``."""

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

_bearer = HTTPBearer(
    auto_error=False, description="An API key issued by `dcibridge api-key create`."
)


def require_scope(needed: Scope) -> Callable[..., Awaitable[ApiClient]]:
    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> ApiClient:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise InvalidApiKey()
        # A session of its own, ended at once: the request's transaction then starts
        # only when the handler touches the database, so it is not held (on SQLite:
        # the write lock) while the handler waits on DCImanager first.
        sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
        async with sessionmaker() as session, session.begin():
            client = await service.authenticate(session, credentials.credentials)
        structlog.contextvars.bind_contextvars(api_client=client.name)
        if not grants(client.scopes, needed):
            raise MissingScope(needed)
        request.state.api_client = client
        return client

    return dependency
