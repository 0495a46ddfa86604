from __future__ import annotations

import dataclasses

import pytest

from app.dci.where import Field, encode_query_value, literal


def test_string_literals_are_single_quoted_with_embedded_quotes_doubled() -> None:
    assert str(Field("full_name").eq("O'Brien")) == "full_name EQ 'O''Brien'"
    assert literal("it''s") == "'it''''s'"


def test_injection_attempt_stays_inside_the_literal() -> None:
    expr = Field("email").eq("x' OR email NE 'y")
    assert str(expr) == "email EQ 'x'' OR email NE ''y'"


@pytest.mark.parametrize(
    ("value", "rendered"),
    [(5, "5"), (-3, "-3"), (True, "true"), (False, "false"), ("", "''")],
)
def test_literals(value: str | int | bool, rendered: str) -> None:
    assert literal(value) == rendered


def test_unsupported_literal_is_rejected() -> None:
    with pytest.raises(TypeError):
        literal(1.5)  # type: ignore[arg-type]


def test_operators() -> None:
    assert str(Field("state").ne("ok")) == "state NE 'ok'"
    assert str(Field("domain").cp("%.example.net")) == "domain CP '%.example.net'"
    assert str(Field("owner_email").is_null()) == "owner_email IS null"
    assert str(Field("owner_email").is_not_null()) == "owner_email IS NOT null"


def test_and_matches_the_form_known_to_work_on_real_instances() -> None:
    expr = Field("owner_email").is_null() & Field("is_new").eq(False)
    assert str(expr) == "(owner_email IS null) AND is_new EQ false"


def test_chained_and_is_flat() -> None:
    expr = Field("a").eq(1) & Field("b").eq(2) & Field("c").eq(3)
    assert str(expr) == "a EQ 1 AND b EQ 2 AND c EQ 3"


def test_or_inside_and_is_parenthesised() -> None:
    expr = Field("state").eq("ok") & (Field("id").eq(1) | Field("id").eq(2))
    assert str(expr) == "state EQ 'ok' AND (id EQ 1 OR id EQ 2)"


def test_and_inside_or_is_parenthesised() -> None:
    expr = (Field("a").eq(1) & Field("b").eq(2)) | Field("c").eq(3)
    assert str(expr) == "(a EQ 1 AND b EQ 2) OR c EQ 3"


def test_not() -> None:
    expr = ~Field("domain").cp("%extended.%") & Field("ipnet").eq(4)
    assert str(expr) == "NOT (domain CP '%extended.%') AND ipnet EQ 4"
    assert str(~(Field("a").eq(1) | Field("b").eq(2))) == "NOT (a EQ 1 OR b EQ 2)"


def test_expressions_are_immutable_and_combining_does_not_change_operands() -> None:
    left = Field("a").eq(1)
    combined = left & Field("b").eq(2)
    assert str(left) == "a EQ 1"
    assert str(combined) == "a EQ 1 AND b EQ 2"
    with pytest.raises(dataclasses.FrozenInstanceError):
        left.value = 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a'", "a)", "email EQ 'x' OR id"])
def test_field_names_must_be_identifiers(name: str) -> None:
    with pytest.raises(ValueError, match="invalid where field name"):
        Field(name)


def test_query_encoding_leaves_quotes_and_parentheses_and_encodes_plus() -> None:
    rendered = str(Field("owner_email").is_null() & Field("email").eq("a+b c@x.org"))
    assert encode_query_value(rendered) == "(owner_email+IS+null)+AND+email+EQ+'a%2Bb+c%40x.org'"
    assert encode_query_value("50%") == "50%25"
    assert encode_query_value("0,20") == "0,20"
