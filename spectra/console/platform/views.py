"""The platform pages under `/console/platform`, for platform admins (never while impersonating): tenants,
impersonation, global maintenance, every organization's audit log, and the system page.

Starting an impersonation here turns this browser into the member's session: the answer sets the new
session's cookies (the platform admin's own session stays live, its cookies are replaced) and leads to
`/console`, where the banner shows it and its button ends it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Final

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from spectra.auth import impersonation
from spectra.auth.policy import Action
from spectra.auth.sessions import Issued
from spectra.runtime.clients import client_key
from spectra.web.admin_routes import whole_number
from spectra.web.auth_routes import Granted, Refusal, set_session_cookies

from ..forms import posted
from ..organization.views import AUDIT_FILTERS, actor_of, audit_log, back, done_of, field, run
from ..viewer import CONSOLE, Viewer
from . import service

if TYPE_CHECKING:
    from ..routes import Console

KEY: Final = "p"  # the navigation section (rendering.SECTIONS)
BASE: Final = "/console/platform"
BAD_MINUTES: Final = f"minutes must be a whole number from 1 to {impersonation.MAX_MINUTES}."


class PlatformPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def home(self, request: Request, viewer: Viewer) -> Response:
        found = await run(self.console, lambda s, now: service.home(s, viewer.principal, now=now))
        return await self.console.pages.render(
            viewer,
            "platform/home.html",
            current=KEY,
            page=found,
            default_minutes=impersonation.DEFAULT_MINUTES,
            max_minutes=impersonation.MAX_MINUTES,
            done=done_of(request),
        )

    async def impersonate(self, request: Request, viewer: Viewer) -> Response:
        """Start impersonating; this browser becomes the member's session (its cookies), to /console."""
        service.require_platform(viewer.principal, Action.IMPERSONATE)
        form = posted(request)
        minutes = whole_number(field(form, "minutes") or str(impersonation.DEFAULT_MINUTES))
        if minutes is None:
            raise Refusal(400, BAD_MINUTES)
        email, organization, reason = field(form, "email"), field(form, "organization"), field(form, "reason")
        ip, agent = client_key(request), request.headers.get("user-agent")

        def work(session: Session, now: datetime) -> Issued:
            return service.impersonate(
                session,
                viewer.principal,
                email,
                organization,
                reason=reason,
                minutes=minutes,
                now=now,
                ip=ip,
                user_agent=agent,
            )

        granted = Granted.of(await run(self.console, work))
        response = RedirectResponse(CONSOLE, 303)
        set_session_cookies(response, granted, now=self.console.clock())
        return response

    async def end_impersonation(self, request: Request, viewer: Viewer) -> Response:
        wanted = whole_number(request.path_params["impersonation_id"])
        actor = actor_of(request, viewer)
        service.require_platform(viewer.principal, Action.IMPERSONATE)
        if wanted is None:
            raise Refusal(404, "There is no such impersonation.")

        def work(session: Session, now: datetime) -> bool:
            try:
                return service.end_impersonation(session, viewer.principal, wanted, actor=actor, now=now)
            except impersonation.ImpersonationError as unknown:
                raise Refusal(404, str(unknown)) from None

        ended = await run(self.console, work)
        return back(BASE, "Impersonation ended" if ended else "It had ended already")

    async def maintenance_on(self, request: Request, viewer: Viewer) -> Response:
        form = posted(request)
        actor = actor_of(request, viewer)
        message, until = field(form, "message"), field(form, "until")
        shown = field(form, "show_on_status_pages") == "on"

        def work(session: Session, now: datetime) -> object:
            return service.maintenance_on(session, viewer.principal, message, until, shown, actor=actor, now=now)

        await run(self.console, work)
        return back(BASE, "Global maintenance is on: nobody is paged")

    async def maintenance_off(self, request: Request, viewer: Viewer) -> Response:
        actor = actor_of(request, viewer)
        await run(self.console, lambda s, now: service.maintenance_off(s, viewer.principal, actor=actor, now=now))
        return back(BASE, "Global maintenance is off: pages held by it go out now")

    async def audit(self, request: Request, viewer: Viewer) -> Response:
        service.require_platform(viewer.principal, Action.TENANTS_MANAGE)
        asked = {name: request.query_params.get(name, "") for name in ("organization", *AUDIT_FILTERS)}
        return await audit_log(
            self.console, request, viewer, current=KEY, asked=asked, query=asked, path=f"{BASE}/audit"
        )

    async def system(self, request: Request, viewer: Viewer) -> Response:
        found = await run(self.console, lambda s, now: service.system(s, viewer.principal, now=now))
        return await self.console.pages.render(viewer, "platform/system.html", current=KEY, system=found)


def platform_routes(console: Console) -> list[BaseRoute]:
    """The pages' routes, relative to the console's Mount."""
    pages = PlatformPages(console)

    def page(handler: Callable[[Request, Viewer], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        return console.page(handler, current=KEY)

    return [
        Route("/platform", page(pages.home), methods=["GET"]),
        Route("/platform/impersonations", page(pages.impersonate), methods=["POST"]),
        Route("/platform/impersonations/{impersonation_id}/end", page(pages.end_impersonation), methods=["POST"]),
        Route("/platform/maintenance", page(pages.maintenance_on), methods=["POST"]),
        Route("/platform/maintenance/off", page(pages.maintenance_off), methods=["POST"]),
        Route("/platform/audit", page(pages.audit), methods=["GET"]),
        Route("/platform/system", page(pages.system), methods=["GET"]),
    ]
