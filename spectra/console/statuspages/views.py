"""The console's status pages, under `/console/status-pages`.

- `/console/status-pages`: the organization's pages with their components' states and a link to each
  public page.
- `/console/status-pages/{namespace}/{name}`: post an incident (title, affected components and their
  impact, status, markdown message, subscribers told or not), preview the message (a POST that changes
  nothing), post updates, resolve, write the post-mortem of a resolved incident; start ad-hoc maintenance
  of components until a time, end it early.

Every POST that changes something redirects back to the page (303) with what was done; a refused form
shows the page again with the sentence (400) and what was typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from spectra.auth import policy
from spectra.auth.identity import Actor
from spectra.runtime.clients import client_key
from spectra.statuspage.incidents import COMPONENT_IMPACTS
from spectra.store.engine import retry_conflicts

from ..forms import fields
from ..viewer import Viewer
from . import service
from .service import Acting, NewIncident, NewMaintenance, Publisher, Refused

if TYPE_CHECKING:  # no import cycle at run time
    from ..routes import Console

T = TypeVar("T")

KEY: Final = "s"
IMPACT_FIELD: Final = "impact:"  # the form's field of each component's impact: "impact:<component>"
DONE: Final = {
    "opened": "The incident is posted.",
    "updated": "The update is posted.",
    "resolved": "The incident is resolved.",
    "postmortem": "The post-mortem is saved.",
    "maintenance": "The maintenance has started.",
    "ended": "The maintenance has ended.",
}
IMPACT_LABELS: Final = {"degraded": "Degraded", "partial_outage": "Partial outage", "major_outage": "Major outage"}
STATUS_LABELS: Final = {"investigating": "Investigating", "identified": "Identified", "monitoring": "Monitoring"}


def _flag(form: dict[str, str], name: str) -> bool:
    return form.get(name, "") in ("on", "yes", "true", "1")


class StatusPageViews:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.publisher = Publisher(console.tokens)

    async def _run(self, work: Callable[[Session, datetime], T], *, write: bool = False) -> T:
        console = self.console

        def attempt() -> T:
            now = console.clock()
            if not write:
                with console.factory() as session:
                    return work(session, now)
            with console.factory.begin() as session:
                return work(session, now)

        return await run_in_threadpool(retry_conflicts, attempt)

    # --- pages ---------------------------------------------------------------------------------------------

    async def index(self, request: Request, viewer: Viewer) -> Response:
        principal = viewer.principal
        pages = await self._run(lambda s, now: service.visible_pages(s, principal, now))
        return await self.console.pages.render(viewer, "statuspages/index.html", current=KEY, pages=pages)

    async def detail(
        self, request: Request, viewer: Viewer, *, status: int = 200, error: str = "", **context: Any
    ) -> Response:
        principal = viewer.principal
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        found = await self._run(lambda s, now: service.page_detail(s, principal, namespace, name, now))
        done = DONE.get(request.query_params.get("done", ""), "")
        return await self.console.pages.render(
            viewer,
            "statuspages/page.html",
            current=KEY,
            status=status,
            error=error,
            done=done,
            detail=found,
            impacts=COMPONENT_IMPACTS,
            impact_labels=IMPACT_LABELS,
            status_labels=STATUS_LABELS,
            impact_field=IMPACT_FIELD,
            can_write=policy.allowed(principal, policy.Action.STATUSPAGES_WRITE, organization=viewer.organization),
            form=context.pop("form", {}),
            **context,
        )

    def _back(self, request: Request, done: str) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        return RedirectResponse(f"/console/status-pages/{quote(namespace)}/{quote(name)}?done={done}", 303)

    async def _act(
        self, request: Request, viewer: Viewer, done: str, work: Callable[[Session, datetime, dict[str, str]], object]
    ) -> Response:
        form = fields(request)
        try:
            await self._run(lambda s, now: work(s, now, form), write=True)
        except Refused as refused:
            return await self.detail(request, viewer, status=400, error=str(refused), form=form)
        self.publisher.changed()
        return self._back(request, done)

    def _who(self, request: Request, viewer: Viewer) -> Acting:
        return Acting(viewer.principal, Actor.of(viewer.principal, ip=client_key(request)), self.publisher)

    # --- actions -------------------------------------------------------------------------------------------

    async def preview(self, request: Request, viewer: Viewer) -> Response:
        """The new incident's form again with its message as the public page would show it; changes nothing."""
        form = fields(request)
        principal = viewer.principal
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        message = form.get("message", "")
        shown = await self._run(lambda s, now: service.preview(s, principal, namespace, name, message))
        return await self.detail(request, viewer, form=form, preview=shown)

    async def open(self, request: Request, viewer: Viewer) -> Response:
        who = self._who(request, viewer)
        namespace, name = request.path_params["namespace"], request.path_params["name"]

        def work(session: Session, now: datetime, form: dict[str, str]) -> object:
            impacts = {k[len(IMPACT_FIELD) :]: v for k, v in form.items() if k.startswith(IMPACT_FIELD)}
            asked = NewIncident(
                form.get("title", ""),
                impacts,
                form.get("status", ""),
                form.get("message", ""),
                _flag(form, "notify"),
            )
            return service.open_incident(session, who, namespace, name, asked, now=now)

        return await self._act(request, viewer, "opened", work)

    def _target(self, request: Request, key: str) -> tuple[str, str, int]:
        text = request.path_params[key]
        if not text.isdigit() or len(text) > 18:
            raise policy.NotFound()
        return request.path_params["namespace"], request.path_params["name"], int(text)

    async def update(self, request: Request, viewer: Viewer) -> Response:
        who = self._who(request, viewer)
        target = self._target(request, "incident_id")

        def work(session: Session, now: datetime, form: dict[str, str]) -> object:
            status, message = form.get("status", ""), form.get("message", "")
            return service.post_update(session, who, target, status, message, notify=_flag(form, "notify"), now=now)

        return await self._act(request, viewer, "updated", work)

    async def resolve(self, request: Request, viewer: Viewer) -> Response:
        who = self._who(request, viewer)
        target = self._target(request, "incident_id")

        def work(session: Session, now: datetime, form: dict[str, str]) -> object:
            message, notify = form.get("message", ""), _flag(form, "notify")
            return service.post_update(session, who, target, "resolved", message, notify=notify, now=now)

        return await self._act(request, viewer, "resolved", work)

    async def postmortem(self, request: Request, viewer: Viewer) -> Response:
        who = self._who(request, viewer)
        target = self._target(request, "incident_id")

        def work(session: Session, now: datetime, form: dict[str, str]) -> object:
            return service.write_postmortem(session, who, target, form.get("postmortem", ""), now=now)

        return await self._act(request, viewer, "postmortem", work)

    async def start_maintenance(self, request: Request, viewer: Viewer) -> Response:
        who = self._who(request, viewer)
        namespace, name = request.path_params["namespace"], request.path_params["name"]

        def work(session: Session, now: datetime, form: dict[str, str]) -> object:
            components = [k[len("component:") :] for k, v in form.items() if k.startswith("component:") and v]
            asked = NewMaintenance(form.get("title", ""), components, form.get("until", ""), form.get("message", ""))
            return service.start_maintenance(session, who, namespace, name, asked, now=now)

        return await self._act(request, viewer, "maintenance", work)

    async def end_maintenance(self, request: Request, viewer: Viewer) -> Response:
        who = self._who(request, viewer)
        target = self._target(request, "maintenance_id")

        def work(session: Session, now: datetime, form: dict[str, str]) -> object:
            return service.end_maintenance(session, who, target, now=now)

        return await self._act(request, viewer, "ended", work)

    def routes(self) -> list[BaseRoute]:
        def page(handler: Callable[[Request, Viewer], Awaitable[Response]], current: str) -> Any:
            return self.console.page(handler, current=current)

        base = "/status-pages/{namespace}/{name}"
        incident = base + "/incidents/{incident_id}"
        return [
            Route("/status-pages", page(self.index, current=KEY), methods=["GET"]),
            Route(base, page(self.detail, current=KEY), methods=["GET"]),
            Route(base + "/preview", page(self.preview, current=KEY), methods=["POST"]),
            Route(base + "/incidents", page(self.open, current=KEY), methods=["POST"]),
            Route(incident + "/updates", page(self.update, current=KEY), methods=["POST"]),
            Route(incident + "/resolve", page(self.resolve, current=KEY), methods=["POST"]),
            Route(incident + "/postmortem", page(self.postmortem, current=KEY), methods=["POST"]),
            Route(base + "/maintenance", page(self.start_maintenance, current=KEY), methods=["POST"]),
            Route(
                base + "/maintenance/{maintenance_id}/end", page(self.end_maintenance, current=KEY), methods=["POST"]
            ),
        ]
