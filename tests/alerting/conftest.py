"""Alerter fixtures: a migrated database, manifests applied through the loader, a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.alerting import Alerter
from spectra.api import parse_object
from spectra.reconcile import apply_set
from spectra.store import (
    Incident,
    IncidentEvent,
    Monitor,
    Notification,
    make_engine,
    save_states,
    session_factory,
    upgrade,
)
from spectra.tokens import Tokens

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
PUBLIC_URL = "https://status.example.test"

BASE = """
apiVersion: spectra.dev/v1alpha1
kind: Contact
metadata: {name: alice}
spec: {displayName: Alice, email: alice@example.com, phone: "+4915112345678", channels: [sms, email]}
---
apiVersion: spectra.dev/v1alpha1
kind: Contact
metadata: {name: bob}
spec: {displayName: Bob, email: bob@example.com, channels: [email]}
---
apiVersion: spectra.dev/v1alpha1
kind: EscalationPolicy
metadata: {name: primary}
spec:
  steps:
    - delay: 0s
      targets: [{contact: alice}]
      channels: [sms, voice]
    - delay: 10m
      targets: [{contact: bob}]
---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: web, labels: {tier: web}}
spec:
  type: http
  interval: 30s
  escalationPolicyRef: {name: primary}
  severity: critical
  http: {url: "https://web.example.test/health"}
---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: sleepy}
spec:
  type: http
  interval: 30s
  paused: true
  escalationPolicyRef: {name: primary}
  http: {url: "https://sleepy.example.test/"}
"""


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class DictSecrets:
    def __init__(self, values: dict[tuple[str, str, str], str] | None = None) -> None:
        self.values = values or {}

    def get(self, namespace: str, name: str, key: str) -> str | None:
        return self.values.get((namespace, name, key))


class WakeCounter:
    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


@dataclass
class World:
    """A database with manifests applied; monitor states written as of the fake clock."""

    sessions: sessionmaker[Session]
    clock: Clock
    secrets: DictSecrets
    tokens: Tokens = field(default_factory=lambda: Tokens("test-key"))
    states: dict[str, str] = field(default_factory=dict)
    alerters: list[Alerter] = field(default_factory=list)

    def apply(self, text: str) -> None:
        resources = [parse_object(doc) for doc in yaml.safe_load_all(text) if doc]
        with self.sessions() as session:
            apply_set(session, resources, "test", prune=False)
            session.commit()

    def alerter(self, instance_id: str = "a", **kwargs: Any) -> Alerter:
        alerter = Alerter(
            self.sessions,
            secrets=self.secrets,
            tokens=self.tokens,
            public_url=PUBLIC_URL,
            instance_id=instance_id,
            clock=self.clock,
            **kwargs,
        )
        self.alerters.append(alerter)
        return alerter

    def set_state(self, monitor: str, state: str) -> None:
        self.states[monitor] = state
        self.write_states()

    def write_states(self) -> None:
        """Every monitor's state as just checked (so no location counts as stale)."""
        now = self.clock()
        with self.sessions() as session:
            ids = {row.name: row.resource_id for row in session.execute(select(Monitor.name, Monitor.resource_id))}
            rows = [
                {
                    "monitor_id": ids[name],
                    "location": "default",
                    "state": state,
                    "last_status": state,
                    "consecutive_failures": 3 if state == "down" else 0,
                    "consecutive_successes": 3 if state == "up" else 0,
                    "last_check_at": now,
                    "last_latency_ms": 12.0,
                    "last_reason": "HTTP 503 from web" if state == "down" else "",
                    "changed_at": now,
                    "facts": None,
                }
                for name, state in self.states.items()
            ]
            save_states(session, rows)
            session.commit()

    async def tick(self, alerter: Alerter) -> None:
        self.write_states()
        await alerter.tick()

    # --- reading back ------------------------------------------------------------------------

    def incidents(self) -> list[Incident]:
        with self.sessions() as session:
            rows = list(session.scalars(select(Incident).order_by(Incident.id)))
            session.expunge_all()
            return rows

    def events(self, incident_id: int) -> list[tuple[str, str]]:
        with self.sessions() as session:
            rows = session.execute(
                select(IncidentEvent.type, IncidentEvent.message)
                .where(IncidentEvent.incident_id == incident_id)
                .order_by(IncidentEvent.at, IncidentEvent.id)
            )
            return [(row.type, row.message) for row in rows]

    def outbox(self) -> list[Notification]:
        with self.sessions() as session:
            rows = list(session.scalars(select(Notification).order_by(Notification.id)))
            session.expunge_all()
            return rows

    def idem_keys(self) -> list[str]:
        return [row.idempotency_key for row in self.outbox()]

    def max_per_key(self) -> int:
        with self.sessions() as session:
            counts = session.execute(
                select(func.count()).select_from(Notification).group_by(Notification.idempotency_key)
            ).scalars()
            return max(counts, default=0)


def _world(url: str) -> Iterator[World]:
    upgrade(url)
    engine: Engine = make_engine(url)
    world = World(session_factory(engine), Clock(), DictSecrets())
    world.apply(BASE)
    try:
        yield world
    finally:
        engine.dispose()


@pytest.fixture
def world(sqlite_url: str) -> Iterator[World]:
    yield from _world(sqlite_url)


@pytest.fixture
def any_world(database_url: str) -> Iterator[World]:
    """The same world on SQLite and on MariaDB."""
    yield from _world(database_url)
