"""Builder for DCImanager list filters (the ``where`` query parameter).

Expressions are immutable; combine them with ``&``, ``|`` and ``~`` and render
with ``str()``::

    (Field("owner_email").is_null() & Field("state").eq("ok")).render()
    # "(owner_email IS null) AND state EQ 'ok'"

String literals are single-quoted with embedded quotes doubled, so a value can
never end the literal early and inject its own condition.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from urllib.parse import quote_plus

Scalar = str | int | bool

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
# Public DCImanager clients send quotes, parentheses and commas as they are and
# spaces as "+": some versions parse the percent-encoded forms badly. A literal
# "+" must still be encoded, or the server would read it back as a space.
_QUERY_SAFE_CHARS = "'(),"


def literal(value: Scalar) -> str:
    # bool before int: True is an int to Python but "true" to DCImanager.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"unsupported where literal: {type(value).__name__}")


def encode_query_value(value: str) -> str:
    return quote_plus(value, safe=_QUERY_SAFE_CHARS)


class Expr(ABC):
    @abstractmethod
    def render(self) -> str: ...

    def __str__(self) -> str:
        return self.render()

    def __and__(self, other: Expr) -> Expr:
        return And((*_flatten(self, And), *_flatten(other, And)))

    def __or__(self, other: Expr) -> Expr:
        return Or((*_flatten(self, Or), *_flatten(other, Or)))

    def __invert__(self) -> Expr:
        return Not(self)


@dataclass(frozen=True)
class Field:
    """A column to filter on; its methods build the conditions."""

    name: str

    def __post_init__(self) -> None:
        # Field names are spliced in unquoted, so only plain identifiers are allowed.
        if not _FIELD_NAME.fullmatch(self.name):
            raise ValueError(f"invalid where field name: {self.name!r}")

    def eq(self, value: Scalar) -> Expr:
        return Comparison(self.name, "EQ", value)

    def ne(self, value: Scalar) -> Expr:
        return Comparison(self.name, "NE", value)

    def cp(self, pattern: str) -> Expr:
        """LIKE-style match; ``%`` in ``pattern`` is the wildcard."""
        return Comparison(self.name, "CP", pattern)

    def is_null(self) -> Expr:
        return NullTest(self.name, negated=False)

    def is_not_null(self) -> Expr:
        return NullTest(self.name, negated=True)


@dataclass(frozen=True)
class Comparison(Expr):
    field: str
    operator: str
    value: Scalar

    def render(self) -> str:
        return f"{self.field} {self.operator} {literal(self.value)}"


@dataclass(frozen=True)
class NullTest(Expr):
    field: str
    negated: bool

    def render(self) -> str:
        return f"{self.field} IS NOT null" if self.negated else f"{self.field} IS null"


@dataclass(frozen=True)
class And(Expr):
    parts: tuple[Expr, ...]

    def render(self) -> str:
        return " AND ".join(_operand(part) for part in self.parts)


@dataclass(frozen=True)
class Or(Expr):
    parts: tuple[Expr, ...]

    def render(self) -> str:
        return " OR ".join(_operand(part) for part in self.parts)


@dataclass(frozen=True)
class Not(Expr):
    inner: Expr

    def render(self) -> str:
        return f"NOT ({self.inner.render()})"


def _flatten(expr: Expr, kind: type[And] | type[Or]) -> tuple[Expr, ...]:
    return expr.parts if isinstance(expr, kind) else (expr,)


def _operand(expr: Expr) -> str:
    # Comparisons bind tighter than AND/OR, so they need no parentheses. Null
    # tests are wrapped anyway to match the form known to work on real
    # instances: "(owner_email IS null) AND is_new EQ false".
    if isinstance(expr, Comparison | Not):
        return expr.render()
    return f"({expr.render()})"
