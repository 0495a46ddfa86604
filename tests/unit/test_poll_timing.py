"""When a step waiting for DCImanager looks again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.config import Settings
from app.orchestration.context import StepContext
from app.orders.models import OperationStep

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def _context(*, started: datetime, now: datetime) -> StepContext:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        task_poll_seconds=5.0,
        task_poll_min_seconds=1.0,
        task_poll_growth=0.1,
    )
    step = OperationStep(name="install_os", started_at=started, result={})
    unused: Any = None
    return StepContext(
        settings=settings,
        dci=unused,
        completion=unused,
        secrets=unused,
        order=unused,
        customer=unused,
        operation=unused,
        step=step,
        now=now,
        checkpoint_fn=unused,
        claim_server_fn=unused,
        awaiting_owner_fn=unused,
    )


@pytest.mark.parametrize("waited", [0.0, 3.0, 20.0, 33.3, 60.0, 3600.0])
def test_the_next_look_waits_the_spread_and_at_most_half_a_second_more(waited: float) -> None:
    for offset_ms in (0, 130, 499, 777):
        elapsed = waited + offset_ms / 1000
        spread = min(5.0, max(1.0, 0.1 * elapsed))
        delay = _context(started=T0, now=T0 + timedelta(seconds=elapsed)).poll_after()
        assert spread - 1e-6 <= delay <= spread + 0.5 + 1e-6


def test_orders_that_started_apart_look_at_the_same_moments() -> None:
    # Two installs a fraction of a second apart, both long past the growth phase:
    # their next looks coincide, so their reads can share one list call.
    wakes = set()
    for started_ms, now_ms in ((0, 60_010), (170, 60_180), (420, 60_430)):
        now = T0 + timedelta(milliseconds=now_ms)
        ctx = _context(started=T0 + timedelta(milliseconds=started_ms), now=now)
        wakes.add(round(now.timestamp() + ctx.poll_after(), 6))
    assert len(wakes) == 1
