"""`/api/v1/heartbeat/{token}`: GET or POST records a push for the monitor with that token; only hashes are stored;
unknown tokens are limited per client address and refused past the limit without a database lookup."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

import spectra.web.heartbeats
from spectra.statuspage.ratelimit import SlidingWindowLimiter
from spectra.store import HeartbeatPush, Monitor, last_push, push_token_hash
from spectra.web.heartbeats import (
    HEARTBEAT_LOOKUPS,
    UNKNOWN_PER_MINUTE_ENV,
    heartbeat_routes,
    unknown_token_limiter,
)
from tests.factories.store import monitor_factory
from tests.support.databases import sqlite_only
from tests.support.waiting import eventually

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


def limited_client(
    sessions: sessionmaker[Session], limiter: SlidingWindowLimiter, address: str = "198.51.100.7"
) -> httpx.AsyncClient:
    app = Starlette(routes=heartbeat_routes(sessions, unknown=limiter))
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://spectra.test")


@pytest.fixture
def statements(engine: sa.Engine) -> Iterator[list[str]]:
    """Every SQL statement sent to the database while the test runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", record)


@sqlite_only
async def test_past_the_limit_unknown_tokens_are_refused_without_touching_the_database(
    sessions: sessionmaker[Session], statements: list[str]
) -> None:
    add_cron(sessions)
    limiter = SlidingWindowLimiter(3, 60)
    async with limited_client(sessions, limiter) as http:
        guesses = [await http.get(f"/api/v1/heartbeat/guess-{n}") for n in range(3)]
        looked_up = len(statements)
        refused = [await http.get(f"/api/v1/heartbeat/guess-{n}") for n in range(3, 8)]
        real_token = await http.post(f"/api/v1/heartbeat/{TOKEN}")  # the address is limited, whatever it sends
    assert [response.status_code for response in guesses] == [404] * 3
    assert [response.status_code for response in refused] == [429] * 5
    assert len(statements) == looked_up  # no query for any refused request
    assert refused[0].text == "too many unknown heartbeat tokens from this address\n"
    assert 1 <= int(refused[0].headers["retry-after"]) <= 60
    assert real_token.status_code == 429


@sqlite_only
async def test_known_tokens_are_not_counted(sessions: sessionmaker[Session]) -> None:
    add_cron(sessions)
    async with limited_client(sessions, SlidingWindowLimiter(2, 60)) as http:
        pushes = [await http.get(f"/api/v1/heartbeat/{TOKEN}") for _ in range(10)]
        guesses = [await http.get("/api/v1/heartbeat/guess") for _ in range(3)]
    assert [response.status_code for response in pushes] == [200] * 10
    assert [response.status_code for response in guesses] == [404, 404, 429]


@sqlite_only
@pytest.mark.parametrize(
    ("flooder", "other", "other_limited"),
    [
        ("198.51.100.7", "198.51.100.8", False),
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # the same /64: one subscriber
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
    ],
)
async def test_the_limit_is_per_client_address(
    sessions: sessionmaker[Session], flooder: str, other: str, other_limited: bool
) -> None:
    limiter = SlidingWindowLimiter(2, 60)
    async with limited_client(sessions, limiter, flooder) as http:
        flood = [(await http.get(f"/api/v1/heartbeat/guess-{n}")).status_code for n in range(4)]
    async with limited_client(sessions, limiter, other) as http:
        answer = (await http.get("/api/v1/heartbeat/guess")).status_code
    assert flood == [404, 404, 429, 429]
    assert answer == (429 if other_limited else 404)


def test_the_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNKNOWN_PER_MINUTE_ENV, raising=False)
    assert (unknown_token_limiter().limit, unknown_token_limiter().window_s) == (30, 60)
    monkeypatch.setenv(UNKNOWN_PER_MINUTE_ENV, "5")
    assert unknown_token_limiter().limit == 5
    monkeypatch.setenv(UNKNOWN_PER_MINUTE_ENV, "none")
    with pytest.raises(ValueError, match=UNKNOWN_PER_MINUTE_ENV):
        unknown_token_limiter()


@sqlite_only
async def test_a_flood_from_many_addresses_takes_few_threads(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status pages share the thread pool and the database connections: pushes take HEARTBEAT_LOOKUPS at most."""
    inside, most, lock, release = [0], [0], threading.Lock(), threading.Event()

    def held_push(session: Session, token: str, at: datetime) -> bool:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        release.wait(30)
        with lock:
            inside[0] -= 1
        return False

    monkeypatch.setattr(spectra.web.heartbeats, "record_push", held_push)
    app = Starlette(routes=heartbeat_routes(sessions, unknown=SlidingWindowLimiter(100, 60)))

    async def guess(n: int) -> int:
        transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{n}", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://spectra.test") as http:
            return (await http.get(f"/api/v1/heartbeat/guess-{n}")).status_code

    flood = [asyncio.create_task(guess(n)) for n in range(12)]
    await eventually(lambda: inside[0] == HEARTBEAT_LOOKUPS)
    await asyncio.sleep(0.5)  # room for more to enter if the bound did not hold (an ordering aid, not a budget)
    release.set()
    assert await asyncio.gather(*flood) == [404] * 12
    assert most[0] == HEARTBEAT_LOOKUPS


@sqlite_only
async def test_a_burst_of_concurrent_guesses_gets_no_more_lookups_than_the_limit(
    sessions: sessionmaker[Session], statements: list[str]
) -> None:
    app = Starlette(routes=heartbeat_routes(sessions, unknown=SlidingWindowLimiter(3, 60)))
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://spectra.test") as http:
        burst = await asyncio.gather(*(http.get(f"/api/v1/heartbeat/guess-{n}") for n in range(20)))
    assert sorted(response.status_code for response in burst) == [404] * 3 + [429] * 17
    assert sum("push_token_hash" in statement for statement in statements) == 3
