"""The organization pages under `/console/organization`, for its admins: members, API tokens, plan, usage
and trial, the audit log. Thin: each handler asks `service` (which asks the policy and audits) in a
worker thread and draws a template; every change is a POST answered by a 303 back to its page.

Also what the platform pages share with these: `Work` (a transaction in a worker thread, refusals of
what was asked turned into 400 with their sentence), `field` (a form's first value of a field).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from spectra.auth import policy
from spectra.auth.identity import Actor
from spectra.auth.policy import Action
from spectra.runtime.clients import client_key
from spectra.store.engine import retry_conflicts
from spectra.web.admin_routes import REFUSED_AS_ASKED, audit_filter, whole_number
from spectra.web.auth_routes import Refusal

from ..forms import posted
from ..viewer import Viewer
from . import service

if TYPE_CHECKING:
    from ..routes import Console

T = TypeVar("T")
KEY: Final = "g"  # the navigation section (rendering.SECTIONS)
BASE: Final = "/console/organization"
AUDIT_FILTERS: Final = ("action", "actor", "since", "until")
# The audit page's own links page by `before` (an id); GET /api/v1/audit's JSON pages by an opaque cursor.
BAD_BEFORE: Final = "before must be the id of an audit record (a whole number)."


# --- shared with the platform pages ----------------------------------------------------------------------


async def run(console: Console, work: Callable[[Session, datetime], T]) -> T:
    """`work(session, now)` in one transaction in a worker thread; what spectra.auth refuses for what was
    asked (a bad address, the last admin, a short reason...) is a 400 with its own sentence."""

    def attempt() -> T:
        with console.factory.begin() as session:
            return work(session, console.clock())

    try:
        return await run_in_threadpool(retry_conflicts, attempt)
    except REFUSED_AS_ASKED as refused:
        raise Refusal(400, str(refused)) from None


def field(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0]


def actor_of(request: Request, viewer: Viewer) -> Actor:
    return Actor.of(viewer.principal, ip=client_key(request))


def back(path: str, done: str) -> Response:
    return RedirectResponse(f"{path}?{urlencode({'done': done})}", 303)


def done_of(request: Request) -> str | None:
    """The message a change left in the query after its redirect (shown as text, never markup)."""
    return request.query_params.get("done") or None


# --- the pages ---------------------------------------------------------------------------------------------


class OrganizationPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def overview(self, request: Request, viewer: Viewer) -> Response:
        actor = actor_of(request, viewer)
        found = await run(self.console, lambda s, now: service.overview(s, viewer.principal, actor=actor, now=now))
        return await self.console.pages.render(
            viewer, "organization/overview.html", current=KEY, page=found, done=done_of(request)
        )

    async def invite(self, request: Request, viewer: Viewer) -> Response:
        form = posted(request)
        actor = actor_of(request, viewer)
        email, role, name = field(form, "email"), field(form, "role"), field(form, "name")

        def work(session: Session, now: datetime) -> str:
            invited = service.invite(
                session, viewer.principal, email, role, name, actor=actor, now=now, tokens=self.console.tokens
            )
            return invited.user.email

        address = await run(self.console, work)
        return back(BASE, f"{address} invited as {role}")

    async def change_member(self, request: Request, viewer: Viewer) -> Response:
        email, change = str(request.path_params["email"]), str(request.path_params["change"])
        if change not in service.DONE:
            raise Refusal(404, "There is no such change.")
        form = posted(request)
        actor, role = actor_of(request, viewer), field(form, "role")

        def work(session: Session, now: datetime) -> bool:
            return service.change_member(session, viewer.principal, email, change, actor=actor, now=now, role=role)

        changed = await run(self.console, work)
        done = f"{email}: {service.DONE[change]}" if changed else f"{email}: nothing to change"
        return back(BASE, done)

    async def settings(self, request: Request, viewer: Viewer) -> Response:
        form = posted(request)
        wanted = field(form, "require_mfa")
        if wanted not in ("on", "off"):
            raise Refusal(400, "require_mfa must be on or off.")
        ip = client_key(request)
        changed = await run(
            self.console, lambda s, now: service.require_mfa(s, viewer.principal, wanted == "on", now=now, ip=ip)
        )
        said = "required of every member" if wanted == "on" else "left to each member"
        return back(BASE, f"Two-factor authentication {said}" if changed else "Nothing changed")

    # --- API tokens ----------------------------------------------------------------------------------------

    async def tokens(self, request: Request, viewer: Viewer) -> Response:
        lists = await run(self.console, lambda s, now: service.token_lists(s, viewer.principal, now=now))
        return await self.console.pages.render(
            viewer,
            "organization/tokens.html",
            current=KEY,
            lists=lists,
            expiries=list(service.EXPIRY_CHOICES),
            done=done_of(request),
        )

    async def create_token(self, request: Request, viewer: Viewer) -> HTMLResponse:
        """The new token's secret, on this answer only (never stored, never shown again)."""
        form = posted(request)
        ip = client_key(request)
        name, scopes, expires_in = field(form, "name"), form.get("scopes", []), field(form, "expires_in")

        def work(session: Session, now: datetime) -> tuple[str, service.TokenLine]:
            return service.create_token(session, viewer.principal, name, scopes, expires_in, now=now, ip=ip)

        secret, line = await run(self.console, work)
        return await self.console.pages.render(
            viewer, "organization/token_created.html", current=KEY, secret=secret, token=line
        )

    async def revoke_token(self, request: Request, viewer: Viewer) -> Response:
        token_id = whole_number(request.path_params["token_id"])
        ip = client_key(request)

        def work(session: Session, now: datetime) -> service.TokenLine:
            if token_id is None:
                raise policy.NotFound()
            return service.revoke_token(session, viewer.principal, token_id, now=now, ip=ip)

        line = await run(self.console, work)
        return back(f"{BASE}/tokens", f"Token {line.name} of {line.owner} revoked")

    # --- the audit log -------------------------------------------------------------------------------------

    async def audit(self, request: Request, viewer: Viewer) -> Response:
        organization = service.organization_of(viewer.principal, Action.AUDIT_READ)
        asked = {name: request.query_params.get(name, "") for name in AUDIT_FILTERS}
        query = {**asked, "organization": organization}
        return await audit_log(
            self.console, request, viewer, current=KEY, asked=asked, query=query, path=f"{BASE}/audit"
        )


