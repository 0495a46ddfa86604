"""Every failure the FastAPI app can raise, answered in DCImanager's error shape."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.simulator.errors import ErrorKind, SimError, describe_invalid, error_body


def error_response(kind: ErrorKind, msg: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(kind, msg), status_code=kind.status)


def install_error_handlers(app: FastAPI) -> None:
    async def on_sim_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SimError)
        return error_response(exc.kind, exc.msg)

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(ErrorKind.INVALID_REQUEST, describe_invalid(exc.errors()))

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            return error_response(ErrorKind.METHOD_NOT_ALLOWED)
        return error_response(ErrorKind.HANDLER_NOT_FOUND)

    app.add_exception_handler(SimError, on_sim_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
