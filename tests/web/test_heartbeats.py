"""`/api/v1/heartbeat/{token}`: GET or POST records a push for the monitor with that token; only hashes are stored."""

from __future__ import annotations

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from spectra.store import HeartbeatPush, Monitor, last_push, push_token_hash
from spectra.web.heartbeats import heartbeat_routes
from tests.factories.store import monitor_factory
from tests.support.databases import sqlite_only

TOKEN = "cron-push-token-5f2c9a"


def client(sessions: sessionmaker[Session]) -> httpx.AsyncClient:
    app = Starlette(routes=heartbeat_routes(sessions))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://spectra.test")


def add_cron(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        return monitor_factory(session)("cron", push_token=TOKEN).resource_id


@sqlite_only
async def test_get_and_post_record_a_push(sessions: sessionmaker[Session]) -> None:
    cron = add_cron(sessions)
    async with client(sessions) as http:
        got = await http.get(f"/api/v1/heartbeat/{TOKEN}")
        posted = await http.post(f"/api/v1/heartbeat/{TOKEN}", content=b"job done")
    assert (got.status_code, got.text) == (200, "ok\n")
    assert (posted.status_code, posted.text) == (200, "ok\n")
    with sessions() as session:
        pushed = session.get(HeartbeatPush, cron)
        assert pushed is not None
        assert pushed.pushes == 2
        assert last_push(session, cron) == pushed.last_push_at


@sqlite_only
async def test_an_unknown_token_is_404_and_records_nothing(sessions: sessionmaker[Session]) -> None:
    add_cron(sessions)
    async with client(sessions) as http:
        responses = [await http.get("/api/v1/heartbeat/guess"), await http.post(f"/api/v1/heartbeat/{TOKEN}x")]
    assert [(r.status_code, r.text) for r in responses] == [(404, "unknown heartbeat token\n")] * 2
    with sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(HeartbeatPush)) == 0


@sqlite_only
async def test_other_methods_are_not_allowed(sessions: sessionmaker[Session]) -> None:
    add_cron(sessions)
    async with client(sessions) as http:
        response = await http.delete(f"/api/v1/heartbeat/{TOKEN}")
    assert response.status_code == 405


@sqlite_only
async def test_only_the_hash_of_the_token_is_stored(sessions: sessionmaker[Session], engine: sa.Engine) -> None:
    add_cron(sessions)
    async with client(sessions) as http:
        assert (await http.get(f"/api/v1/heartbeat/{TOKEN}")).status_code == 200
    with sessions() as session:
        assert session.scalars(sa.select(Monitor.push_token_hash)).all() == [push_token_hash(TOKEN)]
    with engine.connect() as conn:
        for table in ("monitors", "heartbeat_pushes", "resources"):
            rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()
            assert rows
            assert TOKEN not in str(rows)
