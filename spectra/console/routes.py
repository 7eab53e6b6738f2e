"""The console's routes, under `/console`, and what every page handler shares (`Console`).

A page handler is `async (request, viewer) -> Response`; `Console.page` wraps it: the viewer from the
session cookies (to /login without one, the renewing form when the access cookie expired), the CSRF
token checked on every POST before the handler runs, and problem sentences from the policy shown on the
page (403) or as not found (404, another tenant's object). GET never changes anything.

Each area of the console adds its routes in `console_routes` (one module each: overview, monitors,
incidents, on-call, status pages, organization, platform).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from spectra.auth import impersonation, policy
from spectra.auth.identity import Actor
from spectra.runtime.clients import client_key
from spectra.runtime.forms import read_body, read_form
from spectra.store import utcnow
from spectra.store.accounts import UserSession
from spectra.store.engine import retry_conflicts
from spectra.tokens import Tokens
from spectra.web.auth_routes import CSRF_REFUSED, Refusal, SignIn, clear_session_cookies
from spectra.web.credentials import CSRF_FIELD, cookie_names

from . import assets
from .forms import field
from .incidents.api import incidents_api_routes
from .incidents.views import incident_routes
from .monitors.api import monitors_api_routes
from .monitors.hub import MonitorHub
from .monitors.views import MonitorViews
from .oncall.api import oncall_api_routes
from .oncall.views import oncall_routes
from .openapi import openapi_routes
from .organization.api import organization_api_routes
from .organization.views import organization_routes
from .platform.api import platform_api_routes
from .platform.views import platform_routes
from .rendering import ConsolePages, render_bare
from .statuspages.api import statuspages_api_routes
from .statuspages.views import StatusPageViews
from .viewer import CONSOLE, ConsoleAuth, Renew, Viewer, local_path, login_redirect

PageHandler = Callable[[Request, Viewer], Awaitable[Response]]
NOT_FOUND: Final = "There is nothing here, or it is not yours to see."
BODY_TOO_LARGE: Final = "The form is too large."


@dataclass
class Console:
    """What the console's handlers share."""

    factory: sessionmaker[Session]
    clock: Callable[[], datetime]
    tokens: Tokens
    auth: ConsoleAuth
    pages: ConsolePages

    @classmethod
    def of(
        cls, factory: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow, tokens: Tokens | None = None
    ) -> Console:
        tokens = tokens or Tokens()
        return cls(
            factory,
            clock,
            tokens,
            ConsoleAuth(SignIn(factory, clock=clock, tokens=tokens)),
            ConsolePages(factory, clock),
        )

    def page(self, handler: PageHandler, *, current: str = "") -> Callable[[Request], Awaitable[Response]]:
        """`handler` behind the viewer check, the CSRF check of POSTs and the policy's refusals."""

        async def endpoint(request: Request) -> Response:
            try:
                viewer = await self.auth.viewer(request)
            except Renew:
                csrf = request.cookies.get(cookie_names().csrf, "")
                return render_bare("renew.html", csrf=csrf, next=local_path(str(request.url.path)))
            except Refusal:
                return login_redirect(request)
            if request.method == "POST":
                raw = await read_body(request)
                if raw is None:
                    return await self.pages.render(
                        viewer, "problem.html", current=current, status=413, error=BODY_TOO_LARGE
                    )
                request.state.form = read_form(raw)  # the body is read once: handlers take it from here
                if not self.auth.csrf_ok(request, viewer, field(request, CSRF_FIELD)):
                    return await self.pages.render(
                        viewer, "problem.html", current=current, status=403, error=CSRF_REFUSED
                    )
            try:
                return await handler(request, viewer)
            except policy.NotFound:
                return await self.pages.render(viewer, "problem.html", current=current, status=404, error=NOT_FOUND)
            except policy.Denied as refused:
                return await self.pages.render(
                    viewer, "problem.html", current=current, status=refused.status, error=str(refused)
                )
            except Refusal as refused:
                return await self.pages.render(
                    viewer, "problem.html", current=current, status=refused.status, error=refused.detail
                )

        return endpoint

    async def problem(self, viewer: Viewer, current: str, status: int, sentence: str) -> Response:
        return await self.pages.render(viewer, "problem.html", current=current, status=status, error=sentence)


def _end_own_impersonation(console: Console, viewer: Viewer, ip: str) -> None:
    principal = viewer.principal

    def attempt() -> None:
        with console.factory.begin() as session:
            found = session.scalar(select(UserSession.impersonation_id).where(UserSession.sid == principal.session_id))
            if found is None:
                raise policy.Forbidden("this session is not an impersonation")
            impersonation.end(session, found, actor=Actor.of(principal, ip=ip), now=console.clock())

    retry_conflicts(attempt)


async def _end_impersonation(console: Console, request: Request, viewer: Viewer) -> Response:
    """The banner's button: end this impersonation now (its session ends with it), back to signing in."""
    await run_in_threadpool(_end_own_impersonation, console, viewer, client_key(request))
    response = RedirectResponse("/login", 303)
    clear_session_cookies(response)
    return response


def console_routes(
    factory: sessionmaker[Session],
    *,
    clock: Callable[[], datetime] = utcnow,
    tokens: Tokens | None = None,
    hub: MonitorHub | None = None,
) -> list[BaseRoute]:
    console = Console.of(factory, clock=clock, tokens=tokens)
    monitors = MonitorViews(console, hub or MonitorHub(factory))  # the overview is the console's home
    home = console.page(monitors.overview, current="o")
    routes: list[BaseRoute] = [
        Route("/", home, methods=["GET"]),
        Route("/renew", console.auth.renew, methods=["POST"]),
        Route("/static/{name:path}", assets.static, methods=["GET", "HEAD"]),
        Route("/impersonation/end", console.page(lambda r, v: _end_impersonation(console, r, v)), methods=["POST"]),
        *monitors.routes(),
        *incident_routes(console),
        *oncall_routes(console),
        *organization_routes(console),
        *platform_routes(console),
        *StatusPageViews(console).routes(),
    ]
    return [
        *monitors_api_routes(console),
        *incidents_api_routes(console),
        *oncall_api_routes(console),
        *organization_api_routes(console),
        *platform_api_routes(console),
        *statuspages_api_routes(console),
        *openapi_routes(),  # GET /api/v1/openapi.json: every Operation above and of the web floor
        Route(CONSOLE, home, methods=["GET"]),
        Mount(CONSOLE, routes=routes),
    ]
