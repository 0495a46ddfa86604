from __future__ import annotations

import pytest

from app.simulator.errors import ErrorKind, SimError
from app.simulator.listing import ListQuery, select, select_objects

ROWS = [
    {"id": 1, "name": "b", "owner": None},
    {"id": 2, "name": "a", "owner": "x@example.com"},
    {"id": 3, "name": "c", "owner": None},
    {"id": 4, "name": "a", "owner": None},
]
FIELDS = {"id", "name", "owner"}


def ids(query: ListQuery) -> list[int]:
    return [row["id"] for row in select(ROWS, fields=FIELDS, query=query).rows]


def test_without_parameters_everything_is_returned_in_order() -> None:
    page = select(ROWS, fields=FIELDS, query=ListQuery())
    assert page.as_json() == {"list": ROWS, "size": 4}


def test_size_counts_matches_before_the_limit() -> None:
    page = select(ROWS, fields=FIELDS, query=ListQuery(where="owner IS null", limit="1,1"))
    assert [row["id"] for row in page.rows] == [3]
    assert page.size == 3


@pytest.mark.parametrize(
    ("limit", "expected"),
    [("2", [1, 2]), ("1,2", [2, 3]), (" 3 , 5 ", [4]), ("9", [1, 2, 3, 4]), ("0", [])],
)
def test_limit_is_count_or_offset_and_count(limit: str, expected: list[int]) -> None:
    assert ids(ListQuery(limit=limit)) == expected


def test_orderby_sorts_by_one_or_more_keys() -> None:
    assert ids(ListQuery(orderby="id desc")) == [4, 3, 2, 1]
    assert ids(ListQuery(orderby="name asc, id desc")) == [4, 2, 1, 3]
    assert ids(ListQuery(orderby="name")) == [2, 4, 1, 3]


def test_nulls_sort_first_ascending() -> None:
    assert ids(ListQuery(orderby="owner, id")) == [1, 3, 4, 2]


def test_where_orderby_and_limit_combine() -> None:
    query = ListQuery(where="owner IS null", orderby="id desc", limit="2")
    assert ids(query) == [4, 3]


@pytest.mark.parametrize(
    "query",
    [
        ListQuery(where="colour EQ 'red'"),
        ListQuery(where="id EQ"),
        ListQuery(orderby="colour"),
        ListQuery(orderby="id sideways"),
        ListQuery(limit="a,b"),
        ListQuery(limit="-1"),
    ],
)
def test_bad_parameters_are_a_400_invalid_query(query: ListQuery) -> None:
    with pytest.raises(SimError) as caught:
        select(ROWS, fields=FIELDS, query=query)
    assert caught.value.kind is ErrorKind.INVALID_QUERY
    assert caught.value.kind.status == 400


def test_unknown_field_is_rejected_even_when_no_row_would_be_looked_at() -> None:
    with pytest.raises(SimError, match="unknown field colour"):
        select([], fields=FIELDS, query=ListQuery(where="id EQ 1 OR colour EQ 'red'"))


def test_objects_are_filtered_on_their_fields_and_only_the_page_is_rendered() -> None:
    rendered: list[int] = []

    def render(row: dict[str, object]) -> dict[str, object]:
        rendered.append(int(str(row["id"])))
        return {**row, "rendered": True}

    page = select_objects(
        ROWS,
        fields=FIELDS,
        query=ListQuery(where="owner IS null", orderby="name desc", limit="0,2"),
        values=lambda row: {key: row[key] for key in FIELDS},
        render=render,
    )
    assert [row["id"] for row in page.rows] == [3, 1]
    assert all(row["rendered"] for row in page.rows)
    assert page.size == 3
    assert rendered == [3, 1]


@pytest.mark.parametrize(
    ("where", "looked_up", "expected"),
    [
        pytest.param("id EQ 3 OR id EQ '1' OR id EQ 9", [{1, 3, 9}], [1, 3], id="ids-only"),
        pytest.param("id EQ 3 OR owner IS null", [], [1, 3, 4], id="not-only-ids"),
    ],
)
def test_a_filter_naming_only_ids_is_answered_by_key(
    where: str, looked_up: list[set[int]], expected: list[int]
) -> None:
    asked: list[set[int]] = []

    def by_id(ids: set[int]) -> list[dict[str, object]]:
        asked.append(ids)
        return [row for row in ROWS if row["id"] in ids]

    page = select_objects(
        ROWS,
        fields=FIELDS,
        query=ListQuery(where=where),
        values=lambda row: row,
        render=lambda row: row,
        by_id=by_id,
    )
    assert [row["id"] for row in page.rows] == expected
    assert asked == looked_up
