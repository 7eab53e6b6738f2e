"""A migrated database with monitors and a status page applied through the real loader (helper P1)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.api import parse_object
from spectra.reconcile import apply_set
from spectra.store import DailyRollup, Monitor, make_engine, save_states, session_factory, upgrade

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # noon UTC: today is half over

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


@dataclass
class PageDb:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    def apply(self, text: str) -> None:
        resources = [parse_object(doc) for doc in yaml.safe_load_all(text) if doc]
        with self.sessions() as session:
            apply_set(session, resources, "test", prune=False)
            session.commit()

    def ids(self) -> dict[str, int]:
        with self.sessions() as session:
            return {row.name: row.resource_id for row in session.execute(select(Monitor.name, Monitor.resource_id))}

    def set_states(self, states: dict[str, str], now: datetime = NOW) -> None:
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
        """One daily rollup row, written directly."""
        monitor_id = self.ids()[monitor]
        with self.sessions() as session:
            session.add(
                DailyRollup(
                    monitor_id=monitor_id,
                    location=location,
                    bucket_start=datetime(day.year, day.month, day.day, tzinfo=UTC),
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


def page_db(url: str, *manifests: str) -> Iterator[PageDb]:
    upgrade(url)
    engine = make_engine(url)
    db = PageDb(url, engine, session_factory(engine))
    for text in manifests or (MONITORS, PAGE):
        db.apply(text)
    try:
        yield db
    finally:
        engine.dispose()
