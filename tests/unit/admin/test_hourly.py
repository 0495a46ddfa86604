"""The overview's hourly buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.admin.service import hourly

NOW = datetime(2026, 11, 29, 15, 40, tzinfo=UTC)


def test_the_last_24_clock_hours_current_one_last() -> None:
    buckets = hourly(NOW, [], [])
    assert len(buckets) == 24
    assert buckets[-1].start == datetime(2026, 11, 29, 15, tzinfo=UTC)
    assert buckets[0].start == datetime(2026, 11, 28, 16, tzinfo=UTC)
    assert all(b.count == 0 and b.mean_seconds is None for b in buckets)


def test_orders_and_provisioning_times_land_in_their_hour() -> None:
    created = [
        NOW,
        NOW - timedelta(minutes=39),
        NOW - timedelta(minutes=41),
        NOW - timedelta(days=2),
    ]
    provisions = [
        (NOW - timedelta(minutes=10), NOW - timedelta(minutes=5)),  # 300 s
        (NOW - timedelta(minutes=20), NOW - timedelta(minutes=19)),  # 60 s
        (NOW - timedelta(hours=3, minutes=2), NOW - timedelta(hours=3)),  # 120 s
    ]
    buckets = hourly(NOW, created, provisions)
    assert buckets[-1].count == 2
    assert buckets[-2].count == 1
    assert sum(b.count for b in buckets) == 3  # two days ago is off the chart
    assert buckets[-1].mean_seconds == 180
    assert buckets[-1].max_seconds == 300
    assert buckets[-4].mean_seconds == 120
    assert buckets[-2].mean_seconds is None
