"""The DCImanager session token: log in once, share it, renew it once when it stops working.

DCImanager does not document how long a token lives, so the rule is: reuse the
token until a call is refused with 401/403, then log in again and repeat the
call once. Many callers refused at the same moment must cause one login, not
one each: every token carries a generation number, and a caller renews only if
the token it was refused with is still the current one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import SecretStr, ValidationError

from app.dci.exceptions import DCIAuthError
from app.dci.models import LoginAnswer
from app.dci.session import DCISession

LOGIN_PATH = "/api/auth/v4/public/token"


@dataclass(frozen=True)
class Credentials:
    email: str
    password: SecretStr


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    generation: int


async def log_in(session: DCISession, credentials: Credentials) -> str:
    # Logging in twice is harmless, so a lost answer may be asked for again.
    payload = await session.send(
        "POST",
        LOGIN_PATH,
        token=None,
        body={"email": credentials.email, "password": credentials.password.get_secret_value()},
        safe_to_repeat=True,
    )
    try:
        return LoginAnswer.model_validate(payload).token
    except ValidationError:
        raise DCIAuthError(
            "DCImanager login answered without a token", method="POST", path=LOGIN_PATH
        ) from None


class TokenManager:
    def __init__(self, login: Callable[[], Awaitable[str]]) -> None:
        self._login = login
        self._lock = asyncio.Lock()
        self._token: Token | None = None
        self._generation = 0

    @property
    def current(self) -> Token | None:
        return self._token

    async def get(self) -> Token:
        token = self._token
        if token is not None:
            return token
        async with self._lock:
            if self._token is None:
                await self._renew_locked()
            assert self._token is not None
            return self._token

    async def renew(self, refused: Token) -> Token:
        """Replace ``refused`` unless another caller already did."""
        async with self._lock:
            if self._token is None or self._token.generation == refused.generation:
                await self._renew_locked()
            assert self._token is not None
            return self._token

    def forget(self) -> None:
        self._token = None

    async def _renew_locked(self) -> None:
        value = await self._login()
        self._generation += 1
        self._token = Token(value=value, generation=self._generation)
