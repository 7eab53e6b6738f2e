"""The console's monitors area: the overview with 10,000 monitors, a monitor page over 90 days of rollups,
and one live update reaching 200 connected overviews.

The database is a fresh SQLite file (migrated with the store's own migrations): one Organization owning ten
namespaces, 10,000 http monitors (1,000 with `--quick`) with a state per location, and one of them with 90
days of hourly rollups (and the daily ones summed from them) in two locations and a week of raw checks, all
inserted directly; a member of the organization signed in by a real session (the cookies `/login` sets). The
app is the real one (`spectra.web.app.create_app` with the console's routes, as `spectra web` builds it) on
a real uvicorn server on 127.0.0.1 in this process, with its `MonitorHub` running beside it as `spectra web`
runs it.

- `overview_ms`: server time of `GET /console` (the first page of 200 rows, the counts of every monitor),
  measured inside the app from the request's arrival to the last byte of the answer; sequential requests.
- `monitor_page_ms`: the same for `GET /console/monitors/{ns}/{name}` of the monitor with 90 days of
  rollups (its uptime over 24 h to 90 days, the chart over the default 7 days); `chart_90_days` beside it
  is the same page with `?days=90` (the chart and its table over all 90 days), reported without a target.
- `sse_delivery_s`: 200 clients (20 with `--quick`) hold `GET /console/events`; one state change is
  committed to the store, and each client's delay is from the commit to its receipt of the `monitor`
  event; several changes, each at a random phase of the hub's poll; `p100` is the slowest client of all.

Targets (bench/README.md): overview p95 <= 150 ms, monitor page p95 <= 50 ms, every client within 1 s.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

TARGET_OVERVIEW_P95_MS = 150.0
TARGET_MONITOR_PAGE_P95_MS = 50.0
TARGET_SSE_MAX_S = 1.0
NAMESPACES = 10
LOCATIONS = ("eu", "us")
EMAIL = "bench@bench.example"

Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class ServerTimes:
    """ASGI middleware: the time from a request's arrival to its answer's last byte, per path kind."""

    def __init__(self, app: ASGI) -> None:
        self.app = app
        self.samples: dict[str, list[float]] = {}

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http" or scope["path"] == "/console/events":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                kind = "overview" if scope["path"] == "/console" else "monitor_page"
                if b"days=90" in scope.get("query_string", b""):
                    kind = "chart_90_days"
                self.samples.setdefault(kind, []).append((time.perf_counter() - started) * 1000)

        await self.app(scope, receive, timed_send)


def _summary(samples: list[float], digits: int = 1) -> dict[str, Any]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "samples": len(ordered),
        "p50": round(statistics.median(ordered), digits),
        "p95": round(p95, digits),
        "max": round(ordered[-1], digits),
    }


def seed(database_url: str, monitors: int) -> tuple[str, str]:
    """The database's rows; (the name of the monitor with history, the access cookie's value)."""
    from spectra.auth import sessions as auth_sessions
    from spectra.store import (
        HourlyRollup,
        Membership,
        Monitor,
        MonitorLocation,
        MonitorState,
        Resource,
        Role,
        User,
        UserStatus,
        insert_results,
        rollup_days,
        upgrade,
    )
    from spectra.store.engine import make_engine, session_factory
    from spectra.store.results import HISTOGRAM_COLUMNS

    engine = make_engine(database_url)
    upgrade(engine)
    now = datetime.now(UTC)
    namespaces = [f"team-{k}" for k in range(NAMESPACES)]
    with session_factory(engine).begin() as session:
        spec = {"displayName": "Bench", "namespaces": namespaces}
        session.add(
            Resource(kind="Organization", namespace="", name="bench", spec=spec, spec_hash="0" * 64, source="cluster")
        )
        conn = session.connection()
        resources, rows, locations, states = [], [], [], []
        for i in range(monitors):
            namespace, name = namespaces[i % NAMESPACES], f"svc-{i:05d}"
            url = f"https://{name}.example.com/health"
            resources.append({
                "id": i + 1, "kind": "Monitor", "namespace": namespace, "name": name, "generation": 1,
                "spec": {"type": "http", "http": {"url": url}, "locations": list(LOCATIONS)},
                "labels": {"tier": f"tier-{i % 3}"}, "spec_hash": "0" * 64, "source": "manifests",
                "created_at": now, "updated_at": now,
            })  # fmt: skip
            rows.append({
                "resource_id": i + 1, "namespace": namespace, "name": name, "type": "http", "target": url,
                "interval_ms": 60_000, "timeout_ms": 10_000, "paused": False, "quorum": 1, "failure_threshold": 1,
                "success_threshold": 1, "severity": "critical", "labels": {"tier": f"tier-{i % 3}"},
            })  # fmt: skip
            for location in LOCATIONS:
                locations.append({"monitor_id": i + 1, "location": location})
                state = "down" if i % 97 == 0 else "degraded" if i % 89 == 0 else "up"
                states.append({
                    "monitor_id": i + 1, "location": location, "state": state, "last_status": state,
                    "consecutive_failures": 0, "consecutive_successes": 1, "last_check_at": now,
                    "last_latency_ms": 40.0 + i % 50, "last_reason": "" if state == "up" else "HTTP 503",
                    "changed_at": now - timedelta(hours=1), "reported_at": now, "facts": None,
                    "state_stored_at": now - timedelta(hours=1),
                })  # fmt: skip
        conn.execute(sa.insert(Resource.__table__), resources)
        conn.execute(sa.insert(Monitor.__table__), rows)
        conn.execute(sa.insert(MonitorLocation.__table__), locations)
        conn.execute(sa.insert(MonitorState.__table__), states)
        hour = now.replace(minute=0, second=0, microsecond=0)
        # Each hour's latency histogram (cumulative): 20 checks in (25, 50] ms, 30 in (50, 100], 10 in (100, 250].
        histogram = dict(zip(HISTOGRAM_COLUMNS, (0, 0, 0, 20, 50, 60, 60, 60, 60, 60, 60, 60), strict=True))
        rollups = [
            {
                "monitor_id": 1, "location": location, "bucket_start": hour - timedelta(hours=h),
                "checks_total": 60, "checks_up": 59, "checks_degraded": 0, "checks_down": 1,
                "latency_count": 60, "latency_sum_ms": 60 * (50.0 + h % 24), "latency_max_ms": 200.0 + h % 17,
                **histogram,
            }
            for location in LOCATIONS
            for h in range(90 * 24)
        ]  # fmt: skip
        conn.execute(sa.insert(HourlyRollup.__table__), rollups)
        rollup_days(conn, hour - timedelta(days=90), hour + timedelta(hours=1))  # as the store's rollup does
        insert_results(conn, [
            {"monitor_id": 1, "location": location, "checked_at": now - timedelta(minutes=m), "status": "up",
             "latency_ms": 50.0, "reason": "HTTP 200"}
            for location in LOCATIONS for m in range(7 * 24 * 60)
        ])  # fmt: skip
        user = User(email=EMAIL, status=UserStatus.ACTIVE, platform_admin=False)
        user.memberships.append(Membership(organization="bench", role=Role.USER))
        session.add(user)
        session.flush()
        issued = auth_sessions.start(
            session, user, organization="bench", now=now, mfa_verified=True, ip="127.0.0.1", user_agent="bench"
        )
        from spectra.web.auth_routes import Granted

        access = Granted.of(issued).access_token
    engine.dispose()
    return f"{namespaces[0]}/svc-00000", access


async def _measure(mode: str) -> dict[str, Any]:
    from spectra.console.monitors.hub import MonitorHub
    from spectra.console.monitors.service import PAGE_ROWS
    from spectra.console.routes import console_routes
    from spectra.runtime.collector import freeze_once_ready
    from spectra.runtime.lifecycle import web_server
    from spectra.runtime.metrics import Metrics
    from spectra.runtime.readiness import Readiness
    from spectra.store.engine import make_engine, session_factory
    from spectra.web.app import AppParts, create_app
    from spectra.web.credentials import cookie_names

    quick = mode == "quick"
    monitors = 1_000 if quick else 10_000
    clients = 20 if quick else 200
    requests = 10 if quick else 60
    changes = 2 if quick else 5
    with tempfile.TemporaryDirectory(prefix="spectra-bench-console-") as folder:
        database_url = f"sqlite:///{Path(folder) / 'console.db'}"
        history, access = await asyncio.to_thread(seed, database_url, monitors)
        engine = make_engine(database_url)
        sessions = session_factory(engine)
        hub = MonitorHub(sessions)
        parts = AppParts(
            sessions,
            Metrics(),
            Readiness(),
            loopback_only=False,
            routes=console_routes(sessions, hub=hub),
            sign_in=True,
        )
        timed = ServerTimes(create_app(parts))
        port = _free_port()
        server = web_server(timed, "127.0.0.1", port)  # type: ignore[arg-type]
        serving = asyncio.create_task(server.serve())
        runner = asyncio.create_task(hub.run())
        base = f"http://127.0.0.1:{port}"
        cookies = {"Cookie": f"{cookie_names().access}={access}"}
        # As serve_app does in spectra run and spectra web: what is loaded at start is frozen out of the
        # collector's passes once the process is ready (spectra.runtime.collector).
        collector = asyncio.create_task(freeze_once_ready(lambda: None if hub.ready else "loading", settle_s=0))
        try:
            await _until(lambda: bool(server.started and hub.ready and gc.get_freeze_count()))
            await _pages(base, cookies, timed, history, requests)
            overview = _summary(timed.samples["overview"])
            page = _summary(timed.samples["monitor_page"])
            page["chart_90_days"] = _summary(timed.samples["chart_90_days"])
            delivery = await _sse(base, cookies, sessions, clients=clients, changes=changes)
        finally:
            runner.cancel()
            collector.cancel()
            await asyncio.gather(runner, collector, return_exceptions=True)
            gc.unfreeze()
            server.should_exit = True
            await asyncio.wait_for(serving, 30)
            engine.dispose()
    overview.update(target=f"<= {TARGET_OVERVIEW_P95_MS:g}", monitors=monitors, rows_per_page=PAGE_ROWS)
    page.update(target=f"<= {TARGET_MONITOR_PAGE_P95_MS:g}", rollup_days=90, locations=len(LOCATIONS))
    delivery.update(target=f"<= {TARGET_SSE_MAX_S:g}", clients=clients, poll_interval_s=hub.interval_s)
    met = (
        overview["p95"] <= TARGET_OVERVIEW_P95_MS
        and page["p95"] <= TARGET_MONITOR_PAGE_P95_MS
        and delivery["received_by_all"]
        and delivery["p100"] <= TARGET_SSE_MAX_S
    )
    return {
        "database": "SQLite (a fresh file), the real app on uvicorn in the harness process",
        "overview_ms": overview,
        "monitor_page_ms": page,
        "sse_delivery_s": delivery,
        "met": met,
    }


async def _until(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


async def _pages(base: str, cookies: dict[str, str], timed: ServerTimes, history: str, requests: int) -> None:
    """Sequential GETs of the overview and the monitor page (after a checked warm-up of each)."""
    async with httpx.AsyncClient(base_url=base, headers=cookies, timeout=60) as client:
        paths = ("/console", f"/console/monitors/{history}", f"/console/monitors/{history}?days=90")
        for path in paths:
            answer = await client.get(path)
            if answer.status_code != 200:
                raise RuntimeError(f"GET {path} answered {answer.status_code}")
        timed.samples.clear()
        for _ in range(requests):
            for path in paths:
                await client.get(path)


async def _sse(base: str, cookies: dict[str, str], sessions: Any, *, clients: int, changes: int) -> dict[str, Any]:
    """`clients` streams; `changes` state changes, each timed from its commit to every client's receipt."""
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    received: list[list[float]] = [[] for _ in range(clients)]
    connected = 0

    async def listen(index: int, client: httpx.AsyncClient) -> None:
        nonlocal connected
        async with client.stream("GET", "/console/events") as stream:
            if stream.status_code != 200:
                raise RuntimeError(f"/console/events answered {stream.status_code}")
            connected += 1
            async for line in stream.aiter_lines():
                if line == "event: monitor":
                    received[index].append(time.perf_counter())

    from spectra.store import MonitorState as state_model

    def change(state: str) -> float:
        with sessions.begin() as session:
            now = datetime.now(UTC)  # as the probe's writer stores a change: checked, stored and changed now
            session.execute(
                sa.update(state_model)
                .where(state_model.monitor_id == 1, state_model.location == "eu")
                .values(state=state, changed_at=now, reported_at=now, state_stored_at=now)
            )
        return time.perf_counter()

    delays: list[float] = []
    async with httpx.AsyncClient(
        base_url=base, headers=cookies, timeout=httpx.Timeout(30.0, read=60.0), limits=limits
    ) as client:
        tasks = [asyncio.create_task(listen(i, client)) for i in range(clients)]
        try:
            async with asyncio.timeout(60):
                while connected < clients:
                    await asyncio.sleep(0.05)
            for k in range(changes):
                await asyncio.sleep(1.0 + random.random())  # noqa: S311 - a random phase of the hub's poll
                committed = await asyncio.to_thread(change, "down" if k % 2 == 0 else "up")
                async with asyncio.timeout(10):
                    while any(len(times) <= k for times in received):
                        await asyncio.sleep(0.01)
                delays.extend(times[k] - committed for times in received)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "changes": changes,
        "received_by_all": all(len(times) == changes for times in received),
        "p50": round(statistics.median(delays), 3),
        "p100": round(max(delays), 3),
    }


def _free_port() -> int:
    from bench.statuspage import _free_port as free

    return free()


async def console_times(mode: str) -> dict[str, Any]:
    return await _measure(mode)
