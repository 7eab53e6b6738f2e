"""Signing in over HTTP: the JSON endpoints under /api/v1/auth and the server-rendered link pages.

JSON endpoints answer errors as RFC 9457 problem details (`application/problem+json`) whose `detail` is
the exact sentence a person reads; nothing here is cached (`Cache-Control: no-store`).

- `POST /api/v1/auth/login` {email, password, organization?, use_cookies?}: a session, or
  {"mfa_required": true, "mfa_token"} when the account has two-factor authentication, or
  {"mfa_enrolment_required": true, "mfa_token"} when its organization requires it and it has none. The
  same refusal, after the same work (passwords.verify_unknown), for an unknown email and a wrong
  password; throttled per account and client address before anything is checked.
- `POST /api/v1/auth/mfa` {mfa_token, code}: the second step, throttled per account (`mfa:` key).
- `POST /api/v1/auth/refresh`: the refresh cookie (with the CSRF header), or {refresh_token} for API
  clients; rotated every time (spectra.auth.sessions).
- `POST /api/v1/auth/logout`, `/logout-everywhere`, `GET /api/v1/auth/me`.
- `POST /api/v1/auth/mfa/enrol` and `/mfa/confirm` {code}: two-factor enrolment of the signed-in user,
  or of one whose organization requires it, with the login's mfa_token (then confirm starts the session).

A session goes to the client one of two ways: browsers (`use_cookies: true`, and the /login form) get
HttpOnly SameSite=Strict cookies and a CSRF token (spectra.web.credentials) and no token in the body;
API clients get both tokens in the body and send `Authorization: Bearer`.

The pages /setup/{token}, /invite/{token}, /reset/{token}, /login and /reset-request need no script:
GET shows a form and never changes anything, POST acts (spectra.auth.accounts).

Password checks (argon2id, 64 MiB each) run at most PASSWORD_CHECKS_AT_ONCE at a time: a burst of
sign-ins queues instead of holding a gigabyte.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from spectra.auth import accounts, policy, sessions, throttle, totp
from spectra.auth.audit import record
from spectra.auth.identity import Actor, Principal
from spectra.auth.organization_settings import requires_mfa
from spectra.auth.passwords import hash_password, needs_rehash, verify_password, verify_unknown
from spectra.auth.sso import sign_in_links
from spectra.runtime.clients import client_key
from spectra.runtime.forms import read_body, read_form
from spectra.runtime.headers import LINK_PAGE_HEADERS
from spectra.runtime.templates import environment
from spectra.store import utcnow
from spectra.store.accounts import EMAIL_LEN, Membership, UsedLink, User, UserStatus
from spectra.store.engine import retry_conflicts
from spectra.tokens import InvalidToken, Purpose, Tokens
from spectra.web import credentials
from spectra.web.bearer import REALM

log = logging.getLogger("spectra.web")

PROBLEM_JSON: Final = "application/problem+json"
MFA_STEP_LIFETIME: Final = timedelta(minutes=5)
PASSWORD_CHECKS_AT_ONCE: Final = 2

INVALID_LOGIN: Final = "The email address or password is not correct."
INVALID_CODE: Final = (
    "That code is not valid: enter the 6-digit code your authenticator app shows now, or a recovery code."
)
MFA_STEP_INVALID: Final = "This sign-in step has expired or was already used: sign in again."
NOT_SIGNED_IN: Final = "Sign in first."
NOT_A_MEMBER: Final = "You are not a member of that organization."
NO_ORGANIZATION: Final = "This account is not a member of any organization yet."
CSRF_REFUSED: Final = "The CSRF token is missing or not valid: reload the page and try again."
NOT_A_SESSION: Final = "API tokens do not sign in or out: revoke the token instead."
NOT_WHILE_IMPERSONATING: Final = "Not while impersonating: signing out everywhere stays with the person impersonated."
BODY_NOT_JSON: Final = "The request body must be a JSON object."
NO_REFRESH_TOKEN: Final = "No refresh token: send the refresh cookie or refresh_token."  # noqa: S105 - a message
PASSWORDS_DIFFER: Final = "The two passwords differ."

_HEADERS: Final = {"Cache-Control": "no-store"}
_PASSWORD_CHECKS: Final = threading.BoundedSemaphore(PASSWORD_CHECKS_AT_ONCE)
_TEMPLATES: Final = environment("spectra.web")

MfaRequired = Callable[[Session, str | None], bool]


class _WrongCode(Exception):
    """A second factor that did not match: its transaction is rolled back, then the failure counted."""


class Refusal(Exception):
    """An answer other than success: `detail` is what the person reads."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem details answer."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return JSONResponse(body, status, headers={**_HEADERS, **(headers or {})}, media_type=PROBLEM_JSON)