async def audit_log(
    console: Console,
    request: Request,
    viewer: Viewer,
    *,
    current: str,
    asked: dict[str, str],
    query: dict[str, str],
    path: str,
) -> Response:
    """The audit log page (the organization's, or the platform's): `asked` is what the filter form shows,
    `query` what the policy reads (spectra.web.admin_routes.audit_filter, as GET /api/v1/audit does)."""
    where = audit_filter({name: value for name, value in query.items() if value}, viewer.principal)
    raw_before = request.query_params.get("before")
    before = whole_number(raw_before)
    if raw_before is not None and before is None:
        raise Refusal(400, BAD_BEFORE)
    page = await run(console, lambda s, _: service.audit_page(s, where, before=before))
    filters = {name: value for name, value in query.items() if value}
    following = None if page.following is None else f"{path}?{urlencode({**asked, 'before': page.following})}"
    exports = {kind: f"/api/v1/audit?{urlencode({**filters, 'format': kind})}" for kind in ("csv", "jsonl")}
    return await console.pages.render(
        viewer,
        "organization/audit.html",
        current=current,
        asked=asked,
        records=page.records,
        following=following,
        first=f"{path}?{urlencode(asked)}" if before is not None else None,
        exports=exports,
        path=path,
    )


def organization_routes(console: Console) -> list[BaseRoute]:
    """The pages' routes, relative to the console's Mount."""
    pages = OrganizationPages(console)

    def page(handler: Callable[[Request, Viewer], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        return console.page(handler, current=KEY)

    return [
        Route("/organization", page(pages.overview), methods=["GET"]),
        Route("/organization/members", page(pages.invite), methods=["POST"]),
        Route("/organization/members/{email}/{change}", page(pages.change_member), methods=["POST"]),
        Route("/organization/settings", page(pages.settings), methods=["POST"]),
        Route("/organization/tokens", page(pages.tokens), methods=["GET"]),
        Route("/organization/tokens", page(pages.create_token), methods=["POST"]),
        Route("/organization/tokens/{token_id}/revoke", page(pages.revoke_token), methods=["POST"]),
        Route("/organization/audit", page(pages.audit), methods=["GET"]),
    ]
