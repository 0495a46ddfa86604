"""One error hierarchy, rendered as RFC 9457 problem details by one set of handlers."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:dcibridge:problem:"


def problem_type(code: str) -> str:
    return f"{PROBLEM_TYPE_PREFIX}{code}"


class DCIBridgeError(Exception):
    """Base of every error the API reports on purpose.

    Subclasses set ``status``, ``code`` (the stable, machine-readable part of the
    problem ``type``) and ``title``; ``detail`` explains this occurrence and must
    never carry a secret.
    """

    status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"
    title: str = "Internal server error"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}


class NotFound(DCIBridgeError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"
    title = "Not found"


class Unauthorized(DCIBridgeError):
    status = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"
    title = "Missing or invalid API key"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["WWW-Authenticate"] = "Bearer"


class Forbidden(DCIBridgeError):
    status = HTTPStatus.FORBIDDEN
    code = "insufficient_scope"
    title = "The API key lacks a required scope"


class DCIManagerUnavailable(DCIBridgeError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "dcimanager_unavailable"
    title = "DCImanager cannot be reached"


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    status = int(status)
    body: dict[str, Any] = {"type": problem_type(code), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers)


_HTTP_STATUS_CODES = {
    HTTPStatus.NOT_FOUND: "not_found",
    HTTPStatus.METHOD_NOT_ALLOWED: "method_not_allowed",
    HTTPStatus.UNAUTHORIZED: "unauthorized",
    HTTPStatus.FORBIDDEN: "insufficient_scope",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "request_too_large",
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
}


async def _handle_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DCIBridgeError)
    return problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        headers=exc.headers or None,
        **exc.extensions,
    )


async def _handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return problem_response(
        status=HTTPStatus.UNPROCESSABLE_ENTITY,
        code="validation_error",
        title="The request is not valid",
        detail=f"{len(errors)} field(s) failed validation",
        instance=request.url.path,
        errors=errors,
    )


async def _handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = HTTPStatus(exc.status_code)
    return problem_response(
        status=status,
        code=_HTTP_STATUS_CODES.get(status, status.phrase.lower().replace(" ", "_")),
        title=status.phrase,
        detail=exc.detail if isinstance(exc.detail, str) and exc.detail != status.phrase else None,
        instance=request.url.path,
        headers=getattr(exc, "headers", None),
    )


def internal_error_response(path: str) -> JSONResponse:
    return problem_response(
        status=HTTPStatus.INTERNAL_SERVER_ERROR,
        code="internal_error",
        title="Internal server error",
        detail="An unexpected error occurred; it has been logged with this request's id.",
        instance=path,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DCIBridgeError, _handle_domain_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