def _too_many(wait: throttle.TryAgain) -> Refusal:
    return Refusal(429, wait.message, {"Retry-After": str(wait.seconds)})


def _not_signed_in() -> Refusal:
    return Refusal(401, NOT_SIGNED_IN, {"WWW-Authenticate": REALM})


def _sign_in_again() -> Refusal:
    return Refusal(401, sessions.SIGN_IN_AGAIN, {"WWW-Authenticate": f'{REALM}, error="invalid_token"'})


@dataclass(frozen=True)
class Granted:
    """A session as the client receives it (plain values: read after the transaction ended)."""

    access_token: str
    refresh_token: str
    access_expires_at: datetime
    session_expires_at: datetime
    sid: str
    principal: Principal

    @classmethod
    def of(cls, issued: sessions.Issued) -> Granted:
        return cls(
            access_token=issued.access_token,
            refresh_token=issued.refresh_token,
            access_expires_at=issued.access_expires_at,
            session_expires_at=issued.session_row.expires_at,
            sid=issued.session_row.sid,
            principal=issued.principal,
        )


@dataclass(frozen=True)
class Step:
    """What a right password leads to: a session, or a second step with its signed token."""

    granted: Granted | None = None
    mfa_token: str | None = None
    enrol: bool = False


def who(principal: Principal) -> dict[str, Any]:
    return {
        "email": principal.email,
        "organization": principal.organization,
        "role": None if principal.role is None else principal.role.value,
        "platform_admin": principal.platform_admin,
        "impersonator": None if principal.impersonator_email is None else {"email": principal.impersonator_email},
        "via": principal.via,
    }


def _verify(stored_hash: str | None, password: str) -> bool:
    with _PASSWORD_CHECKS:
        return verify_password(stored_hash, password) if stored_hash else verify_unknown(password)


