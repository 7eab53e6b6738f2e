"""Alerting test data: a world of contacts, policies and monitors for the alerter, a fake clock, and an
open incident paged to a phone, served by the app with the ack links and the Twilio webhooks.

- `World` (with `BASE`): manifests applied through the loader, monitor states written as of a `Clock`.
- `PagedIncident` / `add_incident`: an open incident whose pages went to `PAGED_PHONE` (SMS, voice) and
  an email address; `Site` serves it through the real app (`open_site`) at `PUBLIC_URL`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from spectra.alerting import Alerter
from spectra.api import parse_object
from spectra.reconcile import apply_set
from spectra.runtime.metrics import Metrics
from spectra.store import (
    EscalationState,
    Incident,
    IncidentEvent,
    Monitor,
    Notification,
    NotificationStatus,
    save_states,
)
from spectra.tokens import Tokens
from spectra.web.alerting import AlertingWeb, alerting_routes
from spectra.web.app import AppParts, create_app

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
PUBLIC_URL = "https://spectra.example.test"
SECRET_KEY = "test-secret-key-for-web-tests-0123456789"
TWILIO_AUTH_TOKEN = "twilio-auth-token-for-tests-abcdef012345"
TWILIO_NUMBER = "+15559990000"
PAGED_PHONE = "+15550001111"
OTHER_PHONE = "+15550002222"
PAGED_EMAIL = "a@x.test"
CODE = "4F2K"

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
BOB_EMAIL = "email:bob@example.com"  # how a page to bob (BASE) ends its idempotency key


class Clock:
    """A clock that moves only when told (`advance`)."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class DictSecrets:
    """A SecretResolver over a dict of (namespace, name, key) -> value."""

    def __init__(self, values: dict[tuple[str, str, str], str] | None = None) -> None:
        self.values = values or {}

    def get(self, namespace: str, name: str, key: str) -> str | None:
        return self.values.get((namespace, name, key))


class WakeCounter:
    """A Waker that counts its wakes (the alerter's sender)."""

    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


# --- the alerter's world -------------------------------------------------------------------------


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


def make_world(sessions: sessionmaker[Session]) -> World:
    """The world on a migrated database: BASE applied, the clock at START, no Secrets."""
    world = World(sessions, Clock(), DictSecrets())
    world.apply(BASE)
    return world


# --- an incident paged to a phone, and the site that serves it ----------------------------------


def add_incident(sessions: sessionmaker[Session], code: str = CODE, paged: tuple[tuple[str, str], ...] = ()) -> int:
    """An open incident with an active escalation; `paged` (channel, number) notifications were sent for it."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        incident = Incident(
            code=code,
            namespace="default",
            monitor_name="api",
            title="api is down: connection refused",
            severity="critical",
            state="open",
            opened_at=now - timedelta(minutes=3),
        )
        session.add(incident)
        session.flush()
        session.add(IncidentEvent(incident_id=incident.id, type="opened", message="connection refused"))
        session.add(EscalationState(incident_id=incident.id, step_index=1, next_step_at=now + timedelta(minutes=5)))
        for channel, number in paged:
            session.add(
                Notification(
                    idempotency_key=f"incident:{incident.id}:step:0:repeat:0:contact:alice:{channel}",
                    incident_id=incident.id,
                    channel=channel,
                    recipient=number,
                    subject=f"[{code}] api is down",
                    payload={},
                    status=NotificationStatus.SENT.value,
                    attempts=1,
                    sent_at=now - timedelta(minutes=2),
                )
            )
        return incident.id


PAGED = (("sms", PAGED_PHONE), ("voice", PAGED_PHONE), ("email", PAGED_EMAIL))


@dataclass
class PagedIncident:
    """An open incident (code CODE) paged by SMS and voice to PAGED_PHONE and by email to PAGED_EMAIL."""

    sessions: sessionmaker[Session]
    incident_id: int

    def incident(self) -> Incident:
        with self.sessions() as session:
            incident = session.get(Incident, self.incident_id)
            assert incident is not None
            session.expunge(incident)
            return incident

    def events(self) -> list[tuple[str, str | None, str | None]]:
        """The timeline as (type, actor, channel)."""
        with self.sessions() as session:
            rows = session.scalars(
                select(IncidentEvent).where(IncidentEvent.incident_id == self.incident_id).order_by(IncidentEvent.id)
            )
            return [(row.type, row.actor, row.channel) for row in rows]

    def acknowledged(self) -> bool:
        return any(event[0] == "acknowledged" for event in self.events())


def paged_incident(sessions: sessionmaker[Session]) -> PagedIncident:
    return PagedIncident(sessions, add_incident(sessions, paged=PAGED))


@dataclass
class Site(PagedIncident):
    """The paged incident served by the real app (ack links and Twilio webhooks) at PUBLIC_URL."""

    client: httpx.AsyncClient
    tokens: Tokens
    wakes: list[int]  # one entry per `after_change` call


def client_for(app: Starlette) -> httpx.AsyncClient:
    """An HTTP client that calls the ASGI app in process, as if it were served at PUBLIC_URL."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)


def alerting_app(sessions: sessionmaker[Session], web: AlertingWeb) -> Starlette:
    """The app of a process that alerts: its fixed routes and the alerting routes of `web`."""
    return create_app(AppParts(sessions, Metrics(), lambda: None, routes=alerting_routes(web, sessions)))


@asynccontextmanager
async def open_site(sessions: sessionmaker[Session]) -> AsyncIterator[Site]:
    """The paged incident in `sessions`' database and a client of the app serving it."""
    incident_id = add_incident(sessions, paged=PAGED)
    tokens = Tokens(SECRET_KEY)
    wakes: list[int] = []
    web = AlertingWeb(
        tokens=tokens,
        public_url=PUBLIC_URL,
        twilio_auth_token=TWILIO_AUTH_TOKEN,
        after_change=lambda: wakes.append(1),
    )
    async with client_for(alerting_app(sessions, web)) as client:
        yield Site(sessions, incident_id, client, tokens, wakes)
