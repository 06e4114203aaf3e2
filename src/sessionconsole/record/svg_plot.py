"""A small inline-SVG line plot (axes, ticks, units, time in minutes) for the printable report.

Our own ~100 lines instead of a plotting library: the report must be self-contained, and a
30-minute 50 Hz stream is reduced to at most `max_points` per line (min and max kept per bucket,
so peaks survive the reduction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

Point = tuple[float, float]
COLOURS = ("#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad")
# A line is broken where two points are further apart than this (missing telemetry).
BREAK_AFTER_MIN = 5.0 / 60


@dataclass(frozen=True, slots=True)
class Line:
    """One series: a label for the legend and (minutes, value) points in time order."""

    label: str
    points: Sequence[Point]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 5 x 10^n steps)."""
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def reduce_points(points: Sequence[Point], max_points: int) -> list[Point]:
    """At most about max_points points: per bucket the first min and max in time order."""
    if len(points) <= max_points:
        return list(points)
    buckets = max(max_points // 2, 1)
    size = math.ceil(len(points) / buckets)
    reduced: list[Point] = []
    for start in range(0, len(points), size):
        chunk = points[start : start + size]
        low = min(chunk, key=lambda p: p[1])
        high = max(chunk, key=lambda p: p[1])
        reduced.extend(sorted({low, high}))
    return reduced


def line_plot_svg(
    title: str,
    lines: Sequence[Line],
    y_unit: str,
    *,
    width: int = 680,
    height: int = 170,
    max_points: int = 600,
    from_zero: bool = True,
) -> str:
    """An <svg> element plotting lines over session time (x in minutes, y in y_unit).

    from_zero puts 0 on the y axis (outputs); False fits the data (temperatures).
    """
    left, right, top, bottom = 52, 10, 22, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    reduced = [Line(line.label, reduce_points(line.points, max_points)) for line in lines]
    xs = [x for line in reduced for x, _ in line.points]
    ys = [y for line in reduced for _, y in line.points]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="14" class="plot-title">{escape(title)}</text>',
    ]
    if not xs:
        parts.append(f'<text x="{left}" y="{top + plot_h / 2}">no samples recorded</text></svg>')
        return "".join(parts)
    x0, x1 = 0.0, max(max(xs), 1.0)
    y0, y1 = (min(min(ys), 0.0) if from_zero else min(ys)), max(ys)
    y1 = y1 if y1 > y0 else y0 + 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#888" stroke-width="0.5"/>'
    )
    for tick in nice_ticks(y0, y1, 4):
        y = sy(tick)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd" '
            f'stroke-width="0.5"/><text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" '
            f'class="tick">{tick:g}</text>'
        )
    for tick in nice_ticks(x0, x1, 8):
        x = sx(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 3}" '
            f'stroke="#888"/><text x="{x:.1f}" y="{top + plot_h + 13}" text-anchor="middle" '
            f'class="tick">{tick:g}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 3}" text-anchor="middle" class="axis">'
        f'time (min)</text><text x="12" y="{top + plot_h / 2}" text-anchor="middle" '
        f'class="axis" transform="rotate(-90 12 {top + plot_h / 2})">{escape(y_unit)}</text>'
    )
    for i, line in enumerate(reduced):
        colour = COLOURS[i % len(COLOURS)]
        for segment in _segments(line.points):
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in segment)
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.2"/>'
            )
        lx = left + plot_w - 150 * (len(reduced) - i)
        parts.append(
            f'<text x="{lx}" y="14" class="legend" fill="{colour}">— {escape(line.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _segments(points: Sequence[Point]) -> list[list[Point]]:
    """Split a line where telemetry is missing, so a gap is not drawn as a straight ramp."""
    segments: list[list[Point]] = []
    for point in points:
        if not segments or point[0] - segments[-1][-1][0] > BREAK_AFTER_MIN:
            segments.append([])
        segments[-1].append(point)
    return segments
