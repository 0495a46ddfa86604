"""The pure rules behind Idempotency-Key: key syntax, bearer parsing, fingerprint, what is kept."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from app.idempotency.exceptions import InvalidIdempotencyKey
from app.idempotency.service import (
    MAX_KEY_LENGTH,
    STALE_AFTER,
    bearer_token,
    fingerprint,
    parse_key,
    should_store,
)
from app.kit.errors import PROBLEM_CONTENT_TYPE, problem_type
from app.kit.prefer import MAX_WAIT_SECONDS


@pytest.mark.parametrize(
    "key",
    ["a", "0b8c5e2a-6a0e-4c1c-9d3b-2f5a0b1c3d4e", "order 17 / provision", "x" * MAX_KEY_LENGTH],
)
def test_printable_keys_up_to_255_are_accepted(key: str) -> None:
    assert parse_key([key.encode()]) == key


@pytest.mark.parametrize(
    "values",
    [
        [b""],
        [b"x" * (MAX_KEY_LENGTH + 1)],
        [b"tab\there"],
        [b"new\nline"],
        ["caf\u00e9".encode()],
        [b"\x7f"],
        [b"one", b"two"],
    ],
    ids=["empty", "too-long", "tab", "newline", "non-ascii", "del", "two-headers"],
)
def test_bad_keys_are_refused(values: list[bytes]) -> None:
    with pytest.raises(InvalidIdempotencyKey) as caught:
        parse_key(values)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_idempotency_key"


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (b"Bearer dcb_abc", "dcb_abc"),
        (b"bearer dcb_abc", "dcb_abc"),
        (b"Bearer   dcb_abc  ", "dcb_abc"),
        (b"Bearer", None),
        (b"Bearer ", None),
        (b"Basic dXNlcjpwYXNz", None),
    ],
)
def test_bearer_token_is_read_like_the_auth_dependency(
    authorization: bytes, expected: str | None
) -> None:
    assert bearer_token([(b"authorization", authorization)]) == expected


def test_no_authorization_header_means_no_token() -> None:
    assert bearer_token([(b"content-type", b"application/json")]) is None


def test_fingerprint_covers_method_path_query_and_body() -> None:
    base = {"method": "POST", "path": "/api/v1/orders", "query_string": b"", "body": b"{}"}
    reference = fingerprint(**base)  # type: ignore[arg-type]
    assert fingerprint(**base) == reference  # type: ignore[arg-type]
    assert len(reference) == 64
    for change in (
        {"method": "PUT"},
        {"path": "/api/v1/orders/1/suspend"},
        {"query_string": b"a=1"},
        {"body": b'{"a":1}'},
    ):
        assert fingerprint(**{**base, **change}) != reference  # type: ignore[arg-type]


def test_fingerprint_parts_cannot_bleed_into_each_other() -> None:
    one = fingerprint(method="POST", path="/api/v1/x", query_string=b"ab", body=b"c")
    other = fingerprint(method="POST", path="/api/v1/x", query_string=b"a", body=b"bc")
    assert one != other


def _problem(code: str) -> bytes:
    return json.dumps({"type": problem_type(code), "title": "t", "status": 422}).encode()


@pytest.mark.parametrize(
    ("status", "content_type", "body", "kept"),
    [
        (200, "application/json", b"{}", True),
        (202, "application/json", b"{}", True),
        (404, PROBLEM_CONTENT_TYPE, _problem("not_found"), True),
        (409, PROBLEM_CONTENT_TYPE, _problem("invalid_order_state"), True),
        (422, PROBLEM_CONTENT_TYPE, _problem("unknown_configuration"), True),
        (422, PROBLEM_CONTENT_TYPE, _problem("validation_error"), False),
        (422, "application/json", b"not json", True),
        (401, PROBLEM_CONTENT_TYPE, _problem("unauthorized"), False),
        (403, PROBLEM_CONTENT_TYPE, _problem("insufficient_scope"), False),
        (429, PROBLEM_CONTENT_TYPE, _problem("too_many_requests"), False),
        (307, "text/plain", b"", False),
        (500, PROBLEM_CONTENT_TYPE, _problem("internal_error"), False),
        (503, "application/json", b"{}", False),
    ],
)
def test_only_answers_of_an_endpoint_that_ran_are_kept(
    status: int, content_type: str, body: bytes, kept: bool
) -> None:
    assert should_store(status, content_type, body) is kept


def test_a_running_request_is_never_taken_for_dead() -> None:
    # The longest request: Prefer: wait after the 5 s configuration lookup and
    # SQLite's 10 s busy timeout. Taking it over early would run it twice.
    longest = timedelta(seconds=MAX_WAIT_SECONDS + 5 + 10)
    assert 2 * longest <= STALE_AFTER
