"""The API benchmark measures in rounds: what it reports over them must be what one
window of the same requests would have reported."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.api import ApiBenchConfig, ApiBenchResult, DatabaseRun, Measurement, merge_rounds


def _round(
    app: str, count: int, seconds: float, latencies: list[float], server_cpu: float
) -> Measurement:
    return Measurement(
        case="read",
        database="sqlite",
        app=app,
        count=count,
        seconds=seconds,
        rps=count / seconds,
        rounds_rps=[count / seconds],
        latencies_ms=sorted(latencies),
        server_cpu=server_cpu,
    )


def test_merged_rounds_add_up_requests_and_take_percentiles_over_every_latency() -> None:
    fast = _round("dcibridge", 4, 2.0, [1.0, 2.0, 3.0, 4.0], server_cpu=1.0)
    slow = _round("dcibridge", 1, 1.0, [100.0], server_cpu=0.4)
    merged = merge_rounds([fast, slow])
    assert merged.count == 5
    assert merged.seconds == 3.0
    assert merged.rps == pytest.approx(5 / 3)
    assert merged.rounds_rps == [2.0, 1.0]
    assert merged.p50_ms == 3.0
    assert merged.max_ms == 100.0
    # Shares of a CPU weigh by how long each round lasted: (1.0 * 2 + 0.4 * 1) / 3.
    assert merged.server_cpu == pytest.approx(0.8)
    assert merged.failure is None


def test_a_failed_round_fails_the_merged_measurement() -> None:
    broken = _round("minimal", 0, 2.0, [], server_cpu=0.0)
    broken.failure = "no successful request"
    merged = merge_rounds([_round("minimal", 3, 1.0, [1.0, 1.0, 1.0], 1.0), broken])
    assert merged.failure == "no successful request"


def test_the_ratio_spread_compares_each_round_with_the_same_round_of_the_baseline() -> None:
    ours = merge_rounds(
        [_round("dcibridge", 60, 1.0, [1.0] * 60, 1.0), _round("dcibridge", 30, 1.0, [1.0], 1.0)]
    )
    base = merge_rounds(
        [_round("minimal", 100, 1.0, [1.0] * 100, 1.0), _round("minimal", 50, 1.0, [1.0], 1.0)]
    )
    result = ApiBenchResult(
        config=ApiBenchConfig(),
        runs=[DatabaseRun(database="sqlite", measurements=[ours, base])],
        notes=[],
        started_at=datetime.now(UTC),
    )
    assert result.ratio_range("read", "sqlite") == pytest.approx((0.6, 0.6))
    assert result.ratio("read", "sqlite") == pytest.approx(0.6)
