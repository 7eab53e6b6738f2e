"""The bad-input table of signing in and sessions (issue 15's acceptance): one row per refusal, each driven
over HTTP through the real app (`create_app` with `sign_in=True`) on SQLite and MariaDB.

Every row arranges a small world with `spectra.auth`'s own functions (two organizations, their members, a
platform admin, then what the row needs: sessions, TOTP enrolments, links, impersonations, API tokens,
throttle counts), makes ONE request, and checks the exact answer (status, the problem's detail or the
page as the app renders it, WWW-Authenticate and Retry-After where they matter) and that the store is as
it was but for what the refusal is meant to add (tests.support.snapshots: the failure's audit record,
throttle counts, the session a reused refresh token revokes).

The classes of rows:
- passwords: wrong password, unknown email, disabled and invited accounts (one answer for all), another
  tenant's organization; the JSON endpoint and the /login form;
- throttling: the right password (or code) still refused once an account, an unknown address, a client
  address or a second factor has failed N times, with "try again in N s" and Retry-After;
- reset requests: known, unknown and disabled addresses get the same page;
- second factor: wrong code, a code reused in its step, codes outside the window, a recovery code reused
  or of another user, the step token tampered, reused, expired, of the other kind, or its user disabled;
- access tokens (JWT): alg none in either case, an HS512 or RS256 header, an embedded key, another key,
  an unknown or missing kid, expired, org / role / platform-admin / act claims changed, another audience,
  no credentials, a bad access cookie;
- refresh tokens: reused after rotation (the session is revoked), the family after that, after logout
  and sign out everywhere, the user disabled or removed, idle and absolute timeouts, garbage;
- CSRF on cookie requests: missing, of another session (header or both), differing from its cookie,
  tampered, on refresh (which then rotates nothing);
- impersonation: MFA changes, API tokens, sign out everywhere and starting another impersonation while
  impersonating, impersonating a platform admin, an impersonation's session and access token after it
  expired or was ended (on the admin endpoints too, which check the session);
- admin and platform endpoints: a user on an organization admin's endpoints, an admin's read-only API
  token, CSRF by cookie, a disabled admin's still-valid access token, an organization admin on the
  platform endpoints (tenants, global maintenance, impersonation), another tenant's member, members,
  audit log and token id (404);
- API tokens: on the session endpoints, and on /api/v1/monitors revoked, expired, of a disabled owner or
  a removed member, malformed, unknown, without the scope;
- links: invitation and reset links tampered, of another purpose, reused, expired, for a user since
  disabled, superseded by a later password.

Time is the real clock: `create_app` reads it, so "expired" is arranged in the past with wide margins
(minutes, never seconds), and a throttle's wait is checked against the clock read around the request.
A new endpoint's refusals are new rows: a `Case` whose arrange builds on `make_world` with the World's
methods and returns the one request. A row that shows a product bug is marked xfail (strict) with why.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, Final, Protocol

import httpx
import jwt
import pyotp
import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import access_tokens, accounts, api_tokens, impersonation, policy, sessions, throttle, totp
from spectra.auth.identity import Actor, Principal
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import Readiness
from spectra.store import Role, utcnow
from spectra.store.accounts import ApiToken, Membership, Throttle, User, UserSession, UserStatus
from spectra.tokens import Purpose
from spectra.web import auth_routes as routes
from spectra.web import credentials
from spectra.web.app import AppParts, create_app
from spectra.web.bearer import REALM
from tests.factories.accounts import organization_resource
from tests.support.snapshots import Added, AnyChange, Change, Snapshot, Updated, snapshot, unexpected_changes
from tests.support.web import GOOD, PROBLEM, Client, good_hash
from tests.web.test_auth_routes import forged

ADA: Final = "ada@acme.example"  # a user of acme
ROOT: Final = "root@acme.example"  # acme's admin
EVE: Final = "eve@globex.example"  # a user of globex
OPS: Final = "ops@platform.example"  # a platform admin, a member of nothing
NOBODY: Final = "nobody@acme.example"  # no account
CLIENT: Final = "127.0.0.1"  # the test client's address (httpx's ASGI transport)
NEW_PASSWORD: Final = "quiet-lantern-harbour-47"
REASON: Final = "ticket 4711: the customer cannot see their monitors"

INVALID_TOKEN: Final = f'{REALM}, error="invalid_token"'
NO_API_TOKEN: Final = str(api_tokens.InvalidApiToken("any"))


@pytest.fixture(autouse=True)
def _plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPECTRA_PUBLIC_URL", raising=False)  # cookie names without __Host-


# --- the world ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    """A session as its client holds it."""

    access: str
    refresh: str
    sid: str
    principal: Principal

    @classmethod
    def of(cls, issued: sessions.Issued) -> Signed:
        return cls(issued.access_token, issued.refresh_token, issued.session_row.sid, issued.principal)


@dataclass
class World:
    """The store a row arranges, made only by spectra.auth's functions; `now` is when it was made."""

    sessions: sessionmaker[Session]
    now: datetime
    secrets: dict[str, str] = field(default_factory=dict)
    recovery: dict[str, list[str]] = field(default_factory=dict)
    locked_until: datetime | None = None

    def add(
        self,
        email: str,
        organization: str | None,
        role: Role = Role.USER,
        *,
        platform_admin: bool = False,
        status: UserStatus = UserStatus.ACTIVE,
    ) -> None:
        with self.sessions.begin() as session:
            user = User(
                email=email,
                password_hash=None if status == UserStatus.INVITED else good_hash(),
                status=status,
                platform_admin=platform_admin,
            )
            if organization is not None:
                user.memberships.append(Membership(organization=organization, role=role))
            session.add(user)

    def user_id(self, email: str) -> int:
        with self.sessions() as session:
            user = accounts.find_user(session, email)
            assert user is not None
            return user.id

    def sign_in(self, email: str, *, at: datetime | None = None) -> Signed:
        with self.sessions.begin() as session:
            user = accounts.find_user(session, email)
            assert user is not None
            organization = next((m.organization for m in sorted(user.memberships, key=lambda m: m.organization)), None)
            issued = sessions.start(
                session,
                user,
                organization=organization,
                now=at or self.now,
                mfa_verified=False,
                ip=CLIENT,
                user_agent=None,
            )
            return Signed.of(issued)

    def refresh(self, token: str, *, at: datetime | None = None) -> Signed:
        with self.sessions.begin() as session:
            return Signed.of(sessions.refresh(session, token, now=at or self.now))

    def sign_out(self, signed: Signed, *, everywhere: bool = False) -> None:
        with self.sessions.begin() as session:
            if everywhere:
                sessions.revoke_all(session, signed.principal.user_id, now=self.now)
            else:
                sessions.revoke(session, signed.sid, reason="logout", now=self.now)

    def disable(self, email: str) -> None:
        with self.sessions.begin() as session:
            assert accounts.disable(session, email, actor=Actor.system("cli"), now=self.now)

    def remove(self, email: str, organization: str) -> None:
        with self.sessions.begin() as session:
            accounts.remove_member(session, email, organization, actor=Actor.system("cli"), now=self.now)

    # Two-factor authentication.

    def enrol(self, email: str) -> None:
        """TOTP on, confirmed with the code of the step before now (now's is then still unused)."""
        with self.sessions.begin() as session:
            user = accounts.find_user(session, email)
            assert user is not None
            secret = totp.begin_enrolment(session, user, now=self.now).secret_text.replace(" ", "")
            self.secrets[email] = secret
            previous = pyotp.TOTP(secret).at(self.now - timedelta(seconds=totp.STEP_SECONDS))
            self.recovery[email] = totp.confirm_enrolment(session, user, previous, now=self.now)

    def code(self, email: str, *, at: datetime | None = None) -> str:
        return pyotp.TOTP(self.secrets[email]).at(at or self.now)

    def wrong_code(self, email: str) -> str:
        """A code of none of the steps near now (the window either side, and a step more for the clock)."""
        near = {self.code(email, at=self.now + timedelta(seconds=s * totp.STEP_SECONDS)) for s in range(-3, 4)}
        return next(code for code in (f"{n:06d}" for n in range(1_000_000)) if code not in near)

    def use_code(self, email: str, code: str) -> None:
        with self.sessions.begin() as session:
            user = accounts.find_user(session, email)
            assert user is not None
            assert totp.verify(session, user, code, now=self.now)

    def mfa_step(self, email: str, *, at: datetime | None = None, enrol: bool = False) -> str:
        """The mfa_token a right password leads to (as POST /api/v1/auth/login answers it)."""
        sign_in = routes.SignIn(
            self.sessions, clock=lambda: at or self.now, mfa_required=lambda _session, _organization: enrol
        )
        step = sign_in.password(email, GOOD, None, client=CLIENT, user_agent=None)
        assert step.mfa_token is not None
        return step.mfa_token

    def finish_mfa(self, token: str, code: str) -> None:
        routes.SignIn(self.sessions, clock=lambda: self.now).second_factor(
            token, code, enrol=False, client=CLIENT, user_agent=None
        )

    # Links, impersonation, API tokens, throttles.

    def link(self, purpose: Purpose, email: str, *, at: datetime | None = None) -> str:
        with self.sessions.begin() as session:
            user = accounts.find_user(session, email)
            assert user is not None
            return accounts.make_link_token(purpose, user, now=at or self.now)

    def use_link(self, purpose: Purpose, token: str) -> None:
        with self.sessions.begin() as session:
            accounts.use_link(session, purpose, token, NEW_PASSWORD, now=self.now)

    def impersonate(self, email: str, *, at: datetime | None = None, minutes: int = 30) -> Signed:
        """OPS signs in and impersonates `email` in acme, at `at`."""
        staff = self.sign_in(OPS, at=at)
        with self.sessions.begin() as session:
            issued = impersonation.start(
                session,
                staff.principal,
                email,
                "acme",
                reason=REASON,
                minutes=minutes,
                now=at or self.now,
                ip=CLIENT,
                user_agent=None,
            )
            return Signed.of(issued)

    def end_impersonation(self, signed: Signed) -> None:
        with self.sessions.begin() as session:
            row = sessions_row(session, signed.sid)
            assert row.impersonation_id is not None
            assert impersonation.end(session, row.impersonation_id, actor=Actor.system("cli"), now=self.now)

    def api_token(
        self,
        email: str,
        *scopes: str,
        at: datetime | None = None,
        expires_at: datetime | None = None,
        revoked: bool = False,
    ) -> str:
        """A token of `email`'s membership (made at `at`)."""
        with self.sessions.begin() as session:
            user = accounts.find_user(session, email)
            assert user is not None
            (membership,) = user.memberships
            owner = Principal(
                user_id=user.id, email=user.email, organization=membership.organization, role=Role(membership.role)
            )
            made = at or self.now
            text, row = api_tokens.create(
                session, owner, name="ci", scopes=scopes or ("read",), expires_at=expires_at, now=made
            )
            if revoked:
                api_tokens.revoke(session, owner, row.id, now=made)
            return text

    def token_id(self, text: str) -> int:
        with self.sessions() as session:
            found = session.scalar(select(ApiToken.id).where(ApiToken.token_hash == api_tokens.digest(text)))
            assert found is not None
            return found

    def fail(self, key: str, times: int) -> None:
        """`times` failures counted under `key` now; the wait they set is `locked_until`."""
        for _ in range(times):
            with self.sessions.begin() as session:
                throttle.failed(session, [key], now=self.now)
        with self.sessions() as session:
            self.locked_until = session.scalar(select(func.max(Throttle.locked_until)))
        assert self.locked_until is not None