class SignIn:
    """The sign-in steps, blocking (each runs in a worker thread); `clock` is the time of every decision."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        clock: Callable[[], datetime] = utcnow,
        tokens: Tokens | None = None,
        mfa_required: MfaRequired = requires_mfa,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.tokens = tokens or Tokens()
        self.mfa_required = mfa_required

    # --- the password -------------------------------------------------------------------------------

    def password(
        self, email: str, password: str, organization: str | None, *, client: str, user_agent: str | None
    ) -> Step:
        now = self.clock()
        account = throttle.account_key(email)
        keys = (account, throttle.client_address_key(client))
        with self.factory() as session:
            try:
                throttle.ensure_free(session, keys, now=now)
            except throttle.TryAgain as wait:
                raise _too_many(wait) from None
            user = accounts.find_user(session, email) if len(email) <= EMAIL_LEN else None
            user_id = None if user is None else user.id
            stored = None if user is None else user.password_hash
            active = user is not None and user.status == UserStatus.ACTIVE
        right = _verify(stored, password)
        if not (right and active and user_id is not None):
            self._failed(keys, user_id, "password" if active or user_id is None else "account not active", now, client)
            raise Refusal(401, INVALID_LOGIN)
        # Hashed again outside the transaction: argon2 takes a while, and SQLite would wait on our lock.
        rehashed = hash_password(password) if stored is not None and needs_rehash(stored) else None

        def succeed() -> Step | None:
            with self.factory.begin() as session:
                user = session.get(User, user_id)
                if user is None or user.status != UserStatus.ACTIVE or user.password_hash != stored:
                    return None  # changed while we checked: as a wrong password
                throttle.succeeded(session, account, now=now)
                if rehashed is not None:
                    user.password_hash = rehashed
                chosen = _organization_for(session, user, organization)
                if user.mfa_enabled:
                    return Step(mfa_token=self._mfa_token(user, chosen, enrol=False, now=now))
                if self.mfa_required(session, chosen):
                    return Step(mfa_token=self._mfa_token(user, chosen, enrol=True, now=now), enrol=True)
                return Step(granted=self._start(session, user, chosen, mfa=False, now=now, ip=client, agent=user_agent))

        step = retry_conflicts(succeed)
        if step is None:
            self._failed(keys, user_id, "account changed", now, client)
            raise Refusal(401, INVALID_LOGIN)
        return step

    def _failed(self, keys: tuple[str, ...], user_id: int | None, reason: str, now: datetime, ip: str) -> None:
        def count() -> None:
            with self.factory.begin() as session:
                throttle.failed(session, keys, now=now)  # first: on SQLite the write comes before any read
                user = None if user_id is None else session.get(User, user_id)
                record(
                    session,
                    Actor(name="anonymous", ip=ip),
                    "user.login_failed",
                    now=now,
                    # Only an existing account is named: the log does not collect mistyped addresses.
                    target=None if user is None else ("User", None, user.email),
                    details={"reason": reason},
                )

        retry_conflicts(count)

    def _start(
        self,
        session: Session,
        user: User,
        organization: str | None,
        *,
        mfa: bool,
        now: datetime,
        ip: str,
        agent: str | None,
    ) -> Granted:
        issued = sessions.start(
            session, user, organization=organization, now=now, mfa_verified=mfa, ip=ip, user_agent=agent
        )
        user.last_login_at = now
        record(session, Actor.of(issued.principal, ip=ip), "user.login", now=now, details={"mfa": mfa})
        return Granted.of(issued)

    # --- the second factor ----------------------------------------------------------------------------

    def _mfa_token(self, user: User, organization: str | None, *, enrol: bool, now: datetime) -> str:
        expires = int((now + MFA_STEP_LIFETIME).timestamp())
        payload = {"u": user.id, "o": organization, "n": secrets.token_urlsafe(12), "e": expires, "k": enrol}
        return self.tokens.make(Purpose.SIGN_IN_MFA, payload)

    def _read_mfa_token(self, token: object, *, enrol: bool, now: datetime) -> tuple[int, str | None, str]:
        if not isinstance(token, str) or not token or len(token) > 1000:
            raise Refusal(401, MFA_STEP_INVALID)
        try:
            # The signature's own age check is a backstop; the payload's expiry is checked against `now`.
            payload = self.tokens.read(
                Purpose.SIGN_IN_MFA, token, max_age_s=int(MFA_STEP_LIFETIME.total_seconds()) + 60
            )
        except InvalidToken:
            raise Refusal(401, MFA_STEP_INVALID) from None
        user_id, organization, nonce = payload.get("u"), payload.get("o"), payload.get("n")
        expires, kind = payload.get("e"), payload.get("k")
        if (
            not isinstance(user_id, int)
            or not (organization is None or isinstance(organization, str))
            or not isinstance(nonce, str)
            or not isinstance(expires, int)
            or kind is not enrol
            or now >= datetime.fromtimestamp(expires, UTC)
        ):
            raise Refusal(401, MFA_STEP_INVALID)
        return user_id, organization, nonce

    def second_factor(
        self, token: object, code: str, *, enrol: bool, client: str, user_agent: str | None
    ) -> tuple[Granted, list[str]]:
        """The login's mfa_token and a code: a session (and, when enrolling, the new recovery codes)."""
        now = self.clock()
        user_id, organization, nonce = self._read_mfa_token(token, enrol=enrol, now=now)
        used = _used_key(nonce)
        key = throttle.mfa_key(user_id)
        with self.factory() as session:
            if session.get(UsedLink, used) is not None:
                raise Refusal(401, MFA_STEP_INVALID)
            try:
                throttle.ensure_free(session, [key], now=now)
            except throttle.TryAgain as wait:
                raise _too_many(wait) from None

        def attempt() -> tuple[Granted, list[str]]:
            with self.factory.begin() as session:
                user = session.get(User, user_id)
                if user is None or user.status != UserStatus.ACTIVE:
                    raise Refusal(401, MFA_STEP_INVALID)
                actor = Actor(name=user.email, user_id=user.id, ip=client)
                codes: list[str] = []
                if enrol:
                    try:
                        codes = totp.confirm_enrolment(session, user, code, now=now, actor=actor)
                    except totp.MfaRefused:
                        raise _WrongCode from None
                elif not totp.verify(session, user, code, now=now, actor=actor):
                    raise _WrongCode
                _spend(session, used, now + MFA_STEP_LIFETIME)
                throttle.succeeded(session, key, now=now)
                return self._start(session, user, organization, mfa=True, now=now, ip=client, agent=user_agent), codes

        try:
            return retry_conflicts(attempt)
        except _WrongCode:  # its transaction rolled back: nothing of the attempt stays but the count
            self._failed((key,), user_id, "second factor", now, client)
            raise Refusal(401, INVALID_CODE) from None

    def begin_enrolment(self, user_id: int, *, sid: str | None) -> totp.Enrolment:
        now = self.clock()

        def attempt() -> totp.Enrolment:  # reads, then writes: run again after a lock conflict
            with self.factory.begin() as session:
                if sid is not None and not sessions.is_active(session, sid, now=now):
                    raise _sign_in_again()
                user = session.get(User, user_id)
                if user is None or user.status != UserStatus.ACTIVE:
                    raise _sign_in_again()
                try:
                    return totp.begin_enrolment(session, user, now=now)
                except totp.MfaRefused as refused:
                    raise Refusal(409, str(refused)) from None

        return retry_conflicts(attempt)

    def begin_enrolment_by_token(self, token: object) -> totp.Enrolment:
        user_id, _, nonce = self._read_mfa_token(token, enrol=True, now=self.clock())
        with self.factory() as session:
            if session.get(UsedLink, _used_key(nonce)) is not None:
                raise Refusal(401, MFA_STEP_INVALID)
        return self.begin_enrolment(user_id, sid=None)

    def confirm_enrolment(self, principal: Principal, code: str, *, client: str) -> list[str]:
        now = self.clock()
        key = throttle.mfa_key(principal.user_id)
        with self.factory() as session:
            try:
                throttle.ensure_free(session, [key], now=now)
            except throttle.TryAgain as wait:
                raise _too_many(wait) from None

        def attempt() -> list[str]:
            with self.factory.begin() as session:
                if principal.session_id is None or not sessions.is_active(session, principal.session_id, now=now):
                    raise _sign_in_again()
                user = session.get(User, principal.user_id)
                if user is None:
                    raise _sign_in_again()
                try:
                    return totp.confirm_enrolment(session, user, code, now=now, actor=Actor.of(principal, ip=client))
                except totp.MfaRefused as refused:
                    raise Refusal(400, str(refused)) from None

        try:
            return retry_conflicts(attempt)
        except Refusal as refused:
            if refused.status == 400 and user_has_secret(self.factory, principal.user_id):
                self._failed((key,), principal.user_id, "enrolment code", now, client)  # a guessed code counts
            raise

    # --- the session ------------------------------------------------------------------------------------

    def refresh(self, token: str, *, client: str, sid_check: Callable[[str], bool] | None = None) -> Granted:
        """Rotate `token`; `sid_check` (the CSRF token's session) must accept the session, else 403 and
        nothing changes."""
        now = self.clock()
        with self.factory() as session:
            try:
                issued = sessions.refresh(session, token, now=now, ip=client)
            except sessions.SessionRefused as refused:
                log.info("refresh refused: %s", refused.reason)
                raise _sign_in_again() from None
            if sid_check is not None and not sid_check(issued.session_row.sid):
                session.rollback()
                raise Refusal(403, CSRF_REFUSED)
            granted = Granted.of(issued)
            session.commit()
        return granted

    def logout(self, principal: Principal, *, client: str, everywhere: bool) -> None:
        now = self.clock()
        if principal.session_id is None:
            raise Refusal(403, NOT_A_SESSION)
        if everywhere and principal.impersonated:
            raise Refusal(403, NOT_WHILE_IMPERSONATING)
        actor = Actor.of(principal, ip=client)
        sid = principal.session_id

        def attempt() -> None:  # reads, then writes: SQLite refuses it at once when a writer came between
            with self.factory.begin() as session:
                if everywhere:
                    sessions.revoke_all(session, principal.user_id, now=now, actor=actor)
                sessions.revoke(session, sid, reason="logout", now=now, actor=actor)

        retry_conflicts(attempt)


