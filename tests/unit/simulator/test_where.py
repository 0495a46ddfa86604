from __future__ import annotations

import pytest

from app.simulator.where import (
    And,
    Compare,
    IsNull,
    Not,
    Op,
    Or,
    WhereError,
    equality_keys,
    evaluate,
    fields_of,
    parse,
    tokenize,
)

ROW: dict[str, object] = {
    "id": 7,
    "owner_email": None,
    "is_new": False,
    "state": "ok",
    "configuration": "E-2288G-32Gb-2x480SSD",
    "domain": "O'Brien.example",
    "server": "7",
}


def matches(expression: str, row: dict[str, object] = ROW) -> bool:
    return evaluate(parse(expression), row)


def test_the_real_integrations_filter_parses_into_the_expected_tree() -> None:
    assert parse("(owner_email IS null) AND is_new EQ false") == And(
        IsNull("owner_email", negated=False), Compare("is_new", Op.EQ, False)
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("id EQ 7", True),
        ("id EQ 8", False),
        ("id NE 8", True),
        ("id EQ '7'", True),
        ("server EQ 7", True),
        ("state EQ 'ok'", True),
        ("state EQ 'OK'", False),
        ("is_new EQ false", True),
        ("is_new EQ true", False),
        ("owner_email IS null", True),
        ("owner_email IS NOT null", False),
        ("state IS NOT NULL", True),
        ("configuration CP 'E-2288G%'", True),
        ("configuration CP '%480ssd'", True),
        ("configuration CP 'E_2288G%'", True),
        ("configuration CP 'E-2288G'", False),
        ("owner_email CP '%'", False),
        ("owner_email EQ 'x'", False),
        ("owner_email NE 'x'", False),
        ("domain EQ 'O''Brien.example'", True),
        ("NOT state EQ 'ok'", False),
        ("NOT NOT state EQ 'ok'", True),
        ("id eq 7 and state eq 'ok'", True),
    ],
)
def test_operators(expression: str, expected: bool) -> None:
    assert matches(expression) is expected


def test_and_binds_tighter_than_or() -> None:
    # Read as: id EQ 1 OR (id EQ 7 AND state EQ 'ok')
    assert parse("id EQ 1 OR id EQ 7 AND state EQ 'ok'") == Or(
        Compare("id", Op.EQ, 1),
        And(Compare("id", Op.EQ, 7), Compare("state", Op.EQ, "ok")),
    )
    assert matches("id EQ 7 OR id EQ 1 AND state EQ 'bad'")
    assert not matches("(id EQ 7 OR id EQ 1) AND state EQ 'bad'")


def test_not_applies_to_the_nearest_operand_only() -> None:
    assert parse("NOT id EQ 1 AND state EQ 'ok'") == And(
        Not(Compare("id", Op.EQ, 1)), Compare("state", Op.EQ, "ok")
    )


def test_chains_associate_to_the_left() -> None:
    assert parse("id EQ 1 OR id EQ 2 OR id EQ 3") == Or(
        Or(Compare("id", Op.EQ, 1), Compare("id", Op.EQ, 2)), Compare("id", Op.EQ, 3)
    )


def test_doubled_quote_is_one_quote_and_keywords_inside_strings_are_text() -> None:
    assert parse("domain EQ 'it''s AND OR ( )'") == Compare("domain", Op.EQ, "it's AND OR ( )")
    assert parse("domain EQ ''''") == Compare("domain", Op.EQ, "'")
    assert parse("domain EQ ''") == Compare("domain", Op.EQ, "")


def test_numbers_keep_their_kind() -> None:
    assert parse("id EQ -3") == Compare("id", Op.EQ, -3)
    assert parse("id EQ 2.5") == Compare("id", Op.EQ, 2.5)
    assert matches("id EQ 7.0")


def test_like_metacharacters_of_regex_are_literal() -> None:
    assert matches("domain CP '%.example'")
    assert not matches("domain CP '%xexample'")


def test_fields_of_lists_every_field_named() -> None:
    node = parse("(a EQ 1 OR NOT b IS null) AND c CP 'x%'")
    assert fields_of(node) == {"a", "b", "c"}


def test_tokenizer_reports_positions() -> None:
    tokens = tokenize("id EQ 'a b'")
    assert [(t.text, t.position) for t in tokens] == [("id", 0), ("EQ", 3), ("a b", 11), ("", 11)]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "unexpected end of expression at position 0, expected a field name"),
        ("id EQ", "expected a value"),
        ("id", "expected EQ, NE, CP or IS"),
        ("id EQ 'open", "unterminated string starting at position 6"),
        ("(id EQ 1", "expected ')'"),
        ("id EQ 1)", "unexpected ')'"),
        ("id EQ 1 state EQ 'ok'", "unexpected 'state' at position 8"),
        ("id IS 'x'", "expected NULL"),
        ("id CP 5", "expected a quoted pattern"),
        ("id EQ 1 AND", "expected a field name"),
        ("AND EQ 1", "expected a field name"),
        ("id EQ null", "expected a value"),
        ("id = 1", "unexpected character '=' at position 3"),
        ("id EQ 12abc", "unexpected character"),
    ],
)
def test_malformed_expressions_are_rejected_with_a_reason(expression: str, message: str) -> None:
    with pytest.raises(WhereError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(expression)


@pytest.mark.parametrize(
    ("source", "keys"),
    [
        ("id EQ 1", {"1"}),
        ("id EQ 1 OR id EQ '2' OR (id EQ 3)", {"1", "2", "3"}),
        ("id EQ 1 OR state EQ 'ok'", None),
        ("id EQ 1 AND id EQ 2", None),
        ("id NE 1", None),
        ("NOT (id EQ 1)", None),
    ],
)
def test_equality_keys_are_found_only_in_pure_lookups(source: str, keys: set[str] | None) -> None:
    assert equality_keys(parse(source), "id") == keys