def sessions_row(session: Session, sid: str) -> UserSession:
    return session.scalars(select(UserSession).where(UserSession.sid == sid)).one()


def make_world(sessions: sessionmaker[Session]) -> World:
    """Two organizations (acme, globex), their members and a platform admin."""
    world = World(sessions, utcnow())
    with sessions.begin() as session:
        organization_resource(session, "acme", ["acme-prod"])
        organization_resource(session, "globex", ["globex-prod"])
    world.add(ADA, "acme")
    world.add(ROOT, "acme", Role.ADMIN)
    world.add(EVE, "globex")
    world.add(OPS, None, platform_admin=True)
    return world


# --- one request ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    json: Mapping[str, Any] | None = None
    form: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def send(self, client: Client) -> httpx.Response:
        options: dict[str, Any] = {"headers": dict(self.headers)}
        if self.json is not None:
            options["json"] = dict(self.json)
        if self.form is not None:
            options["data"] = dict(self.form)
        return client.portal.call(functools.partial(client.client.request, self.method, self.path, **options))


def post(path: str, body: Mapping[str, Any] | None = None, /, **headers: str) -> Request:
    return Request("POST", path, json=body, headers=headers)


def get(path: str, /, **headers: str) -> Request:
    return Request("GET", path, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(email: str, password: str = GOOD, **more: Any) -> Request:
    return post("/api/v1/auth/login", {"email": email, "password": password, **more})


def second_step(token: str, code: str) -> Request:
    return post("/api/v1/auth/mfa", {"mfa_token": token, "code": code})


def cookie_request(
    path: str, signed: Signed, *, csrf_cookie: str | None, csrf_header: str | None, refresh: bool = True
) -> Request:
    """A browser's POST: the session's cookies, and the CSRF cookie and header as given (None: absent)."""
    names = credentials.cookie_names()
    jar = {names.access: signed.access}
    if refresh:
        jar[names.refresh] = signed.refresh
    if csrf_cookie is not None:
        jar[names.csrf] = csrf_cookie
    headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in jar.items())}
    if csrf_header is not None:
        headers["X-CSRF-Token"] = csrf_header
    return Request("POST", path, headers=headers)


