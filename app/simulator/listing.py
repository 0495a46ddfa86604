"""The ``where`` / ``orderby`` / ``limit`` query parameters every list call accepts."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from app.simulator.errors import ErrorKind, SimError
from app.simulator.where import Node, WhereError, equality_keys, evaluate, fields_of, parse

Row = Mapping[str, Any]
T = TypeVar("T")

_ORDER_TERM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s+(asc|desc))?\s*$", re.IGNORECASE)
_LIMIT = re.compile(r"^\s*(\d+)\s*(?:,\s*(\d+)\s*)?$")


@dataclass(frozen=True, slots=True)
class ListQuery:
    where: str | None = None
    orderby: str | None = None
    limit: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row]
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"list": self.rows, "size": self.size}


def select(rows: Sequence[Row], *, fields: Collection[str], query: ListQuery) -> Page:
    """Filter, sort and cut ``rows``; ``size`` counts the matches before the cut."""
    return select_objects(rows, fields=fields, query=query, values=_itself, render=_itself)


def select_objects(
    items: Sequence[T],
    *,
    fields: Collection[str],
    query: ListQuery,
    values: Callable[[T], Row],
    render: Callable[[T], Row],
    by_id: Callable[[set[int]], Sequence[T]] | None = None,
) -> Page:
    """``select`` for objects: ``values`` gives the fields a query may name, cheaply;
    only the page that is returned is rendered in full. ``by_id`` (the objects
    with those ids, in ``items``' order) answers a filter that only names ids, as a
    database's primary key would, so such a list costs what it names."""
    if not query.where and not query.orderby:
        matching = list(items)
    else:
        node = _parse_where(query.where, fields) if query.where else None
        if node is not None and by_id is not None:
            keys = equality_keys(node, "id")
            if keys is not None:
                items = by_id({int(key) for key in keys if key.isdigit()})
        keyed = [(values(item), item) for item in items]
        if node is not None:
            keyed = [pair for pair in keyed if evaluate(node, pair[0])]
        if query.orderby:
            keyed = _sort(keyed, query.orderby, fields)
        matching = [item for _, item in keyed]
    size = len(matching)
    if query.limit:
        offset, count = _parse_limit(query.limit)
        matching = matching[offset : offset + count]
    return Page([render(item) for item in matching], size)


def _itself(row: Row) -> Row:
    return row


def _parse_where(where: str, fields: Collection[str]) -> Node:
    try:
        node = parse(where)
    except WhereError as exc:
        raise SimError(ErrorKind.INVALID_QUERY, f"where: {exc}") from exc
    unknown = sorted(fields_of(node) - set(fields))
    if unknown:
        raise SimError(ErrorKind.INVALID_QUERY, f"where: unknown field {', '.join(unknown)}")
    return node


def _sort(rows: list[tuple[Row, T]], orderby: str, fields: Collection[str]) -> list[tuple[Row, T]]:
    terms: list[tuple[str, bool]] = []
    for term in orderby.split(","):
        match = _ORDER_TERM.match(term)
        if not match:
            raise SimError(ErrorKind.INVALID_QUERY, f"orderby: cannot parse {term.strip()!r}")
        field, direction = match.group(1), (match.group(2) or "asc").lower()
        if field not in fields:
            raise SimError(ErrorKind.INVALID_QUERY, f"orderby: unknown field {field}")
        terms.append((field, direction == "desc"))
    # Stable sorts applied from the least significant term give a multi-key order.
    for field, descending in reversed(terms):
        rows = sorted(rows, key=partial(_sort_key, field), reverse=descending)
    return rows


def _sort_key(field: str, keyed: tuple[Row, Any]) -> tuple[int, float, str]:
    # NULLs first, then numbers by value, then everything else by text, as in SQL.
    value = keyed[0].get(field)
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, int | float):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def _parse_limit(limit: str) -> tuple[int, int]:
    match = _LIMIT.match(limit)
    if not match:
        raise SimError(ErrorKind.INVALID_QUERY, f"limit: cannot parse {limit!r}")
    if match.group(2) is None:
        return 0, int(match.group(1))
    return int(match.group(1)), int(match.group(2))
