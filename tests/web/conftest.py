"""Web fixtures: a migrated database with one open incident paged to a phone, and the app serving it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from spectra.runtime.metrics import Metrics
from spectra.store import (
    EscalationState,
    Incident,
    IncidentEvent,
    Notification,
    NotificationStatus,
    make_engine,
    session_factory,
    upgrade,
)
from spectra.tokens import Tokens
from spectra.web.alerting import AlertingWeb, alerting_routes
from spectra.web.app import AppParts, create_app

SECRET_KEY = "test-secret-key-for-web-tests-0123456789"
TWILIO_AUTH_TOKEN = "twilio-auth-token-for-tests-abcdef012345"
PUBLIC_URL = "https://spectra.example.test"
PAGED_PHONE = "+15550001111"
OTHER_PHONE = "+15550002222"
CODE = "4F2K"


@dataclass
class Site:
    client: httpx.AsyncClient
    sessions: sessionmaker[Session]
    tokens: Tokens
    incident_id: int
    wakes: list[int]

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


@pytest.fixture
async def site(sqlite_url: str) -> AsyncIterator[Site]:
    async for value in _site(sqlite_url):
        yield value


@pytest.fixture
async def site_any_db(database_url: str) -> AsyncIterator[Site]:
    """The same on SQLite and on MariaDB."""
    async for value in _site(database_url):
        yield value


def client_for(app: Starlette) -> httpx.AsyncClient:
    """An HTTP client that calls the ASGI app in process, as if it were served at PUBLIC_URL."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)


async def _site(url: str) -> AsyncIterator[Site]:
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    incident_id = add_incident(sessions, paged=(("sms", PAGED_PHONE), ("voice", PAGED_PHONE), ("email", "a@x.test")))
    tokens = Tokens(SECRET_KEY)
    wakes: list[int] = []
    alerting = AlertingWeb(
        tokens=tokens,
        public_url=PUBLIC_URL,
        twilio_auth_token=TWILIO_AUTH_TOKEN,
        after_change=lambda: wakes.append(1),
    )
    app = create_app(AppParts(sessions, Metrics(), lambda: None, routes=alerting_routes(alerting, sessions)))
    async with client_for(app) as client:
        yield Site(client, sessions, tokens, incident_id, wakes)
    engine.dispose()
