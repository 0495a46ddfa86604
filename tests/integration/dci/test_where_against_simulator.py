"""What the builder renders is what the simulator's parser reads back."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from app.dci.where import Expr, Field, encode_query_value
from app.simulator.where import evaluate, parse

ROWS = [
    {"id": 1, "email": "o'brien+tag@example.com", "owner_email": None, "is_new": False},
    {"id": 2, "email": "plain@example.com", "owner_email": "x@example.com", "is_new": True},
    {"id": 3, "email": "50%off@example.com", "owner_email": None, "is_new": True},
]


@pytest.mark.parametrize(
    ("expr", "ids"),
    [
        (Field("email").eq("o'brien+tag@example.com"), [1]),
        (Field("owner_email").is_null() & Field("is_new").eq(False), [1]),
        (Field("owner_email").is_not_null(), [2]),
        (Field("id").eq(1) | Field("id").eq(3), [1, 3]),
        (~(Field("id").eq(1) | Field("id").eq(3)), [2]),
        (Field("email").cp("%off@%") & ~Field("email").eq("x' OR id NE '0"), [3]),
        (Field("id").ne(2) & (Field("is_new").eq(True) | Field("owner_email").is_null()), [1, 3]),
    ],
)
def test_rendered_and_url_encoded_where_survives_the_round_trip(expr: Expr, ids: list[int]) -> None:
    raw_query = f"where={encode_query_value(str(expr))}"
    [decoded] = parse_qs(raw_query)["where"]
    assert decoded == str(expr)
    node = parse(decoded)
    assert [row["id"] for row in ROWS if evaluate(node, row)] == ids
