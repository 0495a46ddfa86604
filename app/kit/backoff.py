"""Exponential backoff with full jitter: the delay before the next try."""

from __future__ import annotations

import random
from collections.abc import Callable


def full_jitter_delay(
    attempt: int, *, base: float, cap: float, jitter: Callable[[], float] = random.random
) -> float:
    """A random delay in ``[0, min(cap, base * 2**attempt))``.

    Full jitter spreads many callers retrying the same failure, so they do not
    come back in lock-step (attempt counts from 0).
    """
    return jitter() * min(cap, base * 2.0 ** max(attempt, 0))
