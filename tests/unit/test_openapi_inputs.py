"""Every text input the API documents refuses NUL (PostgreSQL cannot store it),
so a field added later without the constraint fails here, not in production."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from app.config import Settings
from app.main import create_app

# Text that cannot carry a raw NUL by the time it is used: enums are matched
# whole, URLs come back percent-encoded, timestamps are parsed, and a cursor is
# decoded and checked (a bad one is a 422 ``invalid_cursor``).
_SAFE_FORMATS = {"uri", "date-time"}
_DECODED_PARAMETERS = {"cursor"}


def _text_inputs(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    components = document["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def strings(schema: dict[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
        schema = resolve(schema)
        for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
            yield from strings(branch, where)
        if schema.get("type") == "string":
            yield where, schema
        if schema.get("type") == "array" and "items" in schema:
            yield from strings(schema["items"], f"{where}[]")
        for name, field in schema.get("properties", {}).items():
            yield from strings(field, f"{where}.{name}")

    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] in ("query", "path") and (
                    parameter["name"] not in _DECODED_PARAMETERS
                ):
                    where = f"{method.upper()} {path} {parameter['in']} {parameter['name']}"
                    yield from strings(parameter["schema"], where)
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                yield from strings(media["schema"], f"{method.upper()} {path} body")


def test_every_documented_text_input_refuses_nul() -> None:
    document = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    checked, unguarded = 0, []
    for where, schema in _text_inputs(document):
        if "enum" in schema or schema.get("format") in _SAFE_FORMATS:
            continue
        checked += 1
        pattern = schema.get("pattern")
        if pattern is None or re.search(pattern, "svc\x00") is not None:
            unguarded.append(where)
    assert unguarded == []
    # The walk itself found the inputs it is meant to guard.
    assert checked >= 20
