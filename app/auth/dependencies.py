"""The one FastAPI dependency that checks ``Authorization: Bearer <key>``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import service
from app.auth.exceptions import InvalidApiKey, MissingScope
from app.auth.models import ApiClient
from app.auth.scopes import Scope, grants
from app.kit.db import SessionDep

_bearer = HTTPBearer(
    auto_error=False, description="An API key issued by `dcibridge api-key create`."
)


def require_scope(needed: Scope) -> Callable[..., Awaitable[ApiClient]]:
    async def dependency(
        request: Request,
        session: SessionDep,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> ApiClient:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise InvalidApiKey()
        client = await service.authenticate(session, credentials.credentials)
        structlog.contextvars.bind_contextvars(api_client=client.name)
        if not grants(client.scopes, needed):
            raise MissingScope(needed)
        request.state.api_client = client
        return client

    return dependency
