"""Send one DCImanager call: headers, repeats that are known to be safe, error mapping, logging.

What is repeated, and why:

- 503 and "never sent" failures (connection refused, connect or pool time-out)
  are repeated for every method, with backoff, within the 503 budget: the
  request was not carried out.
- A read time-out, a dropped connection or a 5xx other than 503 is repeated
  for reads only (``safe_to_repeat``), at most ``READ_REPEATS`` more times and
  without waiting: the time-out itself was the wait. For a write the outcome is
  unknown, so ``DCIOutcomeUnknown`` is raised and the caller looks at the
  server before deciding anything.
- 401/403 are not handled here: logging in again belongs to ``auth``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, NoReturn

import httpx
import structlog

from app.dci.backoff import Backoff, BackoffPolicy
from app.dci.exceptions import (
    DCIAuthError,
    DCIError,
    DCINotFound,
    DCIOutcomeUnknown,
    DCIProtocolError,
    DCIRequestError,
    DCIRetryableError,
)
from app.dci.where import encode_query_value
from app.kit.metrics import DCI_CALLS, DCI_LATENCY, dci_endpoint

READ_REPEATS = 2

_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Anything else from the transport (read/write time-out, dropped connection,
# protocol error) may have happened after the server got the request.
_MAYBE_SENT = (httpx.TransportError,)


# Called before every write is sent (each attempt); it may raise to stop it. The
# worker sets it for the task running an operation, so that a worker whose lease
# may have run out never changes a server another worker now looks after.
WRITE_GUARD: ContextVar[Callable[[], None] | None] = ContextVar("dci_write_guard", default=None)


class DCISession:
    def __init__(
        self, http: httpx.AsyncClient, backoff: BackoffPolicy, *, max_concurrent: int | None
    ) -> None:
        self._http = http
        self._backoff = backoff
        # Calls beyond the connection pool's size wait here rather than in the pool:
        # httpx's pool scans every waiting request each time one is added or done,
        # which in a burst of hundreds costs more CPU than the calls themselves.
        self._slots = asyncio.Semaphore(max_concurrent) if max_concurrent else None
        self._log = structlog.get_logger(__name__)

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        safe_to_repeat: bool | None = None,
        log_path: str | None = None,
    ) -> Any:
        """Return the decoded JSON answer of a 2xx, or raise a ``DCIError``.

        ``log_path`` replaces ``path`` in logs and errors when the path itself
        carries a secret (logout puts the token in it).
        """
        shown = log_path or path
        repeatable = method == "GET" if safe_to_repeat is None else safe_to_repeat
        url = _with_query(path, query)
        headers = _headers(token)
        backoff = self._backoff.start()
        repeats_left = READ_REPEATS
        # Logging in (no token yet) changes nothing in DCImanager's data.
        guard = WRITE_GUARD.get() if method != "GET" and token is not None else None
        while True:
            if guard is not None:
                guard()
            started = time.perf_counter()
            try:
                if self._slots is None:
                    response = await self._http.request(method, url, headers=headers, json=body)
                else:
                    async with self._slots:
                        response = await self._http.request(method, url, headers=headers, json=body)
            except _NEVER_SENT as exc:
                self._log_attempt(method, shown, started, error=type(exc).__name__)
                if await self._wait(backoff, method, shown, reason=type(exc).__name__):
                    continue
                raise DCIRetryableError(
                    f"DCImanager {method} {shown}: not reachable ({type(exc).__name__})",
                    method=method,
                    path=shown,
                ) from exc
            except _MAYBE_SENT as exc:
                self._log_attempt(method, shown, started, error=type(exc).__name__)
                if repeatable and repeats_left > 0:
                    repeats_left -= 1
                    continue
                _raise_interrupted(method, shown, repeatable, exc)
            self._log_attempt(method, shown, started, status=response.status_code)
            status = response.status_code
            if status == httpx.codes.SERVICE_UNAVAILABLE:
                if await self._wait(backoff, method, shown, reason="503"):
                    continue
                _raise_for_status(response, method, shown, DCIRetryableError)
            if status >= httpx.codes.INTERNAL_SERVER_ERROR:
                if repeatable and repeats_left > 0:
                    repeats_left -= 1
                    continue
                _raise_for_status(
                    response, method, shown, DCIRetryableError if repeatable else DCIOutcomeUnknown
                )
            if status >= httpx.codes.BAD_REQUEST:
                _raise_for_status(response, method, shown, _client_error_class(status))
            return _decode(response, method, shown, repeatable)

    async def _wait(self, backoff: Backoff, method: str, path: str, *, reason: str) -> bool:
        delay = await backoff.wait()
        if delay is None:
            return False
        self._log.info("dci.retry", method=method, path=path, reason=reason, delay=round(delay, 3))
        return True

    def _log_attempt(
        self,
        method: str,
        path: str,
        started: float,
        *,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        elapsed = time.perf_counter() - started
        endpoint = dci_endpoint(path)
        DCI_CALLS.labels(method, endpoint, str(status) if status is not None else "error").inc()
        DCI_LATENCY.labels(method, endpoint).observe(elapsed)
        latency_ms = round(elapsed * 1000, 1)
        self._log.debug(
            "dci.request",
            method=method,
            path=path,
            status=status,
            error=error,
            latency_ms=latency_ms,
        )


def _with_query(path: str, query: Mapping[str, str] | None) -> str:
    # The query is rendered by hand: httpx's own encoding escapes quotes and
    # parentheses, which some DCImanager versions then fail to parse.
    if not query:
        return path
    raw = "&".join(f"{key}={encode_query_value(value)}" for key, value in query.items())
    return f"{path}?{raw}"


def _headers(token: str | None) -> dict[str, str]:
    headers = {"isp-box-instance": "true", "accept": "application/json"}
    if token is not None:
        # Same three credentials as every call in the vendor's examples.
        headers["cookie"] = f"ses6={token}"
        headers["x-xsrf-token"] = token
    return headers


def _client_error_class(status: int) -> type[DCIRequestError]:
    if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
        return DCIAuthError
    if status == httpx.codes.NOT_FOUND:
        return DCINotFound
    return DCIRequestError


def _raise_interrupted(method: str, path: str, repeatable: bool, exc: Exception) -> NoReturn:
    if repeatable:
        raise DCIRetryableError(
            f"DCImanager {method} {path}: no answer ({type(exc).__name__})",
            method=method,
            path=path,
        ) from exc
    raise DCIOutcomeUnknown(
        f"DCImanager {method} {path}: sent, but no answer ({type(exc).__name__}); "
        "check the server's state before repeating",
        method=method,
        path=path,
    ) from exc


def _raise_for_status(
    response: httpx.Response, method: str, path: str, error: type[DCIError]
) -> NoReturn:
    code, msg, value = _error_body(response)
    detail = f"[{code}] {msg}" if code is not None or msg else response.reason_phrase
    raise error(
        f"DCImanager {method} {path} -> {response.status_code}: {detail}",
        method=method,
        path=path,
        status=response.status_code,
        code=code,
        msg=msg,
        value=value,
    )


def _error_body(response: httpx.Response) -> tuple[int | None, str | None, Any]:
    try:
        payload = response.json()
    except ValueError:
        return None, None, None
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None, None, None
    code = error.get("code")
    msg = error.get("msg")
    return (
        code if isinstance(code, int) else None,
        msg if isinstance(msg, str) else None,
        error.get("value"),
    )


def _decode(response: httpx.Response, method: str, path: str, repeatable: bool) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        # For a write the work was accepted but we cannot tell what was created.
        error = DCIProtocolError if repeatable else DCIOutcomeUnknown
        raise error(
            f"DCImanager {method} {path} -> {response.status_code}: answer is not JSON",
            method=method,
            path=path,
            status=response.status_code,
        ) from exc
