"""The console as its tests see it: the app a person reaches (signing in, the account page, the admin
endpoints and the console) on a real database with a clock held still, and browsers signed in as
someone by a real session (spectra.auth.sessions, the cookies /login sets) without the argon2 work of
a password sign-in.

    site = ConsoleSite.make(sessions, portal)
    ada = site.browser("ada@acme.example")          # an account of the store, signed in
    page = ada.get("/console")
    ada.post("/console/incidents/7/ack", data={})   # the CSRF field is added
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from spectra.auth import sessions as auth_sessions
from spectra.console.routes import console_routes
from spectra.runtime.cross_site import CrossSiteRefusal
from spectra.store.accounts import User
from spectra.web import admin_routes
from spectra.web.account_pages import account_routes
from spectra.web.auth_routes import Granted, auth_routes
from spectra.web.credentials import cookie_names, csrf_token
from tests.support.web import Client, Clock


@dataclass
class Browser:
    """One browser's cookie jar on the site, signed in as `email` (or nobody)."""

    http: Client
    email: str | None = None
    granted: Granted | None = None

    @property
    def csrf(self) -> str:
        return str(self.http.cookies.get(cookie_names().csrf) or "")

    def get(self, url: str, **options: Any) -> httpx.Response:
        return self.http.get(url, **options)

    def post(
        self, url: str, data: dict[str, str] | None = None, *, csrf: bool = True, **options: Any
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf", self.csrf)
        return self.http.post(url, data=form, **options)

    def api(self, method: str, url: str, **options: Any) -> httpx.Response:
        """A JSON API request with the cookies and the CSRF header, as the console's script sends one."""
        headers = {"X-CSRF-Token": self.csrf, **options.pop("headers", {})}
        return self.http.request(method, url, headers=headers, **options)


@dataclass
class ConsoleSite:
    sessions: sessionmaker[Session]
    clock: Clock
    app: Starlette
    portal: BlockingPortal
    browsers: list[Browser] = field(default_factory=list)

    @classmethod
    def make(
        cls, sessions: sessionmaker[Session], portal: BlockingPortal, *, routes: Sequence[BaseRoute] = ()
    ) -> ConsoleSite:
        """The site with `routes` of the test's own after the console's (a page of a slice under test)."""
        clock = Clock()
        app = Starlette(
            routes=[
                *auth_routes(sessions, clock=clock),
                *account_routes(sessions, clock=clock),
                *admin_routes.admin_routes(sessions, clock=clock),
                *console_routes(sessions, clock=clock),
                *routes,
            ],
            middleware=[Middleware(CrossSiteRefusal)],
        )
        return cls(sessions, clock, app, portal)

    def anonymous(self) -> Browser:
        return Browser(Client(self.app, self.portal))

    def browser(self, email: str, *, organization: str | None = "", mfa_verified: bool = True) -> Browser:
        """A browser signed in as `email` (an account of the store) in `organization` (default: their first
        organization by name; None: none, as a platform admin outside any)."""
        with self.sessions.begin() as session:
            user = session.scalars(select(User).where(User.email == email)).one()
            names = sorted(m.organization for m in user.memberships)
            where = (names[0] if names else None) if organization == "" else organization
            issued = auth_sessions.start(
                session, user, organization=where, now=self.clock(), mfa_verified=mfa_verified, ip="127.0.0.1",
                user_agent="test",
            )  # fmt: skip
            granted = Granted.of(issued)
        return self.signed_in(granted, email)

    def signed_in(self, granted: Granted, email: str | None = None) -> Browser:
        """A browser holding the cookies /login would set for `granted`."""
        browser = Browser(Client(self.app, self.portal), email, granted)
        names = cookie_names()
        # The jar's name for the host of "http://testserver", as for the cookies the app sets itself.
        where = {"domain": "testserver.local", "path": "/"}
        browser.http.cookies.set(names.access, granted.access_token, **where)
        browser.http.cookies.set(names.refresh, granted.refresh_token, **where)
        browser.http.cookies.set(names.csrf, csrf_token(granted.sid), **where)
        return browser
