"""Who is looking at a console page, proven by the browser's session cookies.

A console page takes only the cookies `/login` sets (spectra.web.credentials): no `Authorization`
header, since no browser sends one by itself. The access cookie is a short-lived JWT; the page also asks
the store whether its session is still live (`sessions.is_active`), so a logout, sign out everywhere, a
disabled account or an ended impersonation closes every open tab at its next request, not minutes later.

When the access cookie has expired but a refresh cookie is there, the page is a small form that renews
the session (POST `/console/renew` with the CSRF token, then back to the page asked for): the console's
script submits it at once, and without script it is one click. GET never rotates anything. Without
any session: 303 to `/login`.

Forms carry the CSRF token in a `csrf` field (double submit, bound to the session: spectra.web.credentials);
`Viewer.csrf` is the value each form repeats.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import quote

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from spectra.auth import sessions
from spectra.auth.identity import Principal
from spectra.runtime.clients import client_key
from spectra.runtime.headers import LINK_PAGE_HEADERS
from spectra.web import credentials
from spectra.web.auth_routes import CSRF_REFUSED, Refusal, SignIn, after_sign_in, form_fields, set_session_cookies

log = logging.getLogger("spectra.console")

CONSOLE: Final = "/console"
RENEW_PATH: Final = f"{CONSOLE}/renew"


@dataclass(frozen=True)
class Viewer:
    """A signed-in person on a console page."""

    principal: Principal
    csrf: str  # what every form of the page repeats in its `csrf` field

    @property
    def organization(self) -> str | None:
        return self.principal.organization


class Renew(Exception):
    """The access cookie is gone or expired and a refresh cookie is there: show the renewing form."""


def local_path(target: str | None, default: str = CONSOLE) -> str:
    """`target` when signing in may lead there (a console or account path, never another host), else `default`."""
    return after_sign_in(target) or default


def login_redirect(request: Request) -> Response:
    return RedirectResponse(f"/login?next={quote(local_path(request.url.path), safe='/')}", 303)


class ConsoleAuth:
    """Identifies viewers and renews sessions for the console (blocking store work in worker threads)."""

    def __init__(self, sign_in: SignIn) -> None:
        self.sign_in = sign_in
        self.factory: sessionmaker[Session] = sign_in.factory
        self.clock: Callable[[], datetime] = sign_in.clock

    def _live(self, principal: Principal) -> bool:
        if principal.session_id is None:
            return False
        with self.factory() as session:
            return sessions.is_active(session, principal.session_id, now=self.clock())

    async def viewer(self, request: Request) -> Viewer:
        """The viewer, or `Renew`, or `Refusal(401)` when nobody is signed in (the caller redirects)."""
        names = credentials.cookie_names()
        cookies = dict(request.cookies)
        access = cookies.get(names.access)
        if not access:
            if cookies.get(names.refresh):
                raise Renew
            raise Refusal(401, "Sign in first.")
        try:
            principal = credentials.access_principal(access, now=self.clock())
        except credentials.BadCredentials as refused:
            log.info("console: access cookie refused: %s", refused.reason)
            if cookies.get(names.refresh):
                raise Renew from None
            raise Refusal(401, "Sign in first.") from None
        if not await run_in_threadpool(self._live, principal):
            raise Refusal(401, "Sign in first.")
        return Viewer(principal, cookies.get(names.csrf, ""))

    def csrf_ok(self, request: Request, viewer: Viewer, presented: str | None) -> bool:
        """Whether a form's `csrf` field (`presented`) is the CSRF token of the viewer's session."""
        caller = credentials.Caller(viewer.principal, by_cookie=True)
        return credentials.csrf_ok(caller, request.headers, dict(request.cookies), presented)

    async def renew(self, request: Request) -> Response:
        """POST /console/renew: rotate the refresh cookie (its CSRF token must be of the same session), back
        to `next`; to /login when the session cannot be renewed."""
        form = await form_fields(request)
        target = local_path(form.get("next"))
        cookie = request.cookies.get(credentials.cookie_names().refresh)
        presented = credentials.csrf_presented(request.headers, dict(request.cookies), form.get(credentials.CSRF_FIELD))
        if not cookie:
            return RedirectResponse(f"/login?next={quote(target, safe='/')}", 303)
        if presented is None:
            return PlainTextResponse(CSRF_REFUSED, 403, headers=LINK_PAGE_HEADERS)
        try:
            granted = await run_in_threadpool(
                self.sign_in.refresh,
                cookie,
                client=client_key(request),
                sid_check=lambda sid: credentials.csrf_belongs(presented, sid),
            )
        except Refusal as refused:
            if refused.status == 403:
                return PlainTextResponse(refused.detail, 403, headers=LINK_PAGE_HEADERS)
            return RedirectResponse(f"/login?next={quote(target, safe='/')}", 303)
        response = RedirectResponse(target, 303)
        set_session_cookies(response, granted, now=self.clock())
        return response
