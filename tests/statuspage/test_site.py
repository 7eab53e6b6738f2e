"""StatusPages: the page-events loop (auto incidents -> subscriber mails) and its routes mounted in the web app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.runtime.metrics import Metrics
from spectra.statuspage.site import StatusPages
from spectra.store import Notification, PageIncident, Subscriber
from spectra.tokens import Tokens
from spectra.web.app import AppParts, create_app
from tests.factories.pages import DB_NOW as NOW
from tests.factories.pages import MONITORS, PAGE, PUBLIC_URL, PageDb, page_db
from tests.support.databases import sqlite_only
from tests.support.waiting import eventually

SUBSCRIBED_PAGE = PAGE.replace("autoIncidents: true", "autoIncidents: true\n  subscriptions: {enabled: true}")
ALL_UP = {"api": "up", "web-1": "up", "web-2": "up", "db": "up"}


# Logic above the store: SQLite only (the store's own tests run on both backends).
pytestmark = sqlite_only


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> PageDb:
    return page_db(sessions, MONITORS, SUBSCRIBED_PAGE)


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def pages(db: PageDb, wakes: Wakes, *, events: bool = True, leading: bool = True, minutes: int = 0) -> StatusPages:
    return StatusPages(
        db.sessions,
        tokens=Tokens("test-secret-key-for-statuspage-service-0123"),
        public_url=PUBLIC_URL,
        wake=wakes,
        events=events,
        leading=lambda: leading,
        clock=lambda: NOW + timedelta(minutes=minutes),
    )


def subscribe(db: PageDb, email: str, confirmed: bool = True) -> None:
    with db.sessions.begin() as session:
        session.add(
            Subscriber(
                page_namespace="default",
                page_name="main",
                email=email,
                component="",
                confirmed_at=NOW - timedelta(days=1) if confirmed else None,
            )
        )


def page_incidents(db: PageDb) -> list[tuple[str, str]]:
    with db.sessions() as session:
        return [(row.title, row.state) for row in session.scalars(select(PageIncident).order_by(PageIncident.id))]


def mails(db: PageDb) -> list[str]:
    with db.sessions() as session:
        return sorted(session.scalars(select(Notification.recipient)))


async def test_outage_opens_incident_and_mails_confirmed_subscribers_once(db: PageDb) -> None:
    subscribe(db, "confirmed@example.test")
    subscribe(db, "pending@example.test", confirmed=False)
    wakes = Wakes()
    db.set_states(ALL_UP, now=NOW)
    service = pages(db, wakes)
    assert await service.tick() == 0
    assert page_incidents(db) == []
    assert wakes.count == 0

    db.set_states({**ALL_UP, "api": "down"}, now=NOW)
    assert await service.tick() == 1
    assert page_incidents(db) == [("Outage: API", "investigating")]
    assert mails(db) == ["confirmed@example.test"]
    assert wakes.count == 1
    # The cache was rebuilt after the change: the page shows the incident at once.
    snapshot = service.cache.get("main")
    assert snapshot is not None
    assert [incident.title for incident in snapshot.active_incidents] == ["Outage: API"]

    assert await service.tick() == 0  # nothing new: no second incident, no second mail
    assert page_incidents(db) == [("Outage: API", "investigating")]
    assert wakes.count == 1

    db.set_states(ALL_UP, now=NOW + timedelta(minutes=5))
    later = pages(db, wakes, minutes=5)
    assert await later.tick() == 1  # "resolved"
    assert page_incidents(db) == [("Outage: API", "resolved")]
    assert mails(db) == ["confirmed@example.test", "confirmed@example.test"]


@pytest.mark.parametrize(
    ("events", "leading"),
    [(False, True), (True, False)],
    ids=["spectra-web-never-writes", "standby-alerter-waits"],
)
async def test_no_incidents_without_events_or_leadership(db: PageDb, events: bool, leading: bool) -> None:
    subscribe(db, "confirmed@example.test")
    db.set_states({**ALL_UP, "api": "down"}, now=NOW)
    wakes = Wakes()
    service = pages(db, wakes, events=events, leading=leading)
    assert await service.tick() == 0
    assert page_incidents(db) == []
    assert mails(db) == []
    assert wakes.count == 0
    snapshot = service.cache.get("main")  # the snapshots are still refreshed
    assert snapshot is not None
    assert snapshot.overall == "major_outage"


async def test_run_loop_stops(db: PageDb, monkeypatch: pytest.MonkeyPatch) -> None:
    service = pages(db, Wakes())
    service.interval_s = 0.05
    passes: list[int] = []
    tick = service.tick

    async def counted() -> int:
        passes.append(await tick())
        return passes[-1]

    monkeypatch.setattr(service, "tick", counted)
    task = asyncio.create_task(service.run())
    await eventually(lambda: len(passes) >= 2)  # it loops ...
    await service.stop()
    await asyncio.wait_for(task, 5)  # ... and ends when stopped
    assert task.done()
    assert service.cache.get("main") is not None


@pytest.fixture
async def client(db: PageDb) -> AsyncIterator[httpx.AsyncClient]:
    db.set_states(ALL_UP, now=NOW)
    parts = AppParts(db.sessions, Metrics(), lambda: None, routes=pages(db, Wakes()).routes())
    transport = httpx.ASGITransport(app=create_app(parts))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.mark.parametrize(
    ("host", "path", "status", "contains"),
    [
        ("status.example.test", "/healthz", 200, "ok"),  # a page's hostname never shadows the fixed paths
        ("status.example.test", "/readyz", 200, "ready"),
        # The monitor API answers (not the page), refusing a Host that is not loopback (DNS rebinding).
        ("status.example.test", "/api/v1/monitors", 421, "loopback addresses"),
        ("status.example.test", "/", 200, "Main status"),
        ("status.example.test:8080", "/", 200, "Main status"),
        ("other.example.test", "/", 404, ""),
        ("other.example.test", "/s/main", 200, "Main status"),
        ("other.example.test", "/api/v1/status-pages/main", 200, "Main status"),
        ("other.example.test", "/s/nope", 404, ""),
    ],
)
async def test_routes_are_mounted(client: httpx.AsyncClient, host: str, path: str, status: int, contains: str) -> None:
    response = await client.get(path, headers={"Host": host})
    assert response.status_code == status, response.text[:300]
    assert contains in response.text


async def test_subscription_routes_are_mounted(client: httpx.AsyncClient, db: PageDb) -> None:
    response = await client.post("/s/main/subscribe", data={"email": "new@example.com"})
    assert response.status_code == 200
    assert "Check your inbox" in response.text
    assert mails(db) == ["new@example.com"]  # the confirmation mail is queued


async def test_without_statuspages_nothing_is_mounted(db: PageDb) -> None:
    parts = AppParts(db.sessions, Metrics(), lambda: None)
    transport = httpx.ASGITransport(app=create_app(parts))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get("/s/main")).status_code == 404
        assert (await http.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("configured", "links", "cache_control"),
    [
        ("https://status.example.test/", f"{PUBLIC_URL}/s/main", "public, max-age=5"),
        ("", "http://evil.example/s/main", "private, max-age=5"),  # only this client sees its own Host
    ],
    ids=["public-url-set", "public-url-unset"],
)
async def test_feeds_take_their_links_from_spectra_public_url_when_it_is_set(
    db: PageDb, monkeypatch: pytest.MonkeyPatch, configured: str, links: str, cache_control: str
) -> None:
    monkeypatch.setenv("SPECTRA_PUBLIC_URL", configured)
    db.set_states(ALL_UP, now=NOW)
    parts = AppParts(db.sessions, Metrics(), lambda: None, routes=pages(db, Wakes()).routes())
    transport = httpx.ASGITransport(app=create_app(parts))
    async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as http:
        response = await http.get("/s/main/feed.atom")
    assert response.status_code == 200
    assert f'href="{links}"' in response.text
    assert response.headers["cache-control"] == cache_control
