"""Small SVG charts drawn on the server: the overview stays a plain HTML page.

Charts are markup, not images: they scale with the page, need no script, and
pass the dashboard's Content-Security-Policy (no inline styles or scripts;
colours come from classes in admin.css).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 12, 28
# Gridlines per leading digit of a nice_ceiling() top: steps of 0.2, 0.5, 0.5 and 1.
_TICKS_FOR = {1.0: 5, 2.0: 4, 2.5: 5, 5.0: 5}


@dataclass(frozen=True, slots=True)
class Datum:
    """One x position: its axis label, value (None: no data there) and hover text."""

    label: str
    value: float | None
    hint: str = ""


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= value (>= 1)."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)  # pragma: no cover - the loop ends at 10


def tick_count(top: float, *, integers: bool = False) -> int:
    """How many gridlines above zero divide ``top`` (a nice_ceiling value) evenly."""
    magnitude = 10 ** math.floor(math.log10(top))
    ticks = _TICKS_FOR.get(round(top / magnitude, 1), 4)
    if integers and top < ticks:
        # Counts have no halves: one line per unit.
        return max(int(top), 1)
    return ticks


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _frame(
    data: Sequence[Datum],
    *,
    title: str,
    top: float,
    ticks: int,
    tick_format: Callable[[float], str],
    label_every: int,
) -> list[str]:
    plot_h = HEIGHT - _TOP - _BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in range(ticks + 1):
        value = top * tick / ticks
        y = _TOP + plot_h - plot_h * tick / ticks
        parts.append(
            f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{WIDTH - _RIGHT}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(tick_format(value))}</text>"
        )
    slot = (WIDTH - _LEFT - _RIGHT) / max(len(data), 1)
    for index, datum in enumerate(data):
        if index % label_every == 0:
            x = _LEFT + slot * (index + 0.5)
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                f"{escape(datum.label)}</text>"
            )
    return parts


def _empty_note(parts: list[str], message: str) -> None:
    parts.append(
        f'<text class="empty" x="{(WIDTH + _LEFT) / 2:.1f}" y="{HEIGHT / 2:.1f}" '
        f'text-anchor="middle">{escape(message)}</text>'
    )


def bar_chart(
    data: Sequence[Datum],
    *,
    title: str,
    empty_message: str = "No data yet",
    label_every: int = 3,
) -> Markup:
    """One bar per datum; a bar's height is its value, 0 and None draw nothing."""
    top = nice_ceiling(max((d.value or 0 for d in data), default=0))
    parts = _frame(
        data,
        title=title,
        top=top,
        ticks=tick_count(top, integers=True),
        tick_format=_number,
        label_every=label_every,
    )
    plot_h = HEIGHT - _TOP - _BOTTOM
    slot = (WIDTH - _LEFT - _RIGHT) / max(len(data), 1)
    drawn = 0
    for index, datum in enumerate(data):
        if not datum.value:
            continue
        height = plot_h * datum.value / top
        x = _LEFT + slot * index + slot * 0.15
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{_TOP + plot_h - height:.1f}" '
            f'width="{slot * 0.7:.1f}" height="{height:.1f}" rx="2">'
            f"<title>{escape(datum.hint or _number(datum.value))}</title></rect>"
        )
        drawn += 1
    if not drawn:
        _empty_note(parts, empty_message)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def duration_scale(seconds: float) -> tuple[float, str]:
    """Divisor and unit that keep a duration axis readable."""
    if seconds < 120:
        return 1.0, "s"
    if seconds < 7_200:
        return 60.0, "min"
    return 3_600.0, "h"


def line_chart(
    data: Sequence[Datum],
    *,
    title: str,
    unit: str = "",
    divisor: float = 1.0,
    empty_message: str = "No data yet",
    label_every: int = 3,
) -> Markup:
    """A point per datum with a value, joined across neighbours (gaps stay gaps)."""
    scaled_top = nice_ceiling(max((d.value or 0 for d in data), default=0) / divisor)
    top = scaled_top * divisor
    parts = _frame(
        data,
        title=title,
        top=top,
        ticks=tick_count(scaled_top),
        tick_format=lambda value: f"{_number(value / divisor)}{unit}",
        label_every=label_every,
    )
    plot_h = HEIGHT - _TOP - _BOTTOM
    slot = (WIDTH - _LEFT - _RIGHT) / max(len(data), 1)
    points: list[tuple[float, float, Datum] | None] = []
    for index, datum in enumerate(data):
        if datum.value is None:
            points.append(None)
            continue
        x = _LEFT + slot * (index + 0.5)
        y = _TOP + plot_h - plot_h * datum.value / top
        points.append((x, y, datum))
    present = [(point[0], point[1]) for point in points if point is not None]
    if len(present) > 1:
        # Hours without data are bridged by a faint dashed line, so the trend reads
        # at a glance; the solid line joins only neighbouring hours.
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in present)
        parts.append(f'<polyline class="line-gap" points="{coords}"/>')
    run: list[tuple[float, float]] = []
    for point in [*points, None]:
        if point is not None:
            run.append((point[0], point[1]))
            continue
        if len(run) > 1:
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            parts.append(f'<polyline class="line" points="{coords}"/>')
        run = []
    drawn = 0
    for point in points:
        if point is None:
            continue
        x, y, datum = point
        hint = datum.hint or f"{_number(datum.value or 0)}"
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4">'
            f"<title>{escape(hint)}</title></circle>"
        )
        drawn += 1
    if not drawn:
        _empty_note(parts, empty_message)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above
