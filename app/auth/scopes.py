from __future__ import annotations

import enum
from collections.abc import Collection


class Scope(enum.StrEnum):
    """What an API key may do. ``admin`` implies every other scope."""

    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"
    ADMIN = "admin"


DEFAULT_SCOPES = (Scope.ORDERS_READ, Scope.ORDERS_WRITE)


def grants(held: Collection[str], needed: Scope) -> bool:
    return Scope.ADMIN in held or needed in held
