"""Session tokens issued by the simulated auth service."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    token: str
    user_id: int
    issued_at: float


class SessionStore:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._by_token: dict[str, Session] = {}
        self._issued = 0

    def issue(self, user_id: int) -> Session:
        self._issued += 1
        # Same look as the vendor's example token: 24 upper-case hex digits.
        token = secrets.token_hex(12).upper()
        session = Session(str(self._issued), token, user_id, self._clock())
        self._by_token[token] = session
        return session

    def find(self, token: str, *, ttl_seconds: float | None) -> Session | None:
        """The live session for ``token``; expiry is judged with the TTL in force now."""
        session = self._by_token.get(token)
        if session is None:
            return None
        if ttl_seconds is not None and self._clock() - session.issued_at >= ttl_seconds:
            return None
        return session

    def revoke(self, token: str) -> None:
        self._by_token.pop(token, None)

    def __len__(self) -> int:
        return len(self._by_token)
