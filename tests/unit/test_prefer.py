from __future__ import annotations

import pytest

from app.kit.prefer import requested_wait


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("wait=10", 10),
        ("respond-async, wait=5", 5),
        ('wait="7"', 7),
        ("WAIT=3", 3),
        ("wait=600", 60),
        ("wait=soon", None),
        ("wait=-1", None),
        ("return=minimal", None),
    ],
)
def test_wait_preference(header: str | None, expected: int | None) -> None:
    assert requested_wait(header) == expected
