"""PageSnapshot objects built directly, a fake SnapshotCache and an in-process client for the page routes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette

from spectra.statuspage.model import (
    ComponentView,
    DayBar,
    GroupView,
    IncidentUpdateView,
    MaintenanceView,
    PageIncidentView,
    PageSnapshot,
)
from spectra.statuspage.pages import page_routes
from spectra.statuspage.render import Renderer

NOW = datetime(2026, 11, 24, 12, 0, 30, tzinfo=UTC)
TODAY = NOW.date()


def days(count: int = 90, uptime: float | None = 100.0, down: int = 0) -> tuple[DayBar, ...]:
    return tuple(DayBar(TODAY - timedelta(days=count - 1 - i), uptime, down, False) for i in range(count))


def component(
    name: str = "API", state: str = "operational", monitors: tuple[str, ...] = ("prod/api-check",), **kw: Any
) -> ComponentView:
    fields: dict[str, Any] = {
        "name": name,
        "description_html": None,
        "state": state,
        "uptime_percent": 99.95,
        "days": days(),
        "monitors": monitors,
    }
    fields.update(kw)
    return ComponentView(**fields)


def incident(id_: int = 7, title: str = "Elevated errors", **kw: Any) -> PageIncidentView:
    fields: dict[str, Any] = {
        "id": id_,
        "title": title,
        "state": "investigating",
        "impact": "major",
        "components": ("API",),
        "started_at": NOW - timedelta(minutes=20),
        "resolved_at": None,
        "updates": (
            IncidentUpdateView(NOW - timedelta(minutes=19), "investigating", "<p>We are <strong>looking</strong>.</p>"),
        ),
    }
    fields.update(kw)
    return PageIncidentView(**fields)


def quiet_days(count: int = 14) -> tuple[tuple[date, tuple[PageIncidentView, ...]], ...]:
    return tuple((TODAY - timedelta(days=i), ()) for i in range(count))


def snapshot(**kw: Any) -> PageSnapshot:
    fields: dict[str, Any] = {
        "namespace": "prod",
        "name": "acme-status",
        "slug": "acme",
        "title": "Acme",
        "description_html": "<p>Status of <em>Acme</em> services.</p>",
        "public": True,
        "hostnames": ("status.acme.test",),
        "accent_color": "#ffcc00",
        "logo_url": "https://cdn.acme.test/logo.png",
        "subscriptions_enabled": True,
        "overall": "operational",
        "groups": (GroupView("Core", (component(), component("Web", monitors=("prod/web-check",)))),),
        "active_incidents": (),
        "maintenance": (),
        "past_incidents": quiet_days(),
        "generated_at": NOW,
        "stale": False,
        "version": "v1",
    }
    fields.update(kw)
    return PageSnapshot(**fields)


def maintenance(name: str = "Database upgrade", active: bool = False) -> MaintenanceView:
    return MaintenanceView(
        name,
        "<p>Short <em>pause</em>.</p>",
        NOW + timedelta(days=1),
        NOW + timedelta(days=1, hours=1),
        active,
        ("API",),
    )


class FakeCache:
    """The SnapshotCache interface over a fixed set of snapshots; `set` replaces one (a data change)."""

    def __init__(self, *snapshots: PageSnapshot) -> None:
        self.pages = {s.slug: s for s in snapshots}

    def set(self, value: PageSnapshot) -> None:
        self.pages[value.slug] = value

    def get(self, slug: str) -> PageSnapshot | None:
        return self.pages.get(slug)

    def by_host(self, host: str) -> PageSnapshot | None:
        name = host.split(":", maxsplit=1)[0].lower()
        return next((s for s in self.pages.values() if name in s.hostnames), None)

    def all(self) -> Mapping[str, PageSnapshot]:
        return dict(self.pages)


def app_for(cache: FakeCache, renderer: Renderer | None = None) -> Starlette:
    return Starlette(routes=page_routes(cache, renderer))


def client_for(app: Starlette, base_url: str = "https://spectra.example.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def replace(value: PageSnapshot, **kw: Any) -> PageSnapshot:
    return dataclasses.replace(value, **kw)
