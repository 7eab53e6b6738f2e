"""The overview and monitor pages, and the overview's live updates through the real app on a real
uvicorn server on 127.0.0.1 (Server-Sent Events need a streaming connection); on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import httpx
from anyio.from_thread import BlockingPortal
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.routing import Route

from spectra.auth import sessions as auth_sessions
from spectra.console.monitors.hub import MonitorHub
from spectra.console.monitors.views import MonitorViews
from spectra.console.routes import Console, console_routes
from spectra.runtime.lifecycle import web_server
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import Readiness
from spectra.store import MonitorState, utcnow
from spectra.web.app import AppParts, create_app
from tests.console.monitors.conftest import GUS, ROOT, UMA, World
from tests.factories.console_monitors import (
    HEADER_SECRET,
    HOUR,
    PUSH_SECRET_VALUE,
    hourly,
    incident,
    latency_histogram,
    set_state,
)
from tests.support.console import Browser, ConsoleSite
from tests.support.processes import free_port

WAIT_S = 15.0


def test_the_overview_lists_groups_counts_and_filters(site: ConsoleSite, world: World) -> None:
    with world.sessions.begin() as session:
        incident(session, world.ids["acme/api"], "acme", "api", code="K7Q2", opened_at=utcnow())
    page = site.browser(UMA).get("/console")
    assert page.status_code == 200
    text = page.text
    assert text.count("<h1>") == 1
    assert text.index("Open incidents") < text.index('id="count-down"')
    assert re.search(r'<a href="/console/incidents/\d+">api is down</a>', text)
    assert '<strong id="count-down">1</strong>' in text
    assert '<strong id="count-up">2</strong>' in text
    assert 'sse-connect="/console/events"' in text
    assert 'hx-ext="sse"' in text
    assert re.findall(r"<h2>([^<]+)</h2>", text)[:2] == ["acme", "acme-ops"]
    assert 'href="/console/monitors/acme/api"' in text
    assert "portal" not in text
    filtered = site.browser(UMA).get("/console?state=up&q=db").text
    assert 'href="/console/monitors/acme-ops/db"' in filtered
    assert 'href="/console/monitors/acme/shop"' not in filtered
    grouped = site.browser(UMA).get("/console?group=team").text
    assert "acme-ops · team: (none)" in grouped
    for control in ("f-q", "f-state", "f-type", "f-namespace", "f-label", "f-group"):
        assert f'<label for="{control}">' in text


def test_a_platform_admin_outside_any_organization_sees_an_empty_overview(site: ConsoleSite) -> None:
    page = site.browser(ROOT, organization=None).get("/console")
    assert page.status_code == 200
    assert "this session acts in none" in page.text


def test_the_monitor_page(site: ConsoleSite, world: World) -> None:
    end = utcnow().replace(minute=0, second=0, microsecond=0) + HOUR
    with world.sessions.begin() as session:
        hourly(session, world.ids["acme/api"], "eu", start=end - 24 * HOUR, hours=23, mean_ms=80, down=12)
        spread = latency_histogram({100: 120})  # 120 checks in (50, 100] ms: p50 75, p95 97.5
        hourly(session, world.ids["acme/api"], "eu", start=end - HOUR, hours=1, mean_ms=80, down=12, histogram=spread)
        incident(session, world.ids["acme/api"], "acme", "api", code="H1", state="resolved", opened_at=end - 30 * HOUR)
    page = site.browser(UMA).get("/console/monitors/acme/api?days=1")
    assert page.status_code == 200
    text = page.text
    assert text.count("<h1>") == 1
    assert '<span class="state state-down">down</span>' in text
    assert "<dt>24h</dt><dd>90.00%</dd>" in text
    svg = re.search(r"<svg .*?</svg>", text, re.S)
    assert svg is not None
    ET.fromstring(svg.group(0))
    assert "<title" in svg.group(0)
    assert "<script" not in text.split("</head>")[1]
    assert "The chart&#39;s numbers as a table" in text or "The chart's numbers as a table" in text
    assert '<th scope="col">p50 ms</th><th scope="col">p95 ms</th><th scope="col">Max ms</th>' in text
    rows = re.findall(
        r"<tr><td[^>]*><time[^>]*>[^<]*</time></td><td[^>]*>eu</td>(.*?)</tr>", re.sub(r' data-label="[^"]*"', "", text)
    )
    assert len(rows) == 24
    # hours rolled up before the histograms: percentiles unknown, said so; the last hour has them
    assert rows[0] == "<td>unknown</td><td>unknown</td><td>160.0</td><td>80.0</td><td>120</td>"
    assert rows[-1] == "<td>75.0</td><td>97.5</td><td>160.0</td><td>80.0</td><td>120</td>"
    assert 'class="series series-0 p95"' in svg.group(0)
    assert re.search(r'<a href="/console/incidents/\d+">api is down</a>', text)
    assert "secretKeyRef" in text
    assert HEADER_SECRET not in text
    assert "From the manifest files spectra run loads" in text
    cron = site.browser(UMA).get("/console/monitors/acme-ops/cron").text
    assert "tokenFrom" in cron
    assert PUSH_SECRET_VALUE not in cron


def test_another_tenants_monitor_page_is_404(site: ConsoleSite, world: World) -> None:
    with world.sessions() as session:
        before = session.scalar(select(func.count()).select_from(MonitorState))
    page = site.browser(GUS).get("/console/monitors/acme/api")
    assert page.status_code == 404
    assert "There is nothing here, or it is not yours to see." in page.text
    assert "api.example" not in page.text
    assert site.browser(UMA).get("/console/monitors/acme/nothing").status_code == 404
    with world.sessions() as session:
        assert session.scalar(select(func.count()).select_from(MonitorState)) == before


def test_nobody_is_sent_to_sign_in(site: ConsoleSite) -> None:
    answer = site.anonymous().get("/console/monitors/acme/api")
    assert (answer.status_code, answer.headers["location"]) == (303, "/login?next=/console/monitors/acme/api")
    events = site.anonymous().get("/console/events")
    assert (events.status_code, events.text) == (401, "Sign in first.")


# --- live updates through a real server ------------------------------------------------------------


def cookie_header(browser: Browser) -> str:
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in browser.http.client.cookies.jar)


async def serving(app: Starlette, body: Callable[[str], Awaitable[None]]) -> None:
    port = free_port()
    server = web_server(app, "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    try:
        await wait_until_async(lambda: server.started)
        await body(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)


async def wait_until_async(done: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not done():
            await asyncio.sleep(0.02)


async def events_of(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """(event, data) of each message of a Server-Sent Events stream."""
    event, data = "message", list[str]()
    async for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", list[str]()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def test_a_state_change_reaches_a_connected_overview(site: ConsoleSite, world: World, portal: BlockingPortal) -> None:
    hub = MonitorHub(world.sessions)
    parts = AppParts(
        world.sessions, Metrics(), Readiness(), routes=console_routes(world.sessions, clock=site.clock, hub=hub)
    )
    app = create_app(parts)
    cookies = cookie_header(site.browser(UMA))
    shop, portal_id = world.ids["acme/shop"], world.ids["globex/portal"]

    async def body(base: str) -> None:
        runner = asyncio.create_task(hub.run())  # as `spectra run` and `spectra web` run it
        try:
            await wait_until_async(lambda: hub.ready)
            client = httpx.AsyncClient(base_url=base, headers={"Cookie": cookies}, timeout=WAIT_S)
            async with client, client.stream("GET", "/console/events") as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
                later = utcnow() + timedelta(seconds=5)
                await asyncio.to_thread(write, world, portal_id, "up", later)  # another tenant's: never sent
                await asyncio.to_thread(write, world, shop, "down", later)
                data = ""
                async with asyncio.timeout(WAIT_S):
                    async for event, message in events_of(stream.aiter_lines()):
                        if event == "monitor":
                            data = message
                            break
                assert f'<tr id="monitor-{shop}" data-state="down" hx-swap-oob="true">' in data
                assert '<span class="state state-down">down</span>' in data
                assert '<strong id="count-down" hx-swap-oob="true">2</strong>' in data
                assert "portal" not in data
                assert f"monitor-{portal_id}" not in data
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    portal.call(serving, app, body)


def test_the_stream_ends_when_the_session_ends(site: ConsoleSite, world: World, portal: BlockingPortal) -> None:
    console = Console.of(world.sessions, clock=site.clock)
    hub = MonitorHub(world.sessions)
    views = MonitorViews(console, hub, recheck_s=0.2)
    app = Starlette(routes=[Route("/console/events", views.events)])
    browser = site.browser(UMA)
    assert browser.granted is not None
    sid = browser.granted.sid

    async def body(base: str) -> None:
        async with (
            httpx.AsyncClient(base_url=base, headers={"Cookie": cookie_header(browser)}, timeout=WAIT_S) as client,
            client.stream("GET", "/console/events") as stream,
        ):
            assert stream.status_code == 200
            await asyncio.to_thread(end_session, world, sid, site)
            seen: list[str] = []
            async with asyncio.timeout(WAIT_S):
                async for event, _data in events_of(stream.aiter_lines()):
                    seen.append(event)
            assert seen[-1] == "ended"
        await hub.stop()

    portal.call(serving, app, body)
    assert hub.subscribers == set()


def write(world: World, monitor_id: int, state: str, at: object) -> None:
    with world.sessions.begin() as session:
        set_state(session, monitor_id, "eu", state, at=at)  # type: ignore[arg-type]


def end_session(world: World, sid: str, site: ConsoleSite) -> None:
    with world.sessions.begin() as session:
        auth_sessions.revoke(session, sid, reason="test", now=site.clock())