def link_page(purpose: Purpose, token: str, *, submit: bool = False) -> Request:
    path = f"/{accounts.LINK_PATHS[purpose]}/{token}"
    if submit:
        return Request("POST", path, form={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    return Request("GET", path)


def tampered(token: str) -> str:
    """The token with the first character of its signature (after the last dot) changed. Not the last
    character: base64's last one carries padding bits, and a change only there may decode the same."""
    at = token.rindex(".") + 1
    return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]


# --- access tokens made wrong on purpose -------------------------------------------------------------


Digest = Callable[[], Any]  # a hashlib constructor


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def compact(
    header: Mapping[str, Any], claims: Mapping[str, Any], key: bytes | None, digest: Digest = hashlib.sha256
) -> str:
    """A JWS with exactly this header (PyJWT makes `alg` agree with the signature), HMAC-signed with `key`
    (SHA-256 unless `digest` says), or unsigned."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = "" if key is None else _b64(hmac.new(key, signing_input.encode(), digest).digest())
    return f"{signing_input}.{signature}"


def with_header(token: str, digest: Digest = hashlib.sha256, **header: Any) -> str:
    """`token`'s claims under `header` (kid kept unless given), signed with the real key."""
    key = access_tokens.current_keys().signing
    return compact({"alg": "HS256", "typ": "JWT", "kid": key.kid, **header}, claims_of(token), key.secret, digest)


def with_claims(token: str, **changes: Any) -> str:
    """`token` with claims changed and its own header and signature kept."""
    header, _, signature = token.split(".")
    body = _b64(json.dumps({**claims_of(token), **changes}).encode())
    return f"{header}.{body}.{signature}"


def signed_claims(token: str, **changes: Any) -> str:
    """`token` with claims changed and signed again with the real key (what only the server can make)."""
    key = access_tokens.current_keys().signing
    return jwt.encode({**claims_of(token), **changes}, key.secret, algorithm="HS256", headers={"kid": key.kid})


# --- what the answer must be -------------------------------------------------------------------------------


class Expected(Protocol):
    def check(self, answer: httpx.Response, world: World, sent: tuple[datetime, datetime]) -> None: ...


def _headers(answer: httpx.Response, headers: Mapping[str, str | None]) -> None:
    for name, value in headers.items():
        assert answer.headers.get(name) == value, (name, answer.headers.get(name))
    assert "set-cookie" not in answer.headers  # a refusal hands out no cookie


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem answer with this exact detail."""

    status: int
    detail: str
    headers: Mapping[str, str | None] = field(default_factory=dict)

    def check(self, answer: httpx.Response, world: World, sent: tuple[datetime, datetime]) -> None:
        assert answer.status_code == self.status, answer.text
        assert answer.headers["content-type"] == PROBLEM
        title = HTTPStatus(self.status).phrase
        assert answer.json() == {"type": "about:blank", "title": title, "status": self.status, "detail": self.detail}
        assert answer.headers["cache-control"] == "no-store"
        _headers(answer, self.headers)


@dataclass(frozen=True)
class Page:
    """A server-rendered page, exactly as the app renders `template` with `context`."""

    status: int
    template: str
    context: Mapping[str, Any]
    headers: Mapping[str, str | None] = field(default_factory=dict)

    def check(self, answer: httpx.Response, world: World, sent: tuple[datetime, datetime]) -> None:
        assert answer.status_code == self.status, answer.text
        assert answer.text == bytes(routes.page(self.template, self.status, **self.context).body).decode()
        _headers(answer, self.headers)


@dataclass(frozen=True)
class Error:
    """The monitor API's JSON error."""

    status: int
    error: str
    headers: Mapping[str, str | None] = field(default_factory=dict)

    def check(self, answer: httpx.Response, world: World, sent: tuple[datetime, datetime]) -> None:
        assert answer.status_code == self.status, answer.text
        assert answer.json() == {"error": self.error}
        _headers(answer, self.headers)


@dataclass(frozen=True)
class TooMany:
    """429: the wait the world's failures set, in whole seconds as the server's clock saw it (somewhere
    between just before and just after the request), the same number in the text and Retry-After."""

    page: bool = False

    def check(self, answer: httpx.Response, world: World, sent: tuple[datetime, datetime]) -> None:
        assert world.locked_until is not None
        retry = int(answer.headers["retry-after"])
        first, last = sent
        assert math.ceil((world.locked_until - last).total_seconds()) <= retry
        assert retry <= math.ceil((world.locked_until - first).total_seconds())
        text = throttle.try_again_text(retry)
        headers = {"retry-after": str(retry)}
        if self.page:
            Page(429, "login.html", {"error": text, "mfa_token": None, "enrol": False}, headers).check(
                answer, world, sent
            )
        else:
            Problem(429, text, headers).check(answer, world, sent)


def refusal(check: Callable[[], object]) -> str:
    """What the policy says when `check` refuses."""
    try:
        check()
    except policy.Denied as refused:
        return str(refused)
    raise AssertionError("allowed")


def denial(action: policy.Action, **principal: Any) -> str:
    """What the policy says to a principal like this one, in its own organization (ids and names do not
    enter its messages)."""
    who = Principal(**{"user_id": 1, "email": ADA, "organization": "acme", "role": Role.USER, **principal})
    return refusal(lambda: policy.require(who, action, organization=who.organization))


PLATFORM_ADMIN: Final = Principal(user_id=1, email=OPS, organization=None, role=None, platform_admin=True)
NOT_FOUND: Final = str(policy.NotFound())


IMPERSONATED: Final = {"session_id": "s", "impersonator_id": 2, "impersonator_email": OPS}
API_TOKEN: Final = {"scopes": frozenset({"read"}), "via": "api-token"}


# --- the answers, and what each may add --------------------------------------------------------------------


SIGN_IN_AGAIN: Final = Problem(401, sessions.SIGN_IN_AGAIN, {"www-authenticate": INVALID_TOKEN})
INVALID_LOGIN: Final = Problem(401, routes.INVALID_LOGIN, {"www-authenticate": None})
INVALID_CODE: Final = Problem(401, routes.INVALID_CODE)
STEP_INVALID: Final = Problem(401, routes.MFA_STEP_INVALID)
CSRF: Final = Problem(403, routes.CSRF_REFUSED)
BAD_API_TOKEN: Final = Error(401, NO_API_TOKEN, {"www-authenticate": INVALID_TOKEN})
RESET_PAGE: Final = Page(200, "reset_request.html", {"answer": accounts.RESET_ANSWER})


def link_refused(purpose: Purpose, message: str) -> Page:
    return Page(400, "link.html", {"purpose": purpose.value, "invalid": message})


def failed_login(email: str | None) -> tuple[Change, ...]:
    """A failed password or code: the audit record (naming only an existing account) and the counts."""
    return (Added("audit_log", {"action": "user.login_failed", "target_name": email}), AnyChange("throttles"))


TOKEN_USED: Final = (Updated("api_tokens", frozenset({"last_used_at"})),)  # a good token's use is recorded


# --- the table -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    arrange: Callable[[World], Request]
    answer: Expected
    changes: Sequence[Change] = ()
    marks: Any = ()  # pytest marks of the row (xfail for a product bug, with the reason)


def _after(prepare: Callable[[World], object], request: Callable[[World], Request]) -> Callable[[World], Request]:
    """`prepare` the world, then make the request."""

    def build(world: World) -> Request:
        prepare(world)
        return request(world)

    return build


def _enrolled_step(world: World, email: str = ADA) -> str:
    world.enrol(email)
    return world.mfa_step(email)


def _reused_code(world: World) -> Request:
    token = _enrolled_step(world)
    code = world.code(ADA)
    world.use_code(ADA, code)  # accepted once in this step (another sign-in)
    return second_step(token, code)


def _reused_recovery_code(world: World) -> Request:
    token = _enrolled_step(world)
    code = world.recovery[ADA][0]
    world.use_code(ADA, code)
    return second_step(token, code)


def _others_recovery_code(world: World) -> Request:
    world.enrol(ROOT)
    return second_step(_enrolled_step(world), world.recovery[ROOT][0])


def _used_step(world: World) -> Request:
    token = _enrolled_step(world)
    world.finish_mfa(token, world.code(ADA))
    return second_step(token, world.recovery[ADA][0])


def _disabled_after_password(world: World) -> Request:
    token = _enrolled_step(world)
    world.disable(ADA)
    return second_step(token, world.code(ADA))


def _mfa_throttled(world: World) -> Request:
    token = _enrolled_step(world)
    world.fail(throttle.mfa_key(world.user_id(ADA)), 15)
    return second_step(token, world.code(ADA))


def _rotated(world: World) -> Request:
    signed = world.sign_in(ADA)
    world.refresh(signed.refresh)
    return post("/api/v1/auth/refresh", {"refresh_token": signed.refresh})


def _family_after_reuse(world: World) -> Request:
    signed = world.sign_in(ADA)
    newest = world.refresh(signed.refresh)
    with pytest.raises(sessions.SessionRefused), world.sessions() as session:
        sessions.refresh(session, signed.refresh, now=world.now)  # reuse: the family is revoked
    return post("/api/v1/auth/refresh", {"refresh_token": newest.refresh})


def _refresh_of(
    arrange: Callable[[World, Signed], None], *, at: timedelta = timedelta(0)
) -> Callable[[World], Request]:
    def build(world: World) -> Request:
        signed = world.sign_in(ADA, at=world.now - at)
        arrange(world, signed)
        return post("/api/v1/auth/refresh", {"refresh_token": signed.refresh})

    return build


def _absolute_timeout(world: World) -> Request:
    started = world.sign_in(ADA, at=world.now - sessions.DEFAULT_ABSOLUTE - timedelta(minutes=1))
    kept = started
    # Refreshed every 20 minutes, never idle, until the absolute end passed.
    for minutes in range(int(sessions.DEFAULT_ABSOLUTE.total_seconds() // 60) - 20, 0, -20):
        kept = world.refresh(kept.refresh, at=world.now - timedelta(minutes=minutes))
    return post("/api/v1/auth/refresh", {"refresh_token": kept.refresh})


def _me(make: Callable[[World, str], str]) -> Callable[[World], Request]:
    def build(world: World) -> Request:
        return get("/api/v1/auth/me", **bearer(make(world, world.sign_in(ADA).access)))

    return build


def _expired_access(world: World, _token: str) -> str:
    return world.sign_in(ADA, at=world.now - timedelta(hours=1)).access


def _other_csrf(world: World) -> str:
    return credentials.csrf_token(world.sign_in(ADA).sid)


def _own_csrf(signed: Signed) -> str:
    return credentials.csrf_token(signed.sid)


def _csrf(
    path: str, pick: Callable[[World, Signed], tuple[str | None, str | None]], *, refresh: bool = True
) -> Callable[[World], Request]:
    def build(world: World) -> Request:
        signed = world.sign_in(ADA)
        cookie, header = pick(world, signed)
        return cookie_request(path, signed, csrf_cookie=cookie, csrf_header=header, refresh=refresh)

    return build


def _impersonating(path: str, body: Mapping[str, Any] | None = None) -> Callable[[World], Request]:
    def build(world: World) -> Request:
        return post(path, body, **bearer(world.impersonate(ADA).access))

    return build


def _expired_impersonation(use: str) -> Callable[[World], Request]:
    def build(world: World) -> Request:
        signed = world.impersonate(ADA, at=world.now - timedelta(hours=2), minutes=30)
        if use == "refresh":
            return post("/api/v1/auth/refresh", {"refresh_token": signed.refresh})
        return get("/api/v1/auth/me", **bearer(signed.access))

    return build


def _ended_impersonation(world: World) -> Request:
    signed = world.impersonate(ADA)
    world.end_impersonation(signed)
    return post("/api/v1/auth/refresh", {"refresh_token": signed.refresh})


def _monitors(token: Callable[[World], str]) -> Callable[[World], Request]:
    def build(world: World) -> Request:
        return get("/api/v1/monitors", **bearer(token(world)))

    return build


def _token_then(change: Callable[[World], None]) -> Callable[[World], str]:
    def make(world: World) -> str:
        token = world.api_token(ADA)
        change(world)
        return token

    return make


def _link(
    purpose: Purpose,
    *,
    at: timedelta = timedelta(0),
    then: Callable[[World, str], str] | None = None,
    shown_as: Purpose | None = None,
    submit: bool = False,
    status: UserStatus = UserStatus.ACTIVE,
) -> Callable[[World], Request]:
    """A link of `purpose` for a new account of acme made `at` ago; `then` changes the world and says
    which token is presented; `shown_as`, the page it is opened on."""

    def build(world: World) -> Request:
        email = "new@acme.example"
        world.add(email, "acme", status=status)
        token = world.link(purpose, email, at=world.now - at)
        if then is not None:
            token = then(world, token)
        return link_page(shown_as or purpose, token, submit=submit)

    return build


def _used(purpose: Purpose) -> Callable[[World, str], str]:
    def then(world: World, token: str) -> str:
        world.use_link(purpose, token)
        return token

    return then


def _superseded(world: World, token: str) -> str:
    world.use_link(Purpose.RESET, world.link(Purpose.RESET, "new@acme.example"))  # a later link set a password
    return token


def _disabled_since(world: World, token: str) -> str:
    world.disable("new@acme.example")
    return token


def _other_purpose(world: World, token: str) -> str:
    return world.link(Purpose.RESET, "new@acme.example")


def _as(email: str, request: Callable[[World, Signed], Request]) -> Callable[[World], Request]:
    """`email` signs in (a session, Bearer), then makes the request."""

    def build(world: World) -> Request:
        return request(world, world.sign_in(email))

    return build


def _call(method: str, path: str, body: Mapping[str, Any] | None = None) -> Callable[[World, Signed], Request]:
    def make(world: World, signed: Signed) -> Request:
        return Request(method, path, json=body, headers=bearer(signed.access))

    return make


def _impersonating_root(method: str, path: str, body: Mapping[str, Any] | None = None) -> Callable[[World], Request]:
    def build(world: World) -> Request:
        return Request(method, path, json=body, headers=bearer(world.impersonate(ROOT).access))

    return build


def _reset_own_mfa_impersonated(world: World) -> Request:
    world.enrol(ROOT)
    return post(f"/api/v1/members/{ROOT}/reset-mfa", **bearer(world.impersonate(ROOT).access))


def _revoke_own_token_impersonated(world: World) -> Request:
    token = world.token_id(world.api_token(ROOT))
    return Request("DELETE", f"/api/v1/tokens/{token}", headers=bearer(world.impersonate(ROOT).access))


def _impersonate_a_platform_admin(world: World) -> Request:
    world.add("ops2@acme.example", "acme", platform_admin=True)
    body = {"email": "ops2@acme.example", "organization": "acme", "reason": REASON}
    return post("/api/v1/platform/impersonations", body, **bearer(world.sign_in(OPS).access))


def _ended_impersonation_admin(world: World) -> Request:
    signed = world.impersonate(ROOT)
    world.end_impersonation(signed)  # its access token still verifies for its few minutes
    return get("/api/v1/members", **bearer(signed.access))


def _disabled_admin(world: World) -> Request:
    world.add("second@acme.example", "acme", Role.ADMIN)  # acme keeps an admin
    signed = world.sign_in(ROOT)
    world.disable(ROOT)
    return get("/api/v1/members", **bearer(signed.access))


def _others_token(world: World) -> Request:
    token = world.token_id(world.api_token(EVE))
    return Request("DELETE", f"/api/v1/tokens/{token}", headers=bearer(world.sign_in(ROOT).access))


CASES: Final = [
    # Passwords: one answer for every kind of wrong, after the same work.
    Case("login: wrong password", lambda w: login(ADA, "wrong-password-1234"), INVALID_LOGIN, failed_login(ADA)),
    Case("login: unknown email", lambda w: login(NOBODY), INVALID_LOGIN, failed_login(None)),
    Case("login: known email in capitals, wrong password", lambda w: login(ADA.upper(), GOOD + "x"), INVALID_LOGIN,
         failed_login(ADA)),
    Case("login: disabled account, right password", _after(lambda w: w.disable(ADA), lambda w: login(ADA)), INVALID_LOGIN,
         failed_login(ADA)),
    Case("login: invited account (no password yet)",
         _after(lambda w: w.add("new@acme.example", "acme", status=UserStatus.INVITED),
                lambda w: login("new@acme.example")),
         INVALID_LOGIN, failed_login("new@acme.example")),
    Case("login: another tenant's organization", lambda w: login(ADA, organization="globex"),
         Problem(403, routes.NOT_A_MEMBER)),
    Case("login form: wrong password", lambda w: Request("POST", "/login", form={"email": ADA, "password": "nope"}),
         Page(401, "login.html", {"error": routes.INVALID_LOGIN, "mfa_token": None, "enrol": False}),
         failed_login(ADA)),
    # Throttling: the right password after N failures is not even checked.
    Case("throttled: account, right password", _after(lambda w: w.fail(throttle.account_key(ADA), 15), lambda w: login(ADA)),
         TooMany()),
    Case("throttled: unknown email as an account", _after(lambda w: w.fail(throttle.account_key(NOBODY), 15), lambda w: login(NOBODY)), TooMany()),
    Case("throttled: client address, another account",
         _after(lambda w: w.fail(throttle.client_address_key(CLIENT), 30), lambda w: login(EVE)), TooMany()),
    Case("throttled: login form", _after(lambda w: w.fail(throttle.account_key(ADA), 15),
                lambda w: Request("POST", "/login", form={"email": ADA, "password": GOOD})),
         TooMany(page=True)),
    Case("throttled: second factor, right code", _mfa_throttled, TooMany()),
    # Reset requests: the same page whether or not the address has an account that may sign in.
    Case("reset request: known email", lambda w: Request("POST", "/reset-request", form={"email": ADA}), RESET_PAGE,
         (Added("audit_log", {"action": "user.reset_requested", "target_name": ADA}),)),
    Case("reset request: unknown email", lambda w: Request("POST", "/reset-request", form={"email": NOBODY}),
         RESET_PAGE, (Added("audit_log", {"action": "user.reset_requested", "target_name": NOBODY}),)),
    Case("reset request: disabled account",
         _after(lambda w: w.disable(ADA), lambda w: Request("POST", "/reset-request", form={"email": ADA})), RESET_PAGE,
         (Added("audit_log", {"action": "user.reset_requested", "target_name": ADA}),)),
    # The second factor.
    Case("totp: wrong code", lambda w: second_step(_enrolled_step(w), w.wrong_code(ADA)), INVALID_CODE,
         failed_login(ADA)),
    Case("totp: reused in the same step", _reused_code, INVALID_CODE, failed_login(ADA)),
    Case("totp: outside the window (5 min ago)",
         lambda w: second_step(_enrolled_step(w), w.code(ADA, at=w.now - timedelta(minutes=5))), INVALID_CODE,
         failed_login(ADA)),
    Case("totp: outside the window (5 min ahead)",
         lambda w: second_step(_enrolled_step(w), w.code(ADA, at=w.now + timedelta(minutes=5))), INVALID_CODE,
         failed_login(ADA)),
    Case("recovery code: reused", _reused_recovery_code, INVALID_CODE, failed_login(ADA)),
    Case("recovery code: another user's", _others_recovery_code, INVALID_CODE, failed_login(ADA)),
    Case("mfa step: tampered", lambda w: second_step(tampered(_enrolled_step(w)), w.code(ADA)), STEP_INVALID),
    Case("mfa step: already used", _used_step, STEP_INVALID),
    Case("mfa step: expired (6 min old)",
         _after(lambda w: w.enrol(ADA),
                lambda w: second_step(w.mfa_step(ADA, at=w.now - timedelta(minutes=6)), w.code(ADA))),
         STEP_INVALID),
    Case("mfa step: an enrolment step", lambda w: second_step(w.mfa_step(ADA, enrol=True), "123456"), STEP_INVALID),
    Case("mfa step: user disabled since the password", _disabled_after_password, STEP_INVALID),
    # Access tokens.
    Case("jwt: alg none", _me(lambda w, t: forged(t, "alg none")), SIGN_IN_AGAIN),
    Case("jwt: alg NoNe, signed", _me(lambda w, t: with_header(t, alg="NoNe")), SIGN_IN_AGAIN),
    Case("jwt: alg none, kid and signature kept",
         _me(lambda w, t: compact({"alg": "none", "kid": access_tokens.current_keys().signing.kid}, claims_of(t),
                                  None) + t.split(".")[2]), SIGN_IN_AGAIN),
    Case("jwt: HS512 with the right key", _me(lambda w, t: with_header(t, alg="HS512", digest=hashlib.sha512)),
         SIGN_IN_AGAIN),
    Case("jwt: RS256 header, HMAC signature", _me(lambda w, t: with_header(t, alg="RS256")), SIGN_IN_AGAIN),
    Case("jwt: an embedded key (jwk header)",
         _me(lambda w, t: with_header(t, jwk={"kty": "oct", "k": _b64(b"k" * 32)})), SIGN_IN_AGAIN),
    Case("jwt: another key, same kid", _me(lambda w, t: forged(t, "another key")), SIGN_IN_AGAIN),
    Case("jwt: unknown kid", _me(lambda w, t: with_header(t, kid="AAAAAAAA")), SIGN_IN_AGAIN),
    Case("jwt: no kid",
         _me(lambda w, t: jwt.encode(claims_of(t), access_tokens.current_keys().signing.secret, algorithm="HS256")),
         SIGN_IN_AGAIN),
    Case("jwt: expired", _me(_expired_access), SIGN_IN_AGAIN),
    Case("jwt: org changed", _me(lambda w, t: forged(t, "org")), SIGN_IN_AGAIN),
    Case("jwt: role changed", _me(lambda w, t: forged(t, "role")), SIGN_IN_AGAIN),
    Case("jwt: platform admin claimed", _me(lambda w, t: with_claims(t, pa=True)), SIGN_IN_AGAIN),
    Case("jwt: impersonator (act) added", _me(lambda w, t: with_claims(t, act={"sub": "1", "email": OPS})),
         SIGN_IN_AGAIN),
    Case("jwt: another audience, right key", _me(lambda w, t: signed_claims(t, aud="another-service")),
         SIGN_IN_AGAIN),
    Case("jwt: garbage", _me(lambda w, t: "a.b.c"), SIGN_IN_AGAIN),
    Case("jwt: no credentials", lambda w: get("/api/v1/auth/me"),
         Problem(401, routes.NOT_SIGNED_IN, {"www-authenticate": REALM})),
    Case("jwt: expired access cookie",
         lambda w: get("/api/v1/auth/me",
                       Cookie=f"{credentials.cookie_names().access}={_expired_access(w, '')}"), SIGN_IN_AGAIN),
    # Refresh tokens.
    Case("refresh: reused after rotation", _rotated, SIGN_IN_AGAIN,
         (Updated("sessions", frozenset({"revoked_at", "revoked_reason"}), {"revoked_reason": "reuse"}),
          Added("audit_log", {"action": "session.reuse_detected", "actor": ADA}))),
    Case("refresh: the newest token after reuse", _family_after_reuse, SIGN_IN_AGAIN),
    Case("refresh: after logout", _refresh_of(lambda w, s: w.sign_out(s)), SIGN_IN_AGAIN),
    Case("refresh: after sign out everywhere", _refresh_of(lambda w, s: w.sign_out(s, everywhere=True)),
         SIGN_IN_AGAIN),
    Case("refresh: user disabled", _refresh_of(lambda w, s: w.disable(ADA)), SIGN_IN_AGAIN),
    Case("refresh: member removed from the organization", _refresh_of(lambda w, s: w.remove(ADA, "acme")),
         SIGN_IN_AGAIN),
    Case("refresh: idle for 31 minutes", _refresh_of(lambda w, s: None, at=timedelta(minutes=31)), SIGN_IN_AGAIN),
    Case("refresh: past the absolute lifetime", _absolute_timeout, SIGN_IN_AGAIN),
    Case("refresh: garbage", lambda w: post("/api/v1/auth/refresh", {"refresh_token": "x" * 200}), SIGN_IN_AGAIN),
    # CSRF on requests that come with cookies.
    Case("csrf: missing on logout", _csrf("/api/v1/auth/logout", lambda w, s: (_own_csrf(s), None)), CSRF),
    Case("csrf: another session's token in the header",
         _csrf("/api/v1/auth/logout", lambda w, s: (_own_csrf(s), _other_csrf(w))), CSRF),
    Case("csrf: another session's token in cookie and header",
         _csrf("/api/v1/auth/logout", lambda w, s: (t := _other_csrf(w), t)), CSRF),
    Case("csrf: tampered, in cookie and header",
         _csrf("/api/v1/auth/logout-everywhere", lambda w, s: (t := tampered(_own_csrf(s)), t)), CSRF),
    Case("csrf: missing on refresh", _csrf("/api/v1/auth/refresh", lambda w, s: (_own_csrf(s), None)), CSRF),
    Case("csrf: another session's on refresh (nothing rotates)",
         _csrf("/api/v1/auth/refresh", lambda w, s: (t := _other_csrf(w), t)), CSRF),
    Case("csrf: missing on MFA enrolment",
         _csrf("/api/v1/auth/mfa/enrol", lambda w, s: (None, None), refresh=False), CSRF),
    # Impersonation.
    Case("impersonating: enrol MFA", _impersonating("/api/v1/auth/mfa/enrol"),
         Problem(403, denial(policy.Action.SELF_MFA, **IMPERSONATED))),
    Case("impersonating: confirm MFA", _impersonating("/api/v1/auth/mfa/confirm", {"code": "123456"}),
         Problem(403, denial(policy.Action.SELF_MFA, **IMPERSONATED))),
    Case("impersonating: sign out everywhere", _impersonating("/api/v1/auth/logout-everywhere"),
         Problem(403, routes.NOT_WHILE_IMPERSONATING)),
    Case("impersonation expired: its access token", _expired_impersonation("me"), SIGN_IN_AGAIN),
    Case("impersonation expired: its refresh token", _expired_impersonation("refresh"), SIGN_IN_AGAIN),
    Case("impersonation ended: its refresh token", _ended_impersonation, SIGN_IN_AGAIN),
    # API tokens.
    Case("api token: logout", lambda w: post("/api/v1/auth/logout", **bearer(w.api_token(ADA))),
         Problem(403, routes.NOT_A_SESSION), TOKEN_USED),
    Case("api token: MFA enrolment", lambda w: post("/api/v1/auth/mfa/enrol", **bearer(w.api_token(ADA))),
         Problem(403, denial(policy.Action.SELF_MFA, **API_TOKEN)), TOKEN_USED),
    Case("api token: revoked", _monitors(lambda w: w.api_token(ADA, revoked=True)), BAD_API_TOKEN),
    Case("api token: expired",
         _monitors(lambda w: w.api_token(ADA, at=w.now - timedelta(hours=2), expires_at=w.now - timedelta(hours=1))),
         BAD_API_TOKEN),
    Case("api token: owner disabled", _monitors(_token_then(lambda w: w.disable(ADA))), BAD_API_TOKEN),
    Case("api token: owner removed from the organization", _monitors(_token_then(lambda w: w.remove(ADA, "acme"))),
         BAD_API_TOKEN),
    Case("api token: malformed", _monitors(lambda w: "spt_short"), BAD_API_TOKEN),
    Case("api token: unknown", _monitors(lambda w: api_tokens.TOKEN_PREFIX + "A" * 43), BAD_API_TOKEN),
    Case("api token: without the read scope", _monitors(lambda w: w.api_token(ADA, "incidents:write")),
         Error(403, denial(policy.Action.MONITORS_READ, scopes=frozenset({"incidents:write"}), via="api-token"),
               {"www-authenticate": f'{REALM}, error="insufficient_scope", scope="read admin"'}), TOKEN_USED),
    # Admin and platform endpoints (spectra.web.admin_routes).
    Case("admin: a user lists members", _as(ADA, _call("GET", "/api/v1/members")),
         Problem(403, denial(policy.Action.MEMBERS_MANAGE))),
    Case("admin: a user invites", _as(ADA, _call("POST", "/api/v1/members", {"email": NOBODY, "role": "user"})),
         Problem(403, denial(policy.Action.MEMBERS_MANAGE))),
    Case("admin: a user requires MFA", _as(ADA, _call("PUT", "/api/v1/organization/settings", {"requireMfa": True})),
         Problem(403, denial(policy.Action.ORG_SETTINGS))),
    Case("admin: an admin's read token lists members",
         lambda w: get("/api/v1/members", **bearer(w.api_token(ROOT))),
         Problem(403, denial(policy.Action.MEMBERS_MANAGE, role=Role.ADMIN, **API_TOKEN)), TOKEN_USED),
    Case("admin: without CSRF by cookie",
         _csrf("/api/v1/members", lambda w, s: (_own_csrf(s), None)), CSRF),
    Case("admin: disabled since, access token still valid", _disabled_admin, SIGN_IN_AGAIN),
    Case("platform: an admin lists tenants", _as(ROOT, _call("GET", "/api/v1/platform/tenants")),
         Problem(403, denial(policy.Action.TENANTS_MANAGE, role=Role.ADMIN))),
    Case("platform: an admin turns on global maintenance",
         _as(ROOT, _call("PUT", "/api/v1/platform/global-maintenance", {"message": "down"})),
         Problem(403, denial(policy.Action.MAINTENANCE_GLOBAL, role=Role.ADMIN))),
    Case("platform: an admin impersonates",
         _as(ROOT, _call("POST", "/api/v1/platform/impersonations",
                         {"email": ADA, "organization": "acme", "reason": REASON})),
         Problem(403, denial(policy.Action.IMPERSONATE, role=Role.ADMIN))),
    Case("an admin disables their own account", _as(ROOT, _call("POST", f"/api/v1/members/{ROOT}/disable")),
         Problem(400, accounts.DISABLE_SELF)),
    Case("cross-tenant: another organization's member", _as(ROOT, _call("POST", f"/api/v1/members/{EVE}/disable")),
         Problem(404, f"{EVE} is not a member of acme")),
    Case("cross-tenant: another organization's members", _as(ROOT, _call("GET", "/api/v1/members?organization=globex")),
         Problem(404, NOT_FOUND)),
    Case("cross-tenant: another organization's audit log", _as(ROOT, _call("GET", "/api/v1/audit?organization=globex")),
         Problem(404, NOT_FOUND)),
    Case("cross-tenant: another organization's token id", _others_token, Problem(404, NOT_FOUND)),
    Case("impersonating: a platform admin", _impersonate_a_platform_admin,
         Problem(403, refusal(lambda: policy.require_impersonation(PLATFORM_ADMIN, target_platform_admin=True)))),
    Case("impersonating: start another impersonation",
         _impersonating_root("POST", "/api/v1/platform/impersonations",
                             {"email": ADA, "organization": "acme", "reason": REASON}),
         Problem(403, denial(policy.Action.IMPERSONATE, role=Role.ADMIN, **IMPERSONATED))),
    Case("impersonating: make an API token",
         _impersonating_root("POST", "/api/v1/tokens", {"name": "mine", "scopes": ["read"]}),
         Problem(403, denial(policy.Action.SELF_TOKENS, role=Role.ADMIN, **IMPERSONATED))),
    Case("impersonating: reset the impersonated admin's own MFA",
         _reset_own_mfa_impersonated,
         Problem(403, denial(policy.Action.SELF_MFA, role=Role.ADMIN, **IMPERSONATED))),
    Case("impersonating: disable the impersonated admin's own account",
         _impersonating_root("POST", f"/api/v1/members/{ROOT}/disable"),
         Problem(403, policy.OWN_ACCOUNT_WHILE_IMPERSONATING)),
    Case("impersonating: change the impersonated admin's own role",
         _impersonating_root("POST", f"/api/v1/members/{ROOT.upper()}/role", {"role": "user"}),
         Problem(403, policy.OWN_ACCOUNT_WHILE_IMPERSONATING)),
    Case("impersonating: remove the impersonated admin from the organization",
         _impersonating_root("DELETE", f"/api/v1/members/{ROOT}"),
         Problem(403, policy.OWN_ACCOUNT_WHILE_IMPERSONATING)),
    Case("impersonating: revoke the impersonated admin's own API token", _revoke_own_token_impersonated,
         Problem(403, denial(policy.Action.SELF_TOKENS, role=Role.ADMIN, **IMPERSONATED))),
    Case("impersonation ended: admin endpoint, access token still valid", _ended_impersonation_admin, SIGN_IN_AGAIN),
    # Links.
    Case("invitation: tampered", _link(Purpose.INVITE, then=lambda w, t: tampered(t)),
         link_refused(Purpose.INVITE, accounts.LINK_INVALID)),
    Case("invitation: tampered, submitted", _link(Purpose.INVITE, then=lambda w, t: tampered(t), submit=True),
         link_refused(Purpose.INVITE, accounts.LINK_INVALID)),
    Case("invitation: a reset link", _link(Purpose.INVITE, then=_other_purpose),
         link_refused(Purpose.INVITE, accounts.LINK_INVALID)),
    Case("setup: an invitation link", _link(Purpose.INVITE, shown_as=Purpose.SETUP),
         link_refused(Purpose.SETUP, accounts.LINK_INVALID)),
    Case("invitation: reused", _link(Purpose.INVITE, then=_used(Purpose.INVITE), submit=True,
                                     status=UserStatus.INVITED),
         link_refused(Purpose.INVITE, accounts.LINK_USED)),
    Case("invitation: expired (8 days old)", _link(Purpose.INVITE, at=timedelta(days=8), status=UserStatus.INVITED),
         link_refused(Purpose.INVITE, accounts.LINK_EXPIRED)),
    Case("reset: tampered", _link(Purpose.RESET, then=lambda w, t: tampered(t), submit=True),
         link_refused(Purpose.RESET, accounts.LINK_INVALID)),
    Case("reset: reused", _link(Purpose.RESET, then=_used(Purpose.RESET), submit=True),
         link_refused(Purpose.RESET, accounts.LINK_USED)),
    Case("reset: expired (2 hours old)", _link(Purpose.RESET, at=timedelta(hours=2), submit=True),
         link_refused(Purpose.RESET, accounts.LINK_EXPIRED)),
    Case("reset: user disabled since", _link(Purpose.RESET, then=_disabled_since, submit=True),
         link_refused(Purpose.RESET, accounts.LINK_SUPERSEDED)),
    Case("reset: a later link set the password", _link(Purpose.RESET, then=_superseded, submit=True),
         link_refused(Purpose.RESET, accounts.LINK_SUPERSEDED)),
]  # fmt: skip


def test_the_table_has_every_class_of_refusal() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 35
    classes = {case_id.partition(":")[0] for case_id in ids}
    assert classes >= {
        "login",
        "throttled",
        "reset request",
        "totp",
        "recovery code",
        "mfa step",
        "jwt",
        "refresh",
        "csrf",
        "impersonating",
        "impersonation expired",
        "api token",
        "invitation",
        "reset",
        "admin",
        "platform",
        "cross-tenant",
    }


def test_unexpected_changes_names_every_change_not_allowed() -> None:
    before: Snapshot = {"sessions": {(1,): {"id": 1, "revoked_at": None}}, "audit_log": {}, "throttles": {}}
    after: Snapshot = {
        "sessions": {(1,): {"id": 1, "revoked_at": 5}},
        "audit_log": {(7,): {"id": 7, "action": "user.login_failed"}},
        "throttles": {("k",): {"key": "k"}},
    }
    allowed: list[Change] = [
        Updated("sessions", frozenset({"revoked_at"})),
        Added("audit_log", {"action": "user.login_failed"}),
        AnyChange("throttles"),
    ]
    assert unexpected_changes(before, after, allowed) == []
    assert unexpected_changes(before, after) == [
        "sessions: row (1,) changed: {'revoked_at': (None, 5)}",
        "audit_log: row added: {'id': 7, 'action': 'user.login_failed'}",
        "throttles: row added: {'key': 'k'}",
    ]
    assert unexpected_changes(before, before, allowed[:2]) == [
        "sessions: no row changed as Updated(table='sessions', columns=frozenset({'revoked_at'}), values={})",
        "audit_log: no row added with {'action': 'user.login_failed'}",
    ]


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id, marks=case.marks) for case in CASES])
def test_refusal(sessions: sessionmaker[Session], portal: BlockingPortal, case: Case) -> None:
    world = make_world(sessions)
    request = case.arrange(world)
    client = Client(create_app(AppParts(sessions, Metrics(), Readiness(), sign_in=True)), portal)
    before = snapshot(sessions)
    first = utcnow()
    answer = request.send(client)
    sent = (first, utcnow())
    case.answer.check(answer, world, sent)
    assert unexpected_changes(before, snapshot(sessions), case.changes) == []
