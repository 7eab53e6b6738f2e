"""The console's on-call pages under `/console/oncall`.

- `/console/oncall`: every schedule the viewer may see with who is on call now and the next handoff, the
  viewer's own shifts of the next 14 days, and the viewer's calendar feed URL (with a button that
  rotates it, revoking the old one).
- `/console/oncall/{namespace}/{name}`: the next 14 days as a timeline (an SVG bar and the table of
  shifts), the overrides taken here with their cancel buttons, and the form to take the shift now until a
  time.
- `/console/oncall/calendar/{token}.ics`: the calendar feed itself, for calendar apps (no cookie: the
  signed token in the URL is the proof; anything wrong with it is 404).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import quote

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from spectra.auth import policy
from spectra.auth.identity import Actor
from spectra.runtime.clients import client_key
from spectra.runtime.headers import SECURITY_HEADERS
from spectra.store.engine import retry_conflicts

from ..forms import fields
from ..viewer import Viewer
from . import service
from .calendar import ics

if TYPE_CHECKING:
    from ..routes import Console

T = TypeVar("T")

KEY: Final = "c"
DONE: Final = {
    "taken": "Override taken: you are on call until it ends.",
    "cancelled": "Override cancelled.",
    "rotated": "A new calendar URL: the old one no longer works.",
}
SVG_WIDTH: Final = 1000


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


def _schedule_path(namespace: str, name: str) -> str:
    return f"/console/oncall/{quote(namespace, safe='')}/{quote(name, safe='')}"


def _bars(found: service.Timeline) -> list[dict[str, object]]:
    """The SVG rectangles of the timeline: x and width in a 1000-wide box."""
    span = (found.end - found.start).total_seconds()
    bars: list[dict[str, object]] = []
    for shift in found.shifts:
        x = (shift.start - found.start).total_seconds() / span * SVG_WIDTH
        width = (shift.end - shift.start).total_seconds() / span * SVG_WIDTH
        kind = "nobody" if shift.contact is None else ("override" if shift.override else "layer")
        bars.append({"x": round(x, 2), "width": round(width, 2), "kind": kind, "mine": shift.mine, "shift": shift})
    return bars


class OncallPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def index(self, request: Request, viewer: Viewer) -> Response:
        principal = viewer.principal
        tokens = self.console.tokens

        def work(session: Session, now: datetime) -> tuple[list[service.ScheduleNow], list[service.MyShift], str]:
            schedules = service.schedules_now(session, principal, now=now)
            mine = service.my_shifts(session, principal, start=now)
            return schedules, mine, service.feed_token(session, tokens, principal)

        schedules, mine, token = await run_in_threadpool(self._within, work)
        calendar = f"{str(request.base_url).rstrip('/')}/console/oncall/calendar/{token}.ics"
        return await self.console.pages.render(
            viewer, "oncall/index.html", current=KEY, schedules=schedules, mine=mine, calendar=calendar,
            done=_done(request), schedule_path=_schedule_path,
        )  # fmt: skip

    def _within(self, work: Callable[[Session, datetime], T]) -> T:
        with self.console.factory() as session:
            return work(session, self.console.clock())

    async def _schedule_page(
        self, viewer: Viewer, namespace: str, name: str, *, status: int = 200, error: str | None = None,
        done: str | None = None, form: dict[str, str] | None = None,
    ) -> Response:  # fmt: skip
        principal = viewer.principal

        def work(session: Session, now: datetime) -> service.Timeline:
            return service.schedule_timeline(session, principal, namespace, name, start=now)

        found: service.Timeline = await run_in_threadpool(self._within, work)
        may_take = policy.allowed(principal, policy.Action.ONCALL_OVERRIDE, organization=principal.organization)
        return await self.console.pages.render(
            viewer, "oncall/schedule.html", current=KEY, status=status, error=error, done=done, timeline=found,
            bars=_bars(found), width=SVG_WIDTH, may_take=may_take, form=form or {},
            path=_schedule_path(namespace, name),
        )  # fmt: skip

    async def schedule(self, request: Request, viewer: Viewer) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        return await self._schedule_page(viewer, namespace, name, done=_done(request))

    async def take(self, request: Request, viewer: Viewer) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        form = fields(request)
        principal = viewer.principal
        actor = Actor.of(principal, ip=client_key(request))

        def attempt() -> None:
            now = self.console.clock()
            with self.console.factory.begin() as session:
                service.take_override(
                    session, principal, namespace, name, until=form.get("until", ""), contact=form.get("contact"),
                    reason=form.get("reason"), actor=actor, now=now,
                )  # fmt: skip

        try:
            await run_in_threadpool(retry_conflicts, attempt)
        except service.OncallRefused as refused:
            return await self._schedule_page(viewer, namespace, name, status=400, error=str(refused), form=form)
        return RedirectResponse(f"{_schedule_path(namespace, name)}?done=taken", 303)

    async def cancel(self, request: Request, viewer: Viewer) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        try:
            override_id = int(request.path_params["override_id"])
        except ValueError:
            raise policy.NotFound() from None
        principal = viewer.principal
        actor = Actor.of(principal, ip=client_key(request))

        def attempt() -> None:
            now = self.console.clock()
            with self.console.factory.begin() as session:
                service.cancel_override(session, principal, namespace, name, override_id, actor=actor, now=now)

        await run_in_threadpool(retry_conflicts, attempt)
        return RedirectResponse(f"{_schedule_path(namespace, name)}?done=cancelled", 303)

    async def rotate(self, request: Request, viewer: Viewer) -> Response:
        principal = viewer.principal
        actor = Actor.of(principal, ip=client_key(request))

        def attempt() -> None:
            now = self.console.clock()
            with self.console.factory.begin() as session:
                service.rotate_feed(session, principal, actor=actor, now=now)

        await run_in_threadpool(retry_conflicts, attempt)
        return RedirectResponse("/console/oncall?done=rotated", 303)

    async def calendar(self, request: Request) -> Response:
        token = request.path_params["token"]
        tokens = self.console.tokens

        def work(session: Session, now: datetime) -> tuple[service.FeedOwner, datetime] | None:
            try:
                return service.feed_shifts(session, tokens, token, now=now), now
            except service.FeedNotFound:
                return None

        found = await run_in_threadpool(self._within, work)
        headers = {**SECURITY_HEADERS, "Cache-Control": "private, no-store"}
        if found is None:
            return PlainTextResponse("Not found.", 404, headers=headers)
        owner, now = found
        body = ics(owner, now=now, host=request.url.hostname or "spectra")
        return Response(body, 200, media_type="text/calendar; charset=utf-8", headers=headers)


def oncall_routes(console: Console) -> list[BaseRoute]:
    """The pages, relative to the /console Mount."""
    pages = OncallPages(console)
    return [
        Route("/oncall", console.page(pages.index, current=KEY), methods=["GET"]),
        Route("/oncall/calendar/{token}.ics", pages.calendar, methods=["GET"]),
        Route("/oncall/calendar/rotate", console.page(pages.rotate, current=KEY), methods=["POST"]),
        Route("/oncall/{namespace}/{name}", console.page(pages.schedule, current=KEY), methods=["GET"]),
        Route(
            "/oncall/{namespace}/{name}/overrides",
            console.page(pages.take, current=KEY),
            methods=["POST"],
        ),
        Route(
            "/oncall/{namespace}/{name}/overrides/{override_id}/cancel",
            console.page(pages.cancel, current=KEY),
            methods=["POST"],
        ),
    ]
