"""The signed-in person's own account page, for browsers without script: who they are, two-factor
authentication (enrol by QR code or typed secret, confirm, see the recovery codes once), sign out, and
sign out everywhere.

- `GET /account`: the page; changes nothing. Without a valid access cookie: 303 to /login.
- `POST /account/mfa/enrol`: a new secret (spectra.auth.totp.begin_enrolment); the page shows its QR code
  (an SVG made on the server) and the secret as text, and a form for the first code.
- `POST /account/mfa/confirm` {code}: two-factor authentication is on; the ten recovery codes are shown
  this once.
- `POST /account/logout`, `POST /account/logout-everywhere`: revoked on the server, cookies cleared, 303
  to /login.

Every POST carries the CSRF token in a `csrf` form field (the page puts it there from the CSRF cookie);
the policy decides as for the JSON endpoints (spectra.web.auth_routes), with the same sentences.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from spectra.auth import policy
from spectra.runtime.clients import client_key
from spectra.store import utcnow
from spectra.store.accounts import User
from spectra.tokens import Tokens
from spectra.web import credentials
from spectra.web.auth_routes import (
    CSRF_REFUSED,
    NOT_A_SESSION,
    AuthApi,
    Refusal,
    SignIn,
    clear_session_cookies,
    form_fields,
    page,
    who,
)

ACCOUNT_PATH = "/account"


class AccountPages:
    def __init__(self, api: AuthApi) -> None:
        self.api = api
        self.sign_in = api.sign_in

    async def _caller(self, request: Request) -> credentials.Caller | None:
        try:
            return await self.api.caller(request, changes=False)
        except Refusal:
            return None

    def _show(self, caller: credentials.Caller, request: Request, status: int = 200, **context: Any) -> Response:
        principal = caller.principal
        shown = {
            "me": who(principal),
            "mfa_on": _mfa_enabled(self.sign_in.factory, principal.user_id),
            "csrf": request.cookies.get(credentials.cookie_names().csrf, ""),
            "impersonated": principal.impersonated,
            **context,
        }
        return page("account.html", status, **shown)

    async def show(self, request: Request) -> Response:
        caller = await self._caller(request)
        if caller is None:
            return RedirectResponse("/login", 303)
        return await run_in_threadpool(self._show, caller, request)

    async def _acting(self, request: Request) -> tuple[credentials.Caller, dict[str, str]] | Response:
        """The caller of a POST and its form, or the page's answer when it may not act."""
        caller = await self._caller(request)
        if caller is None:
            return RedirectResponse("/login", 303)
        form = await form_fields(request)
        if not credentials.csrf_ok(caller, request.headers, dict(request.cookies), form.get(credentials.CSRF_FIELD)):
            return await run_in_threadpool(self._show, caller, request, 403, error=CSRF_REFUSED)
        return caller, form

    def _own_mfa(self, caller: credentials.Caller) -> None:
        try:
            policy.require(caller.principal, policy.Action.SELF_MFA, organization=None)
        except policy.Denied as refused:
            raise Refusal(refused.status, str(refused)) from None
        if caller.principal.session_id is None:
            raise Refusal(403, NOT_A_SESSION)

    async def enrol(self, request: Request) -> Response:
        acting = await self._acting(request)
        if isinstance(acting, Response):
            return acting
        caller, _ = acting
        principal = caller.principal
        try:
            self._own_mfa(caller)
            enrolment = await run_in_threadpool(
                self.sign_in.begin_enrolment, principal.user_id, sid=principal.session_id
            )
        except Refusal as refused:
            return await run_in_threadpool(self._show, caller, request, refused.status, error=refused.detail)
        return await run_in_threadpool(self._show, caller, request, enrolment=enrolment)

    async def confirm(self, request: Request) -> Response:
        acting = await self._acting(request)
        if isinstance(acting, Response):
            return acting
        caller, form = acting
        try:
            self._own_mfa(caller)
            codes = await run_in_threadpool(
                self.sign_in.confirm_enrolment, caller.principal, form.get("code", ""), client=client_key(request)
            )
        except Refusal as refused:
            # A wrong code keeps the secret being set up: the form again, without a new secret to scan.
            return await run_in_threadpool(
                self._show, caller, request, refused.status, error=refused.detail, confirming=True
            )
        return await run_in_threadpool(self._show, caller, request, recovery_codes=codes)

    async def _logout(self, request: Request, *, everywhere: bool) -> Response:
        acting = await self._acting(request)
        if isinstance(acting, Response):
            return acting
        caller, _ = acting
        try:
            await run_in_threadpool(
                self.sign_in.logout, caller.principal, client=client_key(request), everywhere=everywhere
            )
        except Refusal as refused:
            return await run_in_threadpool(self._show, caller, request, refused.status, error=refused.detail)
        response = RedirectResponse("/login", 303)
        clear_session_cookies(response)
        return response

    async def logout(self, request: Request) -> Response:
        return await self._logout(request, everywhere=False)

    async def logout_everywhere(self, request: Request) -> Response:
        return await self._logout(request, everywhere=True)


def _mfa_enabled(factory: sessionmaker[Session], user_id: int) -> bool:
    with factory() as session:
        return bool(session.scalar(select(User.mfa_enabled).where(User.id == user_id)))


def account_routes(
    factory: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow, tokens: Tokens | None = None
) -> list[Route]:
    pages = AccountPages(AuthApi(SignIn(factory, clock=clock, tokens=tokens)))
    return [
        Route(ACCOUNT_PATH, pages.show, methods=["GET"]),
        Route(f"{ACCOUNT_PATH}/mfa/enrol", pages.enrol, methods=["POST"]),
        Route(f"{ACCOUNT_PATH}/mfa/confirm", pages.confirm, methods=["POST"]),
        Route(f"{ACCOUNT_PATH}/logout", pages.logout, methods=["POST"]),
        Route(f"{ACCOUNT_PATH}/logout-everywhere", pages.logout_everywhere, methods=["POST"]),
    ]
