"""OpenAPI helpers so every route documents its problem+json answers the same way."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from app.kit.errors import PROBLEM_CONTENT_TYPE


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:dcibridge:problem:not_found"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_CONTENT_TYPE: {}},
        }
        for status in statuses
    }


_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: the first answer to this key is stored for 24 h and "
    "replayed for the same request (see README, Idempotency).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_IDEMPOTENCY_PROBLEMS = {
    "400": "The Idempotency-Key header is not valid",
    "409": "A request with this Idempotency-Key is still running",
    "422": "This Idempotency-Key was used with a different request",
}


def document_idempotency(app: FastAPI) -> None:
    """Add the Idempotency-Key header and its answers to every authenticated POST.

    The header is handled by a middleware, which FastAPI cannot see, so the
    generated document is completed here once.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for path_item in schema.get("paths", {}).values():
            post = path_item.get("post")
            if post is None or not post.get("security"):
                continue
            post.setdefault("parameters", []).append(_IDEMPOTENCY_HEADER)
            for status, description in _IDEMPOTENCY_PROBLEMS.items():
                post["responses"].setdefault(
                    status,
                    {
                        "description": description,
                        "content": {
                            PROBLEM_CONTENT_TYPE: {
                                "schema": {"$ref": "#/components/schemas/Problem"}
                            }
                        },
                    },
                )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