def user_has_secret(factory: sessionmaker[Session], user_id: int) -> bool:
    with factory() as session:
        return session.scalar(select(User.mfa_secret).where(User.id == user_id)) is not None


def _used_key(nonce: str) -> str:
    return hashlib.sha256(f"{Purpose.SIGN_IN_MFA.value}:{nonce}".encode()).hexdigest()


def _spend(session: Session, used: str, expires_at: datetime) -> None:
    try:
        with session.begin_nested():
            session.add(UsedLink(token_hash=used, used_at=expires_at - MFA_STEP_LIFETIME, expires_at=expires_at))
    except IntegrityError:
        raise Refusal(401, MFA_STEP_INVALID) from None


def _organization_for(session: Session, user: User, wanted: str | None) -> str | None:
    """The organization a sign-in acts in: the one asked for (a membership), else the member's first by
    name, else none for a platform admin."""
    names = list(
        session.scalars(
            select(Membership.organization).where(Membership.user_id == user.id).order_by(Membership.organization)
        )
    )
    if wanted is not None:
        if wanted in names:
            return wanted
        raise Refusal(403, NOT_A_MEMBER)
    if names:
        return names[0]
    if user.platform_admin:
        return None
    raise Refusal(403, NO_ORGANIZATION)


# --- HTTP --------------------------------------------------------------------------------------------


