"""`/api/v1/monitors`: the overview as JSON (`monitor_json`), open on loopback, else behind a bearer token."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from spectra.store import monitor_overview, save_states
from spectra.web.monitors import monitor_json, monitor_routes
from tests.factories.store import NOW, monitor_factory, state_row
from tests.support.databases import sqlite_only

TOKEN = "api-token-0123456789"


def test_overview_json_has_the_api_fields(session: Session) -> None:
    monitor = monitor_factory(session)("api", locations=("eu",))
    save_states(session, [state_row(monitor.resource_id, "eu", "up")])
    (item,) = monitor_overview(session, now=NOW)
    assert monitor_json(item) == {
        "namespace": "default",
        "name": "api",
        "type": "http",
        "target": "https://api.example",
        "paused": False,
        "state": "up",
        "lastCheck": NOW.isoformat(),
        "latencyMs": 12.5,
        "reason": "up in eu",
        "locations": [{"location": "eu", "state": "up", "lastCheck": NOW.isoformat(), "reporting": True}],
    }


def test_a_monitor_never_checked_has_no_times(session: Session) -> None:
    monitor_factory(session)("fresh", locations=("eu",))
    (item,) = monitor_overview(session, now=NOW)
    body = monitor_json(item)
    assert (body["state"], body["lastCheck"], body["latencyMs"], body["reason"]) == ("pending", None, None, "")
    assert body["locations"] == [{"location": "eu", "state": "pending", "lastCheck": None, "reporting": False}]


def client(sessions: sessionmaker[Session], *, loopback_only: bool, api_token: str | None = TOKEN) -> httpx.AsyncClient:
    app = Starlette(routes=monitor_routes(sessions, loopback_only=loopback_only, api_token=api_token))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://spectra.test")


@sqlite_only
async def test_on_loopback_the_api_is_open(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        monitor_factory(session)("api", locations=("eu",))
    async with client(sessions, loopback_only=True, api_token=None) as http:
        response = await http.get("/api/v1/monitors")
    assert response.status_code == 200
    assert [(item["name"], item["state"]) for item in response.json()] == [("api", "pending")]


@sqlite_only
@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        (f"Basic {TOKEN}", 401),
        ("Bearer not-the-token", 401),
        (f"Bearer {TOKEN}x", 401),
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),  # the scheme is case-insensitive
    ],
)
async def test_elsewhere_it_needs_the_bearer_token(
    sessions: sessionmaker[Session], authorization: str | None, status: int
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with client(sessions, loopback_only=False) as http:
        response = await http.get("/api/v1/monitors", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json() == {"error": "this API needs a token when the server is not loopback-only"}
    else:
        assert response.json() == []


@sqlite_only
async def test_without_a_configured_token_it_stays_closed(sessions: sessionmaker[Session]) -> None:
    async with client(sessions, loopback_only=False, api_token=None) as http:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            assert (await http.get("/api/v1/monitors", headers=headers)).status_code == 401
