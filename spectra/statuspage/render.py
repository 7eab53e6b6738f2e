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
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from markupsafe import Markup

from spectra.runtime.templates import environment
from spectra.runtime.timefmt import iso_utc, utc, utc_text
from spectra.statuspage.feeds import render_atom, render_rss
from spectra.statuspage.formatting import (
    OVERALL_TEXT,
    STATE_COLOURS,
    accent_colours,
    day_class,
    day_text,
    format_percent,
    logo_origin,
    state_label,
)
from spectra.statuspage.model import ComponentView, PageIncidentView, PageSnapshot

TEMPLATES: Final = environment("spectra.statuspage")

TEMPLATES.filters.update(
    utc_text=utc_text,
    iso=iso_utc,
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
        "startedAt": iso_utc(incident.started_at),
        "resolvedAt": iso_utc(incident.resolved_at) if incident.resolved_at else None,
        "updates": [{"at": iso_utc(u.at), "state": u.state, "bodyHtml": u.body_html} for u in incident.updates],
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
                "start": iso_utc(m.start),
                "end": iso_utc(m.end),
                "active": m.active,
                "components": list(m.components),
            }
            for m in snapshot.maintenance
        ],
        "pastIncidents": [
            {"day": day.isoformat(), "incidents": [_incident_dict(i) for i in incidents]}
            for day, incidents in snapshot.past_incidents
        ],
        "generatedAt": iso_utc(snapshot.generated_at),
        "stale": snapshot.stale,
        # Global maintenance's message (plain text), while it asks to be shown on every page.
        "notice": (
            {
                "message": snapshot.notice.message,
                "until": iso_utc(snapshot.notice.until) if snapshot.notice.until else None,
            }
            if snapshot.notice is not None
            else None
        ),
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
        """The feed with links under `base_url`; its ETag covers the base, so feeds of two bases never share one."""
        render, media = (
            (render_atom, "application/atom+xml; charset=utf-8")
            if kind == "atom"
            else (render_rss, "application/rss+xml; charset=utf-8")
        )
        etag = f"{etag_of(snapshot)}.{hashlib.sha256(base_url.encode()).hexdigest()[:16]}"
        return self._get(
            kind,
            snapshot,
            base_url,
            lambda: Rendered(render(snapshot, base_url), media, etag, utc(snapshot.generated_at)),
        )
