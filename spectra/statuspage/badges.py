"""SVG badges (shields style): a monitor's status and its uptime over the page's history window.

Badges are drawn from the public page snapshots only: a monitor gets a badge when it is part of a
component on a public page, and the badge shows that component's state and uptime (the worst state
when the monitor is on several components). Text is XML-escaped; widths are estimated from the
character count (no font metrics needed, Verdana 11px averages about 7px per character).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from xml.sax.saxutils import escape

from spectra.domain.components import overall_state
from spectra.statuspage.formatting import STATE_COLOURS, format_percent
from spectra.statuspage.model import ComponentView, PageSnapshot

# Label and colour per component state: the page's colours (white text stays at WCAG AA, >= 4.5:1).
STATE_TEXT: Final = {
    state: (label, STATE_COLOURS[state])
    for state, label in (
        ("operational", "up"),
        ("degraded", "degraded"),
        ("partial_outage", "partial outage"),
        ("major_outage", "down"),
        ("maintenance", "maintenance"),
        ("unknown", "unknown"),
    )
}
LABEL_COLOUR: Final = "#555555"


@dataclass(frozen=True)
class BadgeData:
    state: str
    uptime_percent: float | None
    generated_at: datetime  # the oldest read of the snapshots it comes from


def find_monitor(snapshots: Iterable[PageSnapshot], namespace: str, monitor: str) -> BadgeData | None:
    """The badge data of ``namespace/monitor`` when it is on a public page, else None."""
    ref = f"{namespace}/{monitor}"
    found: list[ComponentView] = []
    read_at: list[datetime] = []
    for snapshot in snapshots:
        if not snapshot.public:
            continue
        hits = [c for g in snapshot.groups for c in g.components if ref in c.monitors]
        if hits:
            found.extend(hits)
            read_at.append(snapshot.generated_at)
    if not found:
        return None
    uptimes = [c.uptime_percent for c in found if c.uptime_percent is not None]
    return BadgeData(overall_state(c.state for c in found), min(uptimes) if uptimes else None, min(read_at))


def uptime_colour(value: float | None) -> str:
    if value is None:
        return STATE_TEXT["unknown"][1]
    if value >= 99.9:
        return STATE_TEXT["operational"][1]
    if value >= 99.0:
        return STATE_TEXT["degraded"][1]
    if value >= 95.0:
        return STATE_TEXT["partial_outage"][1]
    return STATE_TEXT["major_outage"][1]


def _width(text: str) -> int:
    return 10 + 7 * len(text)


def badge_svg(label: str, value: str, colour: str) -> str:
    """A flat two-part badge: grey ``label`` and ``value`` on ``colour``."""
    left, right = _width(label), _width(value)
    total = left + right
    label_x, value_x = left / 2, left + right / 2
    title = escape(f"{label}: {value}")
    lab, val = escape(label), escape(value)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{title}">'
        f"<title>{title}</title>"
        f'<rect width="{left}" height="20" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<g fill="#ffffff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{label_x:g}" y="14">{lab}</text>'
        f'<text x="{value_x:g}" y="14">{val}</text>'
        f"</g></svg>"
    )


def status_badge(data: BadgeData) -> str:
    text, colour = STATE_TEXT.get(data.state, STATE_TEXT["unknown"])
    return badge_svg("status", text, colour)


def uptime_badge(data: BadgeData) -> str:
    return badge_svg("uptime", format_percent(data.uptime_percent), uptime_colour(data.uptime_percent))
