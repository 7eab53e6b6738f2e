"""`create_app`: health, metrics, the monitor API and heartbeat pushes always, then the parts' own routes."""

from __future__ import annotations

import httpx
from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import Readiness
from spectra.store import Role
from spectra.web.app import AppParts, create_app
from tests.factories.accounts import member, token_of
from tests.factories.store import monitor_factory
from tests.support.databases import sqlite_only

PUSH_TOKEN = "cron-push-token-5f2c9a"


async def part_page(request: Request) -> Response:
    return PlainTextResponse(f"part: {request.url.path}\n")


def client(parts: AppParts, base_url: str = "http://spectra.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(parts)), base_url=base_url)


@sqlite_only
async def test_fixed_routes_then_the_parts_routes(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        monitor_factory(session)("cron", locations=("eu",), push_token=PUSH_TOKEN)
        api_token = token_of(session, member(session, "solo@example.com", "", Role.USER))
    metrics = Metrics()
    Counter("spectra_test_requests", "A metric of the process", registry=metrics.registry).inc(3)
    readiness = Readiness()
    parts = AppParts(
        session_factory=sessions,
        metrics=metrics,
        readiness=readiness,
        loopback_only=False,
        # A status page on its own hostname serves `/` and could serve anything: never before the fixed paths.
        routes=[Route("/", part_page), Route("/healthz", part_page), Route("/{path:path}", part_page)],
    )
    async with client(parts) as http:
        health = await http.get("/healthz")
        starting = await http.get("/readyz")
        readiness.problem = None
        ready = await http.get("/readyz")
        scraped = await http.get("/metrics")
        closed = await http.get("/api/v1/monitors")
        monitors = await http.get("/api/v1/monitors", headers={"Authorization": f"Bearer {api_token}"})
        pushed = await http.post(f"/api/v1/heartbeat/{PUSH_TOKEN}")
        unknown = await http.get("/api/v1/heartbeat/guess")
        home = await http.get("/")
        other = await http.get("/incidents/7")

    assert (health.status_code, health.text) == (200, "ok\n")
    assert (starting.status_code, starting.text) == (503, "not ready: starting\n")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    assert scraped.status_code == 200
    assert "spectra_test_requests_total 3.0" in scraped.text
    assert closed.status_code == 401
    assert monitors.status_code == 200
    assert [(item["name"], item["state"]) for item in monitors.json()] == [("cron", "pending")]
    assert (pushed.status_code, pushed.text) == (200, "ok\n")
    assert unknown.status_code == 404
    assert (home.status_code, home.text) == (200, "part: /\n")
    assert (other.status_code, other.text) == (200, "part: /incidents/7\n")


@sqlite_only
async def test_on_loopback_the_monitor_api_needs_no_token(sessions: sessionmaker[Session]) -> None:
    parts = AppParts(session_factory=sessions, metrics=Metrics(), readiness=Readiness())
    assert (parts.loopback_only, parts.routes) == (True, ())
    async with client(parts, base_url="http://127.0.0.1:8080") as http:
        response = await http.get("/api/v1/monitors")
        missing = await http.get("/")
    assert (response.status_code, response.json()) == (200, [])
    assert missing.status_code == 404  # no parts, no other routes


@sqlite_only
async def test_off_loopback_without_a_token_the_monitor_api_stays_closed(sessions: sessionmaker[Session]) -> None:
    parts = AppParts(session_factory=sessions, metrics=Metrics(), readiness=Readiness(), loopback_only=False)
    async with client(parts) as http:
        response = await http.get("/api/v1/monitors", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 401
