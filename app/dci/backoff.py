"""Exponential backoff with full jitter inside a bounded total time.

DCImanager answers 503 while a suspended platform service wakes up; the vendor
advises repeating the request until another status comes back. Full jitter
spreads the repeats of many concurrent callers so they do not wake the service
in lock-step. Sleep, clock and randomness are injected so tests run instantly.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.kit.backoff import full_jitter_delay

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True)
class BackoffPolicy:
    budget_seconds: float
    base_delay: float = 0.25
    max_delay: float = 8.0
    sleep: Sleep = field(default=asyncio.sleep, repr=False)
    clock: Clock = field(default=time.monotonic, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    def start(self) -> Backoff:
        return Backoff(self, started=self.clock())


class Backoff:
    """The retry state of one call."""

    def __init__(self, policy: BackoffPolicy, *, started: float) -> None:
        self._policy = policy
        self._deadline = started + policy.budget_seconds
        self._attempt = 0

    async def wait(self) -> float | None:
        """Sleep before the next attempt; ``None`` when the budget is spent."""
        policy = self._policy
        remaining = self._deadline - policy.clock()
        if remaining <= 0:
            return None
        delay = min(
            remaining,
            full_jitter_delay(
                self._attempt, base=policy.base_delay, cap=policy.max_delay, jitter=policy.jitter
            ),
        )
        self._attempt += 1
        await policy.sleep(delay)
        return delay
