"""DCImanager-style errors: ``{"error": {"code": int, "msg": str, "value": {}}}``.

Codes 1106 (no request handler) and 3001 (unauthorized) appear in public code
that talks to ISPsystem 6 products; every other code here is the simulator's own
choice, stable so that tests can rely on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any


class ErrorKind(Enum):
    INVALID_REQUEST = (400, 1000, "Invalid request")
    INVALID_QUERY = (400, 1001, "Invalid list query")
    HANDLER_NOT_FOUND = (404, 1106, "Request handler not found")
    METHOD_NOT_ALLOWED = (405, 1107, "Method not allowed")
    SERVER_NOT_FOUND = (404, 2001, "Server not found")
    USER_NOT_FOUND = (404, 2002, "User not found")
    IP_NOT_FOUND = (404, 2003, "IP address not found")
    NETWORK_NOT_FOUND = (404, 2004, "Network not found")
    POOL_NOT_FOUND = (404, 2005, "IP pool not found")
    OS_TEMPLATE_NOT_FOUND = (404, 2006, "OS template not found")
    SERVER_HAS_OWNER = (409, 2101, "Server already has an owner")
    SERVER_HAS_NO_OWNER = (409, 2102, "Server has no owner")
    SERVER_BUSY = (409, 2103, "Another operation is running on the server")
    EMAIL_TAKEN = (409, 2104, "A user with this email already exists")
    ADDRESS_TAKEN = (409, 2105, "IP address is not available")
    NO_FREE_ADDRESS = (409, 2106, "No free IP address")
    IP_NOT_ON_SERVER = (409, 2107, "IP address does not belong to the server")
    NO_RUNNING_OPERATION = (409, 2108, "No operation is running on the server")
    UNAUTHORIZED = (401, 3001, "Unauthorized")
    BAD_CREDENTIALS = (401, 3002, "Invalid email or password")
    SERVICE_UNAVAILABLE = (503, 5003, "Service temporarily unavailable")

    def __init__(self, status: int, code: int, msg: str) -> None:
        self.status = status
        self.code = code
        self.msg = msg


class SimError(Exception):
    def __init__(self, kind: ErrorKind, msg: str | None = None) -> None:
        super().__init__(msg or kind.msg)
        self.kind = kind
        self.msg = msg or kind.msg


def error_body(kind: ErrorKind, msg: str | None = None) -> dict[str, Any]:
    return {"error": {"code": kind.code, "msg": msg or kind.msg, "value": {}}}


def describe_invalid(errors: Iterable[Mapping[str, Any]]) -> str:
    """Pydantic errors as one line: where and why, never the input, which may be a secret."""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ())) or 'body'}: {error.get('msg')}"
        for error in errors
    )
    return problems or ErrorKind.INVALID_REQUEST.msg
