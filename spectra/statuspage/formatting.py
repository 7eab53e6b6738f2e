"""How a status page says things: state labels and colours, percentages, day bars, branding colours.

Shared by the HTML page, the feeds, the badges and the mails; times are :mod:`spectra.runtime.timefmt`'s.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from spectra.statuspage.model import DayBar

STATE_LABELS: Final = {
    "operational": "Operational",
    "degraded": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "maintenance": "Under maintenance",
    "unknown": "Status unknown",
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
}
OVERALL_TEXT: Final = {
    "operational": "All systems operational",
    "degraded": "Some systems have degraded performance",
    "partial_outage": "Partial system outage",
    "major_outage": "Major system outage",
    "maintenance": "Maintenance in progress",
    "unknown": "Current status unknown",
}
# Banner and state backgrounds: white text on each stays at or above 4.5:1 (WCAG AA) in light and dark.
STATE_COLOURS: Final = {
    "operational": "#1a7f37",
    "degraded": "#8a5a00",
    "partial_outage": "#bc4c00",
    "major_outage": "#cf222e",
    "maintenance": "#0969da",
    "unknown": "#59636e",
}
DEFAULT_ACCENT: Final = "#24292f"
_HEX: Final = re.compile(r"^#[0-9a-fA-F]{6}$")


def relative_luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def accent_colours(accent: str | None) -> tuple[str, str]:
    """The accent (a valid #RRGGBB or the default) and the text colour (black or white) readable on it."""
    colour = accent.lower() if accent and _HEX.match(accent) else DEFAULT_ACCENT
    text = "#ffffff" if contrast(colour, "#ffffff") >= contrast(colour, "#000000") else "#000000"
    return colour, text


def logo_origin(logo_url: str | None) -> str | None:
    """``https://host[:port]`` of an https logo URL, None for anything else."""
    if not logo_url:
        return None
    parts = urlsplit(logo_url)
    if parts.scheme != "https" or not parts.hostname or any(c in logo_url for c in " \"'<>;"):
        return None
    return f"https://{parts.netloc}"


def format_percent(value: float | None) -> str:
    if value is None:
        return "no data"
    if value >= 100:
        return "100%"
    return f"{min(value, 99.99):.2f}%"


def day_text(bar: DayBar) -> str:
    """``2026-11-01: 99.95% uptime, 3 min down`` (with ``, maintenance`` when some of the day was)."""
    if bar.uptime is None:
        text = f"{bar.day.isoformat()}: no data"
    else:
        text = f"{bar.day.isoformat()}: {format_percent(bar.uptime)} uptime, {bar.down_minutes} min down"
    return text + (", maintenance" if bar.maintenance else "")


def day_class(bar: DayBar) -> str:
    if bar.uptime is None:
        return "maint" if bar.maintenance else "none"
    if bar.uptime >= 99.9:
        return "ok"
    if bar.uptime >= 99.0:
        return "minor"
    if bar.uptime >= 95.0:
        return "partial"
    return "major"


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state.replace("_", " ").capitalize())
