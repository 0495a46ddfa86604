"""Errors raised by the DCImanager client, grouped by what the caller may safely do next.

- ``DCIRetryableError``: the request was not carried out; try again later.
- ``DCIRequestError``: DCImanager refused the request; repeating it will not help.
- ``DCIOutcomeUnknown``: a write may or may not have happened; look at the
  server's state before doing anything else, never just repeat it.
"""

from __future__ import annotations

from typing import Any


class DCIError(Exception):
    """Base of every DCImanager client error.

    ``code``, ``msg`` and ``value`` come from DCImanager's
    ``{"error": {"code", "msg", "value"}}`` body when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None = None,
        code: int | None = None,
        msg: str | None = None,
        value: Any = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.msg = msg
        self.value = value


class DCIRetryableError(DCIError):
    """Not carried out: 503 past the retry budget, or the request never reached DCImanager."""


class DCIRequestError(DCIError):
    """DCImanager answered 4xx: the request itself is wrong, repeating it will not help."""


class DCINotFound(DCIRequestError):
    """The object addressed does not exist (404)."""


class DCIAuthError(DCIRequestError):
    """Login failed, or a call was still refused after logging in again."""


class DCIOutcomeUnknown(DCIError):
    """A write was sent but no usable answer came back: it may or may not have been done."""


class DCIProtocolError(DCIError):
    """A read answered with a body that does not fit the expected shape."""
