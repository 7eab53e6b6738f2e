"""`/api/v1/monitors`: the overview as JSON (`monitor_json`), open on loopback (to loopback Hosts only), else
behind a bearer token."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from spectra.store import monitor_overview, save_states
from spectra.web.monitors import monitor_json, monitor_routes, names_loopback
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


def client(
    sessions: sessionmaker[Session],
    *,
    loopback_only: bool,
    api_token: str | None = TOKEN,
    base_url: str = "http://spectra.test",
) -> httpx.AsyncClient:
    app = Starlette(routes=monitor_routes(sessions, loopback_only=loopback_only, api_token=api_token))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@sqlite_only
async def test_on_loopback_the_api_is_open(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        monitor_factory(session)("api", locations=("eu",))
    async with client(sessions, loopback_only=True, api_token=None, base_url="http://127.0.0.1:8080") as http:
        response = await http.get("/api/v1/monitors")
    assert response.status_code == 200
    assert [(item["name"], item["state"]) for item in response.json()] == [("api", "pending")]


# What a browser sends as Host: the page's own name (DNS rebinding keeps it), or a loopback address.
LOOPBACK_HOSTS = ["127.0.0.1:8080", "127.0.0.1", "localhost", "LOCALHOST:80", "localhost:1", "[::1]:8080", "[::1]"]
LOOPBACK_HOSTS += ["127.0.0.2:9000", "127.0.0.1:"]
FOREIGN_HOSTS = ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil", "localhost.evil:80"]
FOREIGN_HOSTS += ["", "evil@127.0.0.1", "127.0.0.1/x", "127.0.0.1?a", "127.0.0.1#a", "127.0.0.1:port", "::1"]
FOREIGN_HOSTS += ["[::ffff:127.0.0.1]", "0.0.0.0", "10.0.0.1:8080", "[fe80::1]", "localhost:99999", " localhost"]


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_hosts_that_name_loopback(host: str) -> None:
    assert names_loopback(host)


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_hosts_that_do_not(host: str) -> None:
    assert not names_loopback(host)


@sqlite_only
async def test_on_loopback_a_foreign_host_is_misdirected(sessions: sessionmaker[Session]) -> None:
    async with client(sessions, loopback_only=True, api_token=None) as http:
        refused = {host: await http.get("/api/v1/monitors", headers={"Host": host}) for host in FOREIGN_HOSTS[:6]}
        served = {host: await http.get("/api/v1/monitors", headers={"Host": host}) for host in LOOPBACK_HOSTS}
    assert {host: response.status_code for host, response in refused.items()} == dict.fromkeys(FOREIGN_HOSTS[:6], 421)
    assert refused["evil.example"].json() == {"error": "this API answers only to localhost and loopback addresses"}
    assert {host: response.status_code for host, response in served.items()} == dict.fromkeys(LOOPBACK_HOSTS, 200)


@sqlite_only
async def test_behind_a_token_any_host_is_served(sessions: sessionmaker[Session]) -> None:
    # A rebinding page cannot send the bearer token, so the Host rule is only for the open API.
    async with client(sessions, loopback_only=False) as http:
        response = await http.get(
            "/api/v1/monitors", headers={"Host": "status.example.com", "Authorization": f"Bearer {TOKEN}"}
        )
    assert response.status_code == 200


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
