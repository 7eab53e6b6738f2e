"""The incident pages under `/console/incidents`: the list with its filters and counts, and one incident
with its whole timeline and the actions (acknowledge first: one tap on a phone, `a` on a keyboard).

Thin: each handler asks `service` (the policy, the state machine, the audit log) in a worker thread and
draws a template. An action is a POST answered by a 303 back to the incident (`?done=...`); a refusal
(acting twice, an empty note, an unknown contact) draws the incident again with the sentence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from spectra.api.errors import problems_from
from spectra.runtime.clients import client_key

from ..forms import field
from ..viewer import Viewer
from .api import NOT_AN_ID
from .models import IncidentQuery
from .service import ACTIONS, STATES, Filters, IncidentService, Refused

if TYPE_CHECKING:
    from ..routes import Console

KEY: Final = "i"  # the navigation section (rendering.SECTIONS)
BASE: Final = "/console/incidents"
FILTERS: Final = ("state", "namespace", "monitor", "since")
DONE: Final = {
    "acknowledge": "Acknowledged: the escalation has stopped and everyone paged is told.",
    "resolve": "Resolved: everyone paged is told.",
    "note": "Note added to the timeline.",
    "escalate": "Escalated: the next step of the policy pages now.",
    "reassign": "Reassigned: the contact is paged now.",
}


def _incident_id(request: Request) -> int:
    text = str(request.path_params["incident_id"])
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise Refused(404, NOT_AN_ID)
    return int(text)


class IncidentPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.service = IncidentService(console.factory, console.clock)

    async def index(self, request: Request, viewer: Viewer) -> Response:
        asked = {name: request.query_params.get(name, "").strip() for name in FILTERS}
        values = {name: value for name, value in asked.items() if value}
        cursor = request.query_params.get("cursor") or None
        try:
            query = IncidentQuery.model_validate({**values, "cursor": cursor})
            filters = Filters(query.state, query.namespace, query.monitor, None, query.since)
            page = await run_in_threadpool(self.service.list, viewer.principal, filters, cursor=cursor)
        except ValidationError as invalid:
            sentence = "; ".join(str(found) for found in problems_from(invalid))
            return await self._list(viewer, asked, None, status=400, error=sentence)
        except Refused as refused:
            return await self._list(viewer, asked, None, status=refused.status, error=refused.sentence)
        return await self._list(viewer, asked, page)

    async def _list(
        self, viewer: Viewer, asked: dict[str, str], page: object, *, status: int = 200, error: str = ""
    ) -> Response:
        return await self.console.pages.render(
            viewer, "incidents/list.html", current=KEY, status=status, error=error, page=page, asked=asked,
            states=STATES,
        )  # fmt: skip

    async def show(self, request: Request, viewer: Viewer) -> Response:
        try:
            incident_id = _incident_id(request)
        except Refused as refused:
            return await self.console.problem(viewer, KEY, refused.status, refused.sentence)
        done = DONE.get(request.query_params.get("done", ""), "")
        return await self._detail(viewer, incident_id, done=done)

    async def _detail(
        self, viewer: Viewer, incident_id: int, *, status: int = 200, error: str = "", done: str = ""
    ) -> Response:
        detail = await run_in_threadpool(self.service.detail, viewer.principal, incident_id)
        return await self.console.pages.render(
            viewer, "incidents/detail.html", current=KEY, status=status, error=error, done=done, detail=detail,
            item=detail.incident,
        )  # fmt: skip

    def action(self, action: str) -> Callable[[Request, Viewer], Awaitable[Response]]:
        async def act(request: Request, viewer: Viewer) -> Response:
            try:
                incident_id = _incident_id(request)
            except Refused as refused:
                return await self.console.problem(viewer, KEY, refused.status, refused.sentence)
            text, contact = field(request, "text"), field(request, "contact")
            try:
                await run_in_threadpool(
                    lambda: self.service.act(
                        viewer.principal, incident_id, action, ip=client_key(request), channel="console",
                        text=text, contact=contact,
                    )
                )  # fmt: skip
            except Refused as refused:
                return await self._detail(viewer, incident_id, status=refused.status, error=refused.sentence)
            return RedirectResponse(f"{BASE}/{incident_id}?done={action}", 303)

        return act


def incident_routes(console: Console) -> list[BaseRoute]:
    """The pages, relative to the console's Mount (`/console`)."""
    pages = IncidentPages(console)
    routes: list[BaseRoute] = [
        Route("/incidents", console.page(pages.index, current=KEY), methods=["GET"]),
        Route("/incidents/{incident_id}", console.page(pages.show, current=KEY), methods=["GET"]),
    ]
    for action in ACTIONS:
        endpoint = console.page(pages.action(action), current=KEY)
        routes.append(Route(f"/incidents/{{incident_id}}/{action}", endpoint, methods=["POST"]))
    return routes