def set_session_cookies(response: Response, granted: Granted, *, now: datetime, csrf: str | None = None) -> str:
    """The access, refresh and CSRF cookies of `granted` on `response`; the CSRF token."""
    names = credentials.cookie_names()
    csrf = csrf or credentials.csrf_token(granted.sid)
    access_age = max(1, int((granted.access_expires_at - now).total_seconds()))
    session_age = max(1, int((granted.session_expires_at - now).total_seconds()))
    common: dict[str, Any] = {"path": "/", "secure": names.secure, "samesite": "strict"}
    response.set_cookie(names.access, granted.access_token, max_age=access_age, httponly=True, **common)
    response.set_cookie(names.refresh, granted.refresh_token, max_age=session_age, httponly=True, **common)
    response.set_cookie(names.csrf, csrf, max_age=session_age, httponly=False, **common)  # the page reads it
    return csrf


def clear_session_cookies(response: Response) -> None:
    names = credentials.cookie_names()
    for name, http_only in ((names.access, True), (names.refresh, True), (names.csrf, False)):
        response.delete_cookie(name, path="/", secure=names.secure, httponly=http_only, samesite="strict")


def session_fields(granted: Granted, *, cookies: bool, now: datetime) -> tuple[dict[str, Any], str | None]:
    """A session's fields in /api/v1/auth's (OAuth 2.0's) names, and the CSRF token when it travels in
    cookies: for a browser, the CSRF token in the body; for an API client, both tokens, never a cookie.
    ``access_expires_at`` is left a datetime for the caller's format."""
    body: dict[str, Any] = {**who(granted.principal), "access_expires_at": granted.access_expires_at}
    csrf = credentials.csrf_token(granted.sid) if cookies else None
    if csrf is not None:
        body["csrf_token"] = csrf
    else:
        body.update(
            access_token=granted.access_token,
            refresh_token=granted.refresh_token,
            token_type="Bearer",  # noqa: S106 - the scheme's name
            expires_in=max(1, int((granted.access_expires_at - now).total_seconds())),
        )
    return body, csrf


def session_answer(
    granted: Granted, body: Mapping[str, Any], csrf: str | None, *, now: datetime, status: int = 200
) -> JSONResponse:
    """`body` as the answer, with the session's cookies when its CSRF token travels in them."""
    response = JSONResponse(dict(body), status, headers=_HEADERS)
    if csrf is not None:
        set_session_cookies(response, granted, now=now, csrf=csrf)
    return response


def session_response(
    granted: Granted, *, cookies: bool, now: datetime, extra: Mapping[str, Any] | None = None
) -> JSONResponse:
    """A signed-in session as /api/v1/auth answers it (:func:`session_fields`, and `extra`)."""
    body, csrf = session_fields(granted, cookies=cookies, now=now)
    body["access_expires_at"] = granted.access_expires_at.isoformat()
    return session_answer(granted, {**body, **(extra or {})}, csrf, now=now)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await read_body(request)
    if raw is None:
        raise Refusal(413, "The request body is too large.")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise Refusal(400, BODY_NOT_JSON) from None
    if not isinstance(body, dict):
        raise Refusal(400, BODY_NOT_JSON)
    return body


