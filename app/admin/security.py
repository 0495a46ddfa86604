"""Passwords, sessions, CSRF tokens and the login rate limit of the dashboard.

Sessions are opaque random tokens looked up server-side (``admin_session``)
rather than signed cookies: signing would key off ``Settings.secret_keys[0]``,
which in simulator mode is a public constant, and a server-side row can be
revoked at once (logout, a disabled user) and carries its own idle clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import Request

from app.config import Settings

SESSION_COOKIE = "dcibridge_admin"
LOGIN_CSRF_COOKIE = "dcibridge_admin_login"
COOKIE_PATH = "/admin"
CSRF_FIELD = "csrf_token"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1_024

# argon2id with the library's defaults (RFC 9106's low-memory profile: 64 MiB, t=3).
_hasher = PasswordHasher()
# Verified against when the username is unknown, so a wrong username costs as much
# time as a wrong password and the answer's timing does not tell which was wrong.
# The hash of a random password nobody kept, with today's parameters; written out
# rather than computed at import, which would cost every process 64 MiB at start.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$3Enw53tZtIrCr3NjK7V/6w$"
    "HcJmZQstdecaXOxZS3kTh4KEGOtSQYWIr8LxNfUdx5s"
)
# Each verification holds 64 MiB while it runs: a burst of sign-ins waits its turn
# rather than adding 64 MiB per attempt to the process.
_VERIFYING = threading.BoundedSemaphore(2)


class WeakPassword(ValueError):
    """The password is too short (or absurdly long) for a dashboard account."""


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    check_password_policy(password)
    return _hasher.hash(password)


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    ok: bool
    # A new hash when the stored one used weaker parameters than today's.
    rehashed: str | None = None


def verify_password(stored_hash: str | None, password: str) -> PasswordCheck:
    """Constant-work check; ``stored_hash=None`` (no such user) always fails."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return PasswordCheck(ok=False)
    try:
        with _VERIFYING:
            _hasher.verify(stored_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return PasswordCheck(ok=False)
    if stored_hash is None:
        return PasswordCheck(ok=False)
    rehashed = _hasher.hash(password) if _hasher.check_needs_rehash(stored_hash) else None
    return PasswordCheck(ok=True, rehashed=rehashed)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    # The token has 256 random bits: a fast hash suffices, nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def _forwarded_first(value: str | None) -> str | None:
    if not value:
        return None
    first = value.split(",")[0].strip()
    return first or None


def request_scheme(request: Request, settings: Settings) -> str:
    """``https`` or ``http`` as the browser sees it.

    X-Forwarded-Proto is believed only with ``admin_trust_proxy_headers``: any
    client can send it, and a forged "http" would drop the Secure flag.
    """
    if settings.admin_trust_proxy_headers:
        forwarded = _forwarded_first(request.headers.get("x-forwarded-proto"))
        if forwarded in ("http", "https"):
            return forwarded
    return request.url.scheme


def client_ip(request: Request, settings: Settings) -> str:
    """The address the rate limit and the audit log attribute a request to.

    Behind a trusted proxy that is the last X-Forwarded-For entry (the one the
    proxy itself appended); anything to its left is the client's own say-so.
    """
    if settings.admin_trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            last = forwarded.split(",")[-1].strip()
            if last:
                return last[:64]
    return (request.client.host if request.client else "unknown")[:64]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path inside the dashboard (no open redirect)."""
    if (
        target
        and target.startswith("/admin")
        and not target.startswith("//")
        and "\\" not in target
        and all(ord(char) > 0x20 for char in target)
    ):
        return target
    return "/admin"
