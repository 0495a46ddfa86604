"""Opaque cursors for keyset pagination (newest first, by id)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import TypeVar

from app.kit.errors import DCIBridgeError


class InvalidCursor(DCIBridgeError):
    status = 422
    code = "invalid_cursor"
    title = "The pagination cursor is not valid"


def encode_cursor(kind: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> int:
    """The id the previous page ended at; a cursor of another list is refused."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        last_id = int(value)
        if prefix != kind or not 0 < last_id < 2**63:
            raise ValueError(raw)
        return last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("Use the `next_cursor` value of a previous page.") from None


RowT = TypeVar("RowT")


def split_page(
    rows: Sequence[RowT],
    *,
    kind: str,
    limit: int,
    id_of: Callable[[RowT], int] = attrgetter("id"),
) -> tuple[list[RowT], str | None]:
    """Rows fetched with ``limit + 1``: the page, and a cursor if more follow."""
    page = list(rows[:limit])
    return page, encode_cursor(kind, id_of(page[-1])) if len(rows) > limit else None