def text_field(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise Refusal(400, f"{name} is required.")
        return None
    if not isinstance(value, str):
        raise Refusal(400, f"{name} must be text.")
    if required and not value:
        raise Refusal(400, f"{name} is required.")
    return value


def flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise Refusal(400, f"{name} must be true or false.")
    return value


# Where /login may send a person once signed in (`?next=`): our own pages, never another host.
AFTER_SIGN_IN: Final = ("/console", "/account")


def after_sign_in(target: str | None) -> str | None:
    """`target` when it is a path of the console or the account page (not `//host`, not a scheme)."""
    if not target or not target.startswith(AFTER_SIGN_IN) or "\\" in target or "//" in target:
        return None
    path = target.split("?", 1)[0].split("#", 1)[0]
    if path not in AFTER_SIGN_IN and not path.startswith(tuple(f"{prefix}/" for prefix in AFTER_SIGN_IN)):
        return None  # /consoleevil, /accounts
    return target


def page(template: str, status: int = 200, /, **context: Any) -> HTMLResponse:
    return HTMLResponse(_TEMPLATES.get_template(template).render(**context), status, headers=LINK_PAGE_HEADERS)


def auth_routes(
    factory: sessionmaker[Session],
    *,
    clock: Callable[[], datetime] = utcnow,
    tokens: Tokens | None = None,
    mfa_required: MfaRequired = requires_mfa,
) -> list[Route]:
    """The sign-in endpoints and pages (see the module docstring)."""
    api = AuthApi(SignIn(factory, clock=clock, tokens=tokens, mfa_required=mfa_required))
    pages = AuthPages(api.sign_in, tokens or Tokens())
    return [
        Route("/api/v1/auth/login", _answering(api.login), methods=["POST"]),
        Route("/api/v1/auth/mfa", _answering(api.mfa), methods=["POST"]),
        Route("/api/v1/auth/mfa/enrol", _answering(api.mfa_enrol), methods=["POST"]),
        Route("/api/v1/auth/mfa/confirm", _answering(api.mfa_confirm), methods=["POST"]),
        Route("/api/v1/auth/refresh", _answering(api.refresh), methods=["POST"]),
        Route("/api/v1/auth/logout", _answering(api.logout), methods=["POST"]),
        Route("/api/v1/auth/logout-everywhere", _answering(api.logout_everywhere), methods=["POST"]),
        Route("/api/v1/auth/me", _answering(api.me), methods=["GET"]),
        Route("/setup/{token}", pages.link(Purpose.SETUP), methods=["GET", "POST"]),
        Route("/invite/{token}", pages.link(Purpose.INVITE), methods=["GET", "POST"]),
        Route("/reset/{token}", pages.link(Purpose.RESET), methods=["GET", "POST"]),
        Route("/login", pages.login, methods=["GET", "POST"]),
        Route("/reset-request", pages.reset_request, methods=["GET", "POST"]),
    ]


Handler = Callable[[Request], Awaitable[Response]]


def _answering(handler: Handler) -> Handler:
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except Refusal as refused:
            return problem(refused.status, refused.detail, refused.headers)

    return answer


def _client(request: Request) -> tuple[str, str | None]:
    return client_key(request), request.headers.get("user-agent")


class AuthApi:
    """The JSON endpoints; each raises Refusal for a problem answer."""

    def __init__(self, sign_in: SignIn) -> None:
        self.sign_in = sign_in
        self.factory = sign_in.factory
        self.clock = sign_in.clock

    async def caller(self, request: Request, *, changes: bool) -> credentials.Caller:
        cookies = dict(request.cookies)
        try:
            caller = await run_in_threadpool(
                credentials.identify, request.headers, cookies, self.factory, now=self.clock()
            )
        except credentials.NoCredentials:
            raise _not_signed_in() from None
        except credentials.BadCredentials as refused:
            log.info("credentials refused: %s", refused.reason)
            raise _sign_in_again() from None
        if changes and not credentials.csrf_ok(caller, request.headers, cookies):
            raise Refusal(403, CSRF_REFUSED)
        return caller

    async def login(self, request: Request) -> Response:
        body = await json_body(request)
        email = text_field(body, "email") or ""
        password = text_field(body, "password") or ""
        organization = text_field(body, "organization", required=False)
        cookies = flag(body, "use_cookies")
        client, agent = _client(request)
        step = await run_in_threadpool(
            self.sign_in.password, email, password, organization, client=client, user_agent=agent
        )
        if step.granted is not None:
            return session_response(step.granted, cookies=cookies, now=self.clock())
        key = "mfa_enrolment_required" if step.enrol else "mfa_required"
        return JSONResponse({key: True, "mfa_token": step.mfa_token}, headers=_HEADERS)

    async def mfa(self, request: Request) -> Response:
        body = await json_body(request)
        code = text_field(body, "code") or ""
        client, agent = _client(request)
        granted, _ = await run_in_threadpool(
            self.sign_in.second_factor, body.get("mfa_token"), code, enrol=False, client=client, user_agent=agent
        )
        return session_response(granted, cookies=flag(body, "use_cookies"), now=self.clock())

    async def refresh(self, request: Request) -> Response:
        cookie = request.cookies.get(credentials.cookie_names().refresh)
        client = client_key(request)
        if cookie:
            presented = credentials.csrf_presented(request.headers, dict(request.cookies))
            if presented is None:
                raise Refusal(403, CSRF_REFUSED)
            granted = await run_in_threadpool(
                self.sign_in.refresh,
                cookie,
                client=client,
                sid_check=lambda sid: credentials.csrf_belongs(presented, sid),
            )
            return session_response(granted, cookies=True, now=self.clock())
        body = await json_body(request)
        token = body.get("refresh_token")
        if not isinstance(token, str) or not token:
            raise Refusal(400, NO_REFRESH_TOKEN)
        granted = await run_in_threadpool(self.sign_in.refresh, token, client=client)
        return session_response(granted, cookies=False, now=self.clock())

    async def _logout(self, request: Request, *, everywhere: bool) -> Response:
        caller = await self.caller(request, changes=True)
        await run_in_threadpool(
            self.sign_in.logout, caller.principal, client=client_key(request), everywhere=everywhere
        )
        response = JSONResponse({"signed_out": True}, headers=_HEADERS)
        clear_session_cookies(response)
        return response

    async def logout(self, request: Request) -> Response:
        return await self._logout(request, everywhere=False)

    async def logout_everywhere(self, request: Request) -> Response:
        return await self._logout(request, everywhere=True)

    async def me(self, request: Request) -> Response:
        caller = await self.caller(request, changes=False)
        return JSONResponse(who(caller.principal), headers=_HEADERS)

    async def own_mfa(self, request: Request) -> Principal:
        """The signed-in caller, when they may change their own two-factor authentication."""
        principal = (await self.caller(request, changes=True)).principal
        try:
            policy.require(principal, policy.Action.SELF_MFA, organization=None)
        except policy.Denied as refused:
            raise Refusal(refused.status, str(refused)) from None
        if principal.session_id is None:
            raise Refusal(403, NOT_A_SESSION)
        return principal

    async def mfa_enrol(self, request: Request) -> Response:
        body = await json_body(request)
        if "mfa_token" in body:  # an organization requires it: enrolment before any session
            enrolment = await run_in_threadpool(self.sign_in.begin_enrolment_by_token, body["mfa_token"])
        else:
            principal = await self.own_mfa(request)
            enrolment = await run_in_threadpool(
                self.sign_in.begin_enrolment, principal.user_id, sid=principal.session_id
            )
        body = {"uri": enrolment.uri, "secret": enrolment.secret_text, "qr_svg": enrolment.qr_svg}
        return JSONResponse(body, headers=_HEADERS)

    async def mfa_confirm(self, request: Request) -> Response:
        body = await json_body(request)
        code = text_field(body, "code") or ""
        client, agent = _client(request)
        if "mfa_token" in body:
            granted, codes = await run_in_threadpool(
                self.sign_in.second_factor, body["mfa_token"], code, enrol=True, client=client, user_agent=agent
            )
            extra = {"recovery_codes": codes}
            return session_response(granted, cookies=flag(body, "use_cookies"), now=self.clock(), extra=extra)
        principal = await self.own_mfa(request)
        codes = await run_in_threadpool(self.sign_in.confirm_enrolment, principal, code, client=client)
        return JSONResponse({"recovery_codes": codes}, headers=_HEADERS)


async def form_fields(request: Request) -> dict[str, str]:
    raw = await read_body(request)
    if raw is None:
        return {}
    return {name: values[0] for name, values in read_form(raw).items()}


class AuthPages:
    """The pages: a form on GET (changing nothing), the action on POST."""

    def __init__(self, sign_in: SignIn, tokens: Tokens) -> None:
        self.sign_in = sign_in
        self.factory = sign_in.factory
        self.clock = sign_in.clock
        self.tokens = tokens

    def link(self, purpose: Purpose) -> Handler:
        async def handler(request: Request) -> Response:
            return await self._link(request, purpose)

        return handler

    def _check(self, purpose: Purpose, token: str) -> accounts.LinkTarget:
        with self.factory() as session:
            return accounts.check_link(session, purpose, token, now=self.clock(), tokens=self.tokens)

    def _use(self, purpose: Purpose, token: str, form: dict[str, str], ip: str) -> None:
        now = self.clock()

        def attempt() -> None:  # reads, then writes: run again after a lock conflict
            with self.factory.begin() as session:
                target = accounts.check_link(session, purpose, token, now=now, tokens=self.tokens)
                if target.user is None:
                    accounts.claim_first_admin(
                        session,
                        token,
                        email=form.get("email", ""),
                        display_name=form.get("name", ""),
                        password=form.get("password", ""),
                        now=now,
                        tokens=self.tokens,
                        ip=ip,
                    )
                else:
                    password = form.get("password", "")
                    accounts.use_link(session, purpose, token, password, now=now, tokens=self.tokens, ip=ip)

        retry_conflicts(attempt)

    async def _link(self, request: Request, purpose: Purpose) -> Response:
        token = str(request.path_params["token"])
        try:
            target = await run_in_threadpool(self._check, purpose, token)
        except accounts.AccountError as refused:
            return page("link.html", 400, purpose=purpose.value, invalid=str(refused))
        shown: dict[str, Any] = {"purpose": purpose.value, "first": target.user is None}
        shown["email"] = None if target.user is None else target.user.email
        if request.method == "GET":
            return page("link.html", **shown)
        form = await form_fields(request)
        if form.get("password", "") != form.get("password_again", form.get("password", "")):
            return page("link.html", 400, error=PASSWORDS_DIFFER, **shown)
        try:
            await run_in_threadpool(self._use, purpose, token, form, client_key(request))
        except accounts.AccountError as refused:
            return page("link.html", 400, error=str(refused), **shown)
        return page("link.html", purpose=purpose.value, done=True)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return page("login.html", sso=sign_in_links(), next=after_sign_in(request.query_params.get("next")))
        form = await form_fields(request)
        target = after_sign_in(form.get("next"))
        client, agent = _client(request)
        codes: list[str] = []
        enrolling = form.get("enrol") == "1"
        try:
            if form.get("mfa_token"):
                granted, codes = await run_in_threadpool(
                    self.sign_in.second_factor,
                    form["mfa_token"],
                    form.get("code", ""),
                    enrol=enrolling,
                    client=client,
                    user_agent=agent,
                )
                step = Step(granted=granted)
            else:
                step = await run_in_threadpool(
                    self.sign_in.password,
                    form.get("email", ""),
                    form.get("password", ""),
                    form.get("organization") or None,
                    client=client,
                    user_agent=agent,
                )
        except Refusal as refused:
            # A wrong code keeps the secret being set up (a new one would void the one just scanned).
            shown: dict[str, Any] = {"mfa_token": form.get("mfa_token"), "enrol": enrolling, "next": target}
            response = page("login.html", refused.status, error=refused.detail, sso=sign_in_links(), **shown)
            response.headers.update(refused.headers)
            return response
        if step.granted is None:
            enrolment = await self._enrolment(step.mfa_token) if step.enrol else None
            shown = {"mfa_token": step.mfa_token, "enrol": step.enrol, "enrolment": enrolment, "next": target}
            return page("login.html", **shown)
        done: Response
        if target and not codes:  # recovery codes are shown once, here: never skipped by a redirect
            done = RedirectResponse(target, 303, headers=LINK_PAGE_HEADERS)
        else:
            done = page("login.html", signed_in=who(step.granted.principal), recovery_codes=codes, next=target)
        set_session_cookies(done, step.granted, now=self.clock())
        return done

    async def _enrolment(self, mfa_token: str | None) -> totp.Enrolment | None:
        """The authenticator set-up of a sign-in whose organization requires two-factor authentication
        (a new secret each time the page is shown: only the confirmed one counts)."""
        try:
            return await run_in_threadpool(self.sign_in.begin_enrolment_by_token, mfa_token)
        except Refusal:
            return None

    def _ask(self, email: str, ip: str) -> str:
        def attempt() -> str:  # reads, then writes: run again after a lock conflict
            with self.factory.begin() as session:
                return accounts.request_reset(session, email, now=self.clock(), tokens=self.tokens, ip=ip)

        return retry_conflicts(attempt)

    async def reset_request(self, request: Request) -> Response:
        if request.method == "GET":
            return page("reset_request.html")
        form = await form_fields(request)
        try:
            answer = await run_in_threadpool(self._ask, form.get("email", ""), client_key(request))
        except accounts.AccountError as refused:
            return page("reset_request.html", 400, error=str(refused))
        return page("reset_request.html", answer=answer)
