"""Render a PageSnapshot as HTML, JSON, Atom and RSS, once per snapshot version.

Every output is a pure function of the snapshot's content (``version``) and its ``stale`` flag, so
:class:`Renderer` keeps the rendered bytes per (kind, slug, version, stale) and a page is rendered
once per data change, not per request. Because the bytes are fixed per key, the ETag is strong and
Last-Modified is when that content was first read (the ``generated_at`` of the first snapshot with it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from spectra.statuspage.model import ComponentView, DayBar, PageIncidentView, PageSnapshot

TEMPLATES: Final = Environment(
    loader=PackageLoader("spectra.statuspage", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    auto_reload=False,
)

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


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    return utc(moment).isoformat().replace("+00:00", "Z")


def format_utc(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%d %H:%M UTC")


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


TEMPLATES.filters.update(
    utc_text=format_utc,
    iso=iso,
    percent=format_percent,
    day_text=day_text,
    day_class=day_class,
    state_label=state_label,
)


def etag_of(snapshot: PageSnapshot) -> str:
    """The strong ETag value (without quotes): the content version, marked when stale."""
    version = snapshot.version or hashlib.sha256(repr(_public_dict(snapshot)).encode()).hexdigest()[:32]
    return version + (".stale" if snapshot.stale else "")


@dataclass(frozen=True)
class Rendered:
    body: bytes
    media_type: str
    etag: str  # without quotes
    last_modified: datetime
    csp: str | None = None


# --- JSON -----------------------------------------------------------------------------------------------------


def _incident_dict(incident: PageIncidentView) -> dict[str, Any]:
    return {
        "id": incident.id,
        "title": incident.title,
        "state": incident.state,
        "impact": incident.impact,
        "components": list(incident.components),
        "startedAt": iso(incident.started_at),
        "resolvedAt": iso(incident.resolved_at) if incident.resolved_at else None,
        "updates": [{"at": iso(u.at), "state": u.state, "bodyHtml": u.body_html} for u in incident.updates],
    }


def _component_dict(component: ComponentView) -> dict[str, Any]:
    # Never the monitors: they name internal resources.
    return {
        "name": component.name,
        "descriptionHtml": component.description_html,
        "state": component.state,
        "uptimePercent": component.uptime_percent,
        "days": [
            {"day": d.day.isoformat(), "uptime": d.uptime, "downMinutes": d.down_minutes, "maintenance": d.maintenance}
            for d in component.days
        ],
    }


def _public_dict(snapshot: PageSnapshot) -> dict[str, Any]:
    """The snapshot minus internal fields: no namespace, resource name, hostnames or monitors."""
    return {
        "slug": snapshot.slug,
        "title": snapshot.title,
        "descriptionHtml": snapshot.description_html,
        "overall": snapshot.overall,
        "branding": {"logoUrl": snapshot.logo_url, "accentColor": snapshot.accent_color},
        "subscriptionsEnabled": snapshot.subscriptions_enabled,
        "groups": [{"name": g.name, "components": [_component_dict(c) for c in g.components]} for g in snapshot.groups],
        "activeIncidents": [_incident_dict(i) for i in snapshot.active_incidents],
        "maintenance": [
            {
                "name": m.name,
                "messageHtml": m.message_html,
                "start": iso(m.start),
                "end": iso(m.end),
                "active": m.active,
                "components": list(m.components),
            }
            for m in snapshot.maintenance
        ],
        "pastIncidents": [
            {"day": day.isoformat(), "incidents": [_incident_dict(i) for i in incidents]}
            for day, incidents in snapshot.past_incidents
        ],
        "generatedAt": iso(snapshot.generated_at),
        "stale": snapshot.stale,
    }


def render_json(snapshot: PageSnapshot) -> bytes:
    return json.dumps(_public_dict(snapshot), ensure_ascii=False, separators=(",", ":")).encode()


# --- HTML -----------------------------------------------------------------------------------------------------


def _style_hash(css: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"


def page_csp(inline_css: str, logo: str | None) -> str:
    img = "'self'" + (f" {logo}" if logo else "")
    return (
        f"default-src 'none'; style-src 'self' {_style_hash(inline_css)}; img-src {img}; script-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


def render_html(snapshot: PageSnapshot) -> tuple[bytes, str]:
    """The page and its Content-Security-Policy (which carries the hash of the inline accent style)."""
    accent, on_accent = accent_colours(snapshot.accent_color)
    banner = STATE_COLOURS.get(snapshot.overall, STATE_COLOURS["unknown"])
    inline_css = f":root{{--accent:{accent};--on-accent:{on_accent};--banner:{banner}}}"
    logo = logo_origin(snapshot.logo_url)
    components = [c.name for g in snapshot.groups for c in g.components]
    html = TEMPLATES.get_template("page.html").render(
        page=snapshot,
        inline_css=Markup(inline_css),  # noqa: S704 - built above from validated colours only
        logo_url=snapshot.logo_url if logo else None,
        overall_text=OVERALL_TEXT.get(snapshot.overall, OVERALL_TEXT["unknown"]),
        components=components,
        history_days=max((len(c.days) for g in snapshot.groups for c in g.components), default=0),
        today=utc(snapshot.generated_at).date(),
    )
    return html.encode(), page_csp(inline_css, logo)


# --- Cache ----------------------------------------------------------------------------------------------------


class Renderer:
    """Rendered outputs per (kind, slug, version, stale[, base URL]); ``calls`` counts real renders per kind."""

    def __init__(self, max_entries: int = 512) -> None:
        self._max = max_entries
        self._cache: OrderedDict[tuple[str, ...], Rendered] = OrderedDict()
        self.calls: Counter[str] = Counter()

    def _get(self, kind: str, snapshot: PageSnapshot, extra: str, make: Callable[[], Rendered]) -> Rendered:
        key = (kind, snapshot.slug, etag_of(snapshot), extra)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        self.calls[kind] += 1
        result = make()
        self._cache[key] = result
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return result

    def html(self, snapshot: PageSnapshot) -> Rendered:
        def make() -> Rendered:
            body, csp = render_html(snapshot)
            return Rendered(body, "text/html; charset=utf-8", etag_of(snapshot), utc(snapshot.generated_at), csp)

        return self._get("html", snapshot, "", make)

    def json(self, snapshot: PageSnapshot) -> Rendered:
        return self._get(
            "json",
            snapshot,
            "",
            lambda: Rendered(render_json(snapshot), "application/json", etag_of(snapshot), utc(snapshot.generated_at)),
        )

    def feed(self, kind: str, snapshot: PageSnapshot, base_url: str) -> Rendered:
        from spectra.statuspage.feeds import render_atom, render_rss

        render, media = (
            (render_atom, "application/atom+xml; charset=utf-8")
            if kind == "atom"
            else (render_rss, "application/rss+xml; charset=utf-8")
        )
        return self._get(
            kind,
            snapshot,
            base_url,
            lambda: Rendered(render(snapshot, base_url), media, etag_of(snapshot), utc(snapshot.generated_at)),
        )
