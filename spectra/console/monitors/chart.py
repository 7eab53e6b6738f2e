"""The response-time chart of a monitor page, drawn on the server as SVG (no script, no inline style).

One line per location and measure (the hourly p50 solid, p95 dashed and maximum dotted; p50 and p95
estimated from the rollups' latency histograms) over the chosen days; hours without a histogram (rolled
up before it existed) have no percentile point, never a made-up one. The axes are labelled
(milliseconds, UTC time), the SVG has a `<title>` and `<desc>`, and the
page shows the same numbers as a table for anyone who cannot see the lines. Colours come from the
console's stylesheet by class (`series-0` ...), so light and dark both read; the line's pattern and the
legend's words say which is which, never the colour alone.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape
from typing import Final

from .service import LatencySeries, merged

WIDTH: Final = 720
HEIGHT: Final = 260
LEFT: Final = 56
RIGHT: Final = 12
TOP: Final = 16
BOTTOM: Final = 40
SERIES_CLASSES: Final = 6
MAX_POINTS: Final = 360  # per line: more would be narrower than a pixel (longer ranges merge hours)


def _nice_ceiling(value: float) -> float:
    """A round number at or above `value` for the top of the axis."""
    if value <= 0:
        return 10.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 2.5, 5, 10):
        top = step * magnitude
        if top >= value:
            return float(top)
    return float(10 * magnitude)


# (measure, SVG dash pattern): the line's pattern tells the measures apart, the legend says which is which.
MEASURES: Final = (("p50", ""), ("p95", "4 3"), ("max", "1 3"))
HALF_HOUR: Final = timedelta(minutes=30)


def _fmt_ms(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


@functools.lru_cache(maxsize=64)  # a 90-day chart is about 100 KB: a few MB at most
def cached_latency_svg(series: tuple[LatencySeries, ...], *, start: datetime, end: datetime, title: str) -> str:
    """`latency_svg`, kept for the same series, window and title: the rollups change once an hour, the page
    is shown many times in between, and drawing (with each point's p50 and p95) is a third of its cost."""
    return latency_svg(series, start=start, end=end, title=title)


def latency_svg(
    series: Sequence[LatencySeries], *, start: datetime, end: datetime, title: str, chart_id: str = "latency"
) -> str:
    """The chart of `series` between `start` and `end` (UTC hours) as an SVG element."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = max((end - start).total_seconds(), 3600.0)
    highest = max(
        (p.max_ms if p.max_ms is not None else p.p95_ms or p.mean_ms or 0.0 for s in series for p in s.points),
        default=0.0,
    )
    top = _nice_ceiling(highest)

    def x(moment: datetime) -> float:
        return LEFT + plot_w * (moment - start).total_seconds() / span

    def y(value: float) -> float:
        return TOP + plot_h * (1 - min(value, top) / top)

    described = (
        f"Hourly p50, p95 and maximum response time per location, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        if series
        else "No latency was recorded in this period."
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(described)}</desc>',
        f'<g class="axis" fill="none" stroke="currentColor">'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>'
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/></g>',
    ]
    labels = ['<g class="labels" fill="currentColor" font-size="11">']
    for k in range(5):
        value = top * k / 4
        yy = y(value)
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{yy:.1f}" x2="{LEFT + plot_w}" y2="{yy:.1f}" stroke="currentColor"/>'
        )
        labels.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{_fmt_ms(value)}</text>')
    ticks = 6
    for k in range(ticks + 1):
        moment = start + timedelta(seconds=span * k / ticks)
        xx = x(moment)
        text = f"{moment:%m-%d %H:%M}" if span > 86400 else f"{moment:%H:%M}"
        labels.append(f'<text x="{xx:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{text}</text>')
    labels.append(
        f'<text x="14" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">ms</text>'
    )
    labels.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 4}" text-anchor="middle">time (UTC)</text>')
    labels.append("</g>")
    for index, one in enumerate(series):
        css = f"series series-{index % SERIES_CLASSES}"
        hours = one.points
        if len(hours) > MAX_POINTS:
            hours = tuple(merged(hours, -(-len(hours) // MAX_POINTS)))
        lines: list[list[str]] = [[] for _ in MEASURES]  # "x,y" per measure, each hour's x worked out once
        for p in hours:
            at = f"{x(p.hour + HALF_HOUR):.1f},"
            for line, ms in zip(lines, (p.p50_ms, p.p95_ms, p.max_ms), strict=True):
                if ms is not None:
                    line.append(f"{at}{y(ms):.1f}")
        for (measure, dashes), line in zip(MEASURES, lines, strict=True):
            if not line:
                continue
            coords = " ".join(line)
            dash = f' stroke-dasharray="{dashes}"' if dashes else ""
            parts.append(
                f'<polyline class="{css} {measure}" fill="none" stroke="currentColor"{dash} points="{coords}">'
                f"<title>{escape(one.location)}: hourly {measure}</title></polyline>"
            )
    parts.extend(labels)
    parts.append("</svg>")
    return "".join(parts)
