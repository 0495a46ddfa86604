"""Server-side SVG charts: proportional, escaped, and honest about missing data."""

from __future__ import annotations

import re

import pytest

from app.admin.charts import (
    Datum,
    bar_chart,
    duration_scale,
    line_chart,
    nice_ceiling,
    tick_count,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (24, 25), (26, 50), (740, 1000), (2.1, 2.5)],
)
def test_nice_ceiling(value: float, expected: float) -> None:
    assert nice_ceiling(value) == expected


def _heights(svg: str) -> list[float]:
    return [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', svg)]


def test_bars_are_proportional_and_zero_draws_nothing() -> None:
    svg = bar_chart(
        [Datum("00:00", 2), Datum("01:00", 0), Datum("02:00", 4), Datum("03:00", None)],
        title="Orders",
    )
    heights = _heights(svg)
    assert len(heights) == 2
    assert heights[1] == pytest.approx(2 * heights[0], rel=0.01)
    assert all(height > 0 for height in heights)
    assert "No data yet" not in svg
    assert svg.startswith('<svg class="chart" viewBox=')


def test_an_empty_chart_says_so() -> None:
    svg = bar_chart([Datum("00:00", 0)] * 24, title="Orders", empty_message="Nothing today")
    assert _heights(svg) == []
    assert "Nothing today" in svg


def test_text_is_escaped() -> None:
    svg = bar_chart([Datum("<b>", 1, hint="<script>x</script>")], title='a"b<c>')
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert 'aria-label="a&#34;b&lt;c&gt;"' in svg


def test_a_line_breaks_at_hours_without_data() -> None:
    data = [Datum("a", 10), Datum("b", 20), Datum("c", None), Datum("d", 5), Datum("e", 6)]
    svg = line_chart(data, title="Duration", unit=" s")
    assert svg.count('<polyline class="line"') == 2
    assert svg.count('<polyline class="line-gap"') == 1  # the faint bridge over the gap
    assert svg.count('<circle class="point"') == 4
    ys = [float(y) for y in re.findall(r'<circle class="point" cx="[\d.]+" cy="([\d.]+)"', svg)]
    # Larger values sit higher, i.e. at smaller y.
    assert ys[1] < ys[0] < ys[3]


def test_a_lone_point_is_still_drawn() -> None:
    svg = line_chart([Datum("a", None), Datum("b", 3.0), Datum("c", None)], title="t")
    assert "<polyline" not in svg
    assert svg.count('<circle class="point"') == 1


def test_line_axis_in_readable_units() -> None:
    divisor, unit = duration_scale(900)
    assert (divisor, unit) == (60.0, "min")
    svg = line_chart([Datum("a", 900.0)], title="t", unit=" min", divisor=divisor)
    assert ">20 min<" in svg  # 15 min rounds up to a 20 min axis
    assert duration_scale(30) == (1.0, "s")
    assert duration_scale(3 * 3600) == (3600.0, "h")


@pytest.mark.parametrize(
    ("top", "integers", "expected"),
    [(1, False, 5), (2, False, 4), (2.5, False, 5), (5, False, 5), (50, False, 5), (2, True, 2)],
)
def test_gridlines_fall_on_round_values(top: float, integers: bool, expected: int) -> None:
    assert tick_count(top, integers=integers) == expected


def test_count_axes_have_no_fractions() -> None:
    svg = bar_chart([Datum("a", 1), Datum("b", 2)], title="t")
    labels = re.findall(r'text-anchor="end">([^<]+)<', svg)
    assert labels == ["0", "1", "2"]
