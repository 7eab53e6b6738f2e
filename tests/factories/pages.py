"""Status-page test data: snapshots built directly, and a database with monitors, pages and rollups.

- Snapshots (as of `NOW`): `snapshot` (page "acme" in namespace "prod" with components API and Web),
  `component`, `days`, `incident`, `maintenance`, `quiet_days`, `replace`; `subscription_page`, the
  smaller page of the subscription tests (namespace "default", "Acme Status"). `FakeCache` serves any of
  them as the SnapshotCache does; `app_for` / `client_for` put the public page routes in front of it.
- Subscriptions: `SECRET_KEY` signs the links, `PUBLIC_URL` is the site's address.
- Database (as of `DB_NOW`): `page_db(sessions, *manifests)` applies `MONITORS` and `PAGE` (or the
  manifests given) through the real loader into the shared migrated database (the `sessions` fixture);
  `PageDb` then writes monitor states and rollup rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from spectra.api import parse_object
from spectra.reconcile import apply_set
from spectra.statuspage.formatting import DEFAULT_ACCENT
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
from spectra.store import DailyRollup, HourlyRollup, Monitor, save_states

# --- snapshots ------------------------------------------------------------------------------------

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


def replace(value: PageSnapshot, **kw: Any) -> PageSnapshot:
    return dataclasses.replace(value, **kw)


# --- subscriptions --------------------------------------------------------------------------------

SECRET_KEY = "test-secret-key-for-subscription-tests-0123"
PUBLIC_URL = "https://status.example.test"


def subscription_page(
    slug: str = "acme", *, name: str = "acme", public: bool = True, subscriptions: bool = True
) -> PageSnapshot:
    """Page `default/{name}` titled "Acme Status", components API and Web, subscriptions on by default."""

    def part(component_name: str) -> ComponentView:
        return ComponentView(component_name, None, "operational", 100.0, (), ("default/api",))

    return PageSnapshot(
        namespace="default",
        name=name,
        slug=slug,
        title="Acme Status",
        description_html=None,
        public=public,
        hostnames=(),
        accent_color="#0055aa",
        logo_url=None,
        subscriptions_enabled=subscriptions,
        overall="operational",
        groups=(GroupView("Core", (part("API"), part("Web"))),),
        active_incidents=(),
        maintenance=(),
        past_incidents=(),
        generated_at=NOW,
    )


# --- serving snapshots ----------------------------------------------------------------------------


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


def app_for(cache: FakeCache, renderer: Renderer | None = None, *, public_url: str | None = None) -> Starlette:
    return Starlette(routes=page_routes(cache, renderer, public_url=public_url))


def client_for(app: Starlette, base_url: str = "https://spectra.example.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


# --- a database with pages ------------------------------------------------------------------------

DB_NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # noon UTC: today is half over

MONITORS = """
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: api}
spec: {type: http, interval: 30s, http: {url: "https://api.example.test/health"}}
---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: web-1, labels: {tier: web}}
spec: {type: http, interval: 30s, http: {url: "https://web1.example.test/"}}
---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: web-2, labels: {tier: web}}
spec: {type: http, interval: 30s, http: {url: "https://web2.example.test/"}}
---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: db}
spec: {type: tcp, interval: 30s, tcp: {host: db.example.test, port: 5432}}
"""

PAGE = """
apiVersion: spectra.dev/v1alpha1
kind: StatusPage
metadata: {name: main}
spec:
  slug: main
  title: Main status
  description: "All **our** services. <script>alert(1)</script>"
  hostnames: [status.example.test]
  historyDays: 7
  autoIncidents: true
  branding: {accentColor: "#112233"}
  groups:
    - name: Core
      components:
        - name: API
          description: "The [API](https://api.example.test/docs)"
          monitors: [api]
        - name: Web
          monitorSelector: {matchLabels: {tier: web}}
    - name: Data
      components:
        - name: Database
          monitors: [db]
"""


@dataclasses.dataclass
class PageDb:
    """Monitors and status pages in the shared migrated database; states and rollup rows written directly."""

    sessions: sessionmaker[Session]

    def apply(self, text: str) -> None:
        resources = [parse_object(doc) for doc in yaml.safe_load_all(text) if doc]
        with self.sessions() as session:
            apply_set(session, resources, "test", prune=False)
            session.commit()

    def ids(self) -> dict[str, int]:
        with self.sessions() as session:
            return {row.name: row.resource_id for row in session.execute(select(Monitor.name, Monitor.resource_id))}

    def set_states(self, states: Mapping[str, str], now: datetime = DB_NOW) -> None:
        """Monitor states as just checked from location "default"."""
        ids = self.ids()
        rows = [
            {
                "monitor_id": ids[name],
                "location": "default",
                "state": state,
                "last_status": state,
                "consecutive_failures": 0,
                "consecutive_successes": 0,
                "last_check_at": now,
                "last_latency_ms": 10.0,
                "last_reason": "",
                "changed_at": now,
                "facts": None,
            }
            for name, state in states.items()
        ]
        with self.sessions() as session:
            save_states(session, rows)
            session.commit()

    def daily(
        self, monitor: str, day: date, up: int, degraded: int = 0, down: int = 0, location: str = "default"
    ) -> None:
        """One daily rollup row (the UTC day `day`), written directly."""
        self._rollup(
            DailyRollup, monitor, datetime(day.year, day.month, day.day, tzinfo=UTC), up, degraded, down, location
        )

    def hourly(
        self, monitor: str, hour: datetime, up: int, degraded: int = 0, down: int = 0, location: str = "default"
    ) -> None:
        """One hourly rollup row (the UTC hour starting at `hour`), written directly."""
        self._rollup(HourlyRollup, monitor, hour, up, degraded, down, location)

    def _rollup(
        self,
        model: type[DailyRollup] | type[HourlyRollup],
        monitor: str,
        bucket_start: datetime,
        up: int,
        degraded: int,
        down: int,
        location: str,
    ) -> None:
        monitor_id = self.ids()[monitor]
        with self.sessions() as session:
            session.add(
                model(
                    monitor_id=monitor_id,
                    location=location,
                    bucket_start=bucket_start,
                    checks_total=up + degraded + down,
                    checks_up=up,
                    checks_degraded=degraded,
                    checks_down=down,
                    latency_count=0,
                    latency_sum_ms=0.0,
                    latency_max_ms=None,
                )
            )
            session.commit()


def page_db(sessions: sessionmaker[Session], *manifests: str) -> PageDb:
    """The shared database with `manifests` applied in order (by default `MONITORS` and `PAGE`)."""
    db = PageDb(sessions)
    for text in manifests or (MONITORS, PAGE):
        db.apply(text)
    return db


# Accent colours as a page gives them -> as pages use them (invalid ones fall back to the default).
ACCENTS: list[tuple[str | None, str]] = [
    ("#ffcc00", "#ffcc00"),
    ("#0A0B0C", "#0a0b0c"),
    ("red", DEFAULT_ACCENT),
    ("#fff", DEFAULT_ACCENT),
    ("#123456;}body{display:none", DEFAULT_ACCENT),
    (None, DEFAULT_ACCENT),
]
