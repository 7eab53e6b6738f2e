"""The overview (`/console`), a monitor's page (`/console/monitors/{namespace}/{name}`) and the live
updates of the overview (`/console/events`, Server-Sent Events).

The overview works without script: its filters are a GET form, its pages links. With script, htmx's SSE
extension connects to `/console/events` and swaps each message's fragments in by id (`hx-swap-oob`):
the rows of monitors whose state changed and the counts per state. The stream takes the console's
cookies, checks that the session is still live every `recheck_s` seconds and ends when it is not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from spectra.auth import policy, sessions
from spectra.runtime.headers import SECURITY_HEADERS
from spectra.web.auth_routes import Refusal

from ..rendering import _TEMPLATES
from ..viewer import Renew, Viewer
from . import service
from .chart import cached_latency_svg
from .hub import MonitorHub
from .service import MonitorLine

if TYPE_CHECKING:
    from ..routes import Console

KEY: Final = "o"
DAY_CHOICES: Final = (1, 7, 30, 90)
TABLE_HOURS_UP_TO_DAYS: Final = 2  # the chart's table: per hour up to this many days, per day beyond
KEEPALIVE_S: Final = 15.0
RECHECK_S: Final = 30.0
EVENT_HEADERS: Final = {**SECURITY_HEADERS, "Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _text(params: Mapping[str, str], name: str, limit: int = 200) -> str:
    return params.get(name, "").strip()[:limit]


def filters_of(request: Request) -> service.Filters:
    params = request.query_params
    try:
        page = int(params.get("page", "1"))
    except ValueError:
        page = 1
    state = _text(params, "state")
    return service.Filters(
        state=state if state in service.STATES else "",
        type=_text(params, "type", 16),
        namespace=_text(params, "namespace", 63),
        label=_text(params, "label"),
        q=_text(params, "q"),
        group=_text(params, "group", 100),
        page=page,
    )


def sse_message(lines: Sequence[MonitorLine], counts: Mapping[str, int]) -> str:
    """One Server-Sent Event `monitor`: the changed rows and the counts, each swapped in by id."""
    html = _TEMPLATES.get_template("monitors/live.html").render(lines=lines, counts=counts, states=service.STATES)
    data = "".join(f"data: {line}\n" for line in html.splitlines() if line.strip())
    return f"event: monitor\n{data}\n"


class MonitorViews:
    def __init__(self, console: Console, hub: MonitorHub, *, recheck_s: float = RECHECK_S) -> None:
        self.console = console
        self.hub = hub
        self.recheck_s = recheck_s
        hub.render = sse_message

    async def overview(self, request: Request, viewer: Viewer) -> Response:
        filters = filters_of(request)

        def read() -> service.Overview:
            with self.console.factory() as session:
                return service.overview(session, viewer.principal, filters, snapshot=self.hub.snapshot)

        try:
            found: service.Overview | None = await run_in_threadpool(read)
        except policy.Denied:
            found = None  # e.g. a platform admin outside any organization: the page says so
        return await self.console.pages.render(
            viewer, "monitors/overview.html", current=KEY, overview=found, f=filters, states=service.STATES
        )

    async def monitor(self, request: Request, viewer: Viewer) -> Response:
        namespace, name = str(request.path_params["namespace"]), str(request.path_params["name"])
        try:
            days = int(request.query_params.get("days", "7"))
        except ValueError:
            days = 7
        days = days if days in DAY_CHOICES else 7

        def read() -> service.Detail:
            with self.console.factory() as session:
                return service.detail(session, viewer.principal, namespace, name, days=days)

        found = await run_in_threadpool(read)
        end = service.hour_floor(self.console.clock()) + service.HOUR
        newest = max((p.hour for s in found.latency for p in s.points), default=None)
        if newest is not None and newest + service.HOUR > end:
            end = newest + service.HOUR
        chart = cached_latency_svg(
            tuple(found.latency),
            start=end - timedelta(days=days),
            end=end,
            title=f"Response time of {namespace}/{name}, last {days} day{'s' if days > 1 else ''}",
        )
        hourly_table = days <= TABLE_HOURS_UP_TO_DAYS
        table = found.latency if hourly_table else service.per_day(found.latency)
        return await self.console.pages.render(
            viewer, "monitors/monitor.html", current=KEY, m=found, chart=chart, days=days, day_choices=DAY_CHOICES,
            table=table, hourly_table=hourly_table,
        )  # fmt: skip

    async def events(self, request: Request) -> Response:
        """GET /console/events: the overview's live updates for the signed-in viewer."""
        try:
            viewer = await self.console.auth.viewer(request)
        except (Renew, Refusal):
            return PlainTextResponse("Sign in first.", 401, headers=EVENT_HEADERS)

        def visible() -> policy.Namespaces:
            with self.console.factory() as session:
                return service.visible(session, viewer.principal)

        try:
            namespaces = await run_in_threadpool(visible)
        except policy.Denied as refused:
            return PlainTextResponse(str(refused), refused.status, headers=EVENT_HEADERS)
        subscriber = self.hub.subscribe(namespaces)
        sid = viewer.principal.session_id

        def live() -> bool:
            if sid is None:
                return False
            with self.console.factory() as session:
                return sessions.is_active(session, sid, now=self.console.clock())

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 5000\n: connected\n\n"
                checked = time.monotonic()
                while True:
                    wait = max(0.1, min(KEEPALIVE_S, self.recheck_s - (time.monotonic() - checked)))
                    try:
                        message = await asyncio.wait_for(subscriber.queue.get(), timeout=wait)
                    except TimeoutError:
                        message = ": keepalive\n\n"
                    if message is None or subscriber.dropped:
                        return
                    yield message
                    if time.monotonic() - checked >= self.recheck_s:
                        if not await run_in_threadpool(live):
                            yield "event: ended\ndata: the session ended\n\n"
                            return
                        checked = time.monotonic()
            finally:
                self.hub.unsubscribe(subscriber)

        return StreamingResponse(stream(), media_type="text/event-stream", headers=EVENT_HEADERS)

    def routes(self) -> list[BaseRoute]:
        """The area's routes under the /console Mount (the overview itself is the Mount's `/`)."""
        return [
            Route("/events", self.events, methods=["GET"]),
            Route("/monitors/{namespace}/{name}", self.console.page(self.monitor, current=KEY), methods=["GET"]),
        ]
