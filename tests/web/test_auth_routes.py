"""Signing in over HTTP (spectra.web.auth_routes): the JSON endpoints, cookies and CSRF, the link pages;
through Starlette's TestClient on a real database (SQLite and MariaDB), the clock held still."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt
import pyotp
import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware

from spectra.auth import access_tokens, totp
from spectra.auth.accounts import first_admin_link, make_link_token
from spectra.auth.identity import Principal
from spectra.runtime.cross_site import CrossSiteRefusal
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import Readiness
from spectra.store import Role
from spectra.store.accounts import (
    AuditLog,
    Membership,
    OrganizationSettings,
    RefreshToken,
    User,
    UserSession,
    UserStatus,
)
from spectra.tokens import Purpose
from spectra.web import auth_routes as routes
from spectra.web.app import AppParts, create_app
from tests.support.web import GOOD, NOW, PROBLEM, Client, Clock, good_hash

EMAIL = "ada@example.com"


@dataclass
class Site:
    sessions: sessionmaker[Session]
    clock: Clock
    http: Client
    secrets: dict[str, str] = field(default_factory=dict)

    def login(self, email: str = EMAIL, password: str = GOOD, **more: Any) -> Any:
        return self.http.post("/api/v1/auth/login", json={"email": email, "password": password, **more})

    def signed_in(self, **more: Any) -> dict[str, Any]:
        answer = self.login(**more)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def code(self, email: str = EMAIL, *, at: datetime | None = None) -> str:
        return pyotp.TOTP(self.secrets[email]).at(at or self.clock.now)


def make_site(
    sessions: sessionmaker[Session],
    portal: BlockingPortal,
    *,
    base_url: str = "http://testserver",
) -> Site:
    clock = Clock()
    app = Starlette(
        routes=routes.auth_routes(sessions, clock=clock),
        middleware=[Middleware(CrossSiteRefusal)],
    )
    return Site(sessions, clock, Client(app, portal, base_url))


def add_user(
    sessions: sessionmaker[Session],
    email: str = EMAIL,
    *,
    organization: str | None = "",
    role: Role = Role.USER,
    status: UserStatus = UserStatus.ACTIVE,
    platform_admin: bool = False,
) -> int:
    with sessions.begin() as session:
        user = User(email=email, password_hash=good_hash(), status=status, platform_admin=platform_admin)
        if organization is not None:
            user.memberships.append(Membership(organization=organization, role=role))
        session.add(user)
        session.flush()
        return user.id


def enrol(site: Site, email: str = EMAIL) -> None:
    """Two-factor authentication on for `email`, with the code of the step before (the login's is then new)."""
    with site.sessions.begin() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        enrolment = totp.begin_enrolment(session, user, now=NOW)
        secret = enrolment.secret_text.replace(" ", "")
        site.secrets[email] = secret
        totp.confirm_enrolment(session, user, pyotp.TOTP(secret).at(NOW - timedelta(seconds=30)), now=NOW)


def snapshot(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """What a refusal must leave as it was (the audit log and throttles may grow, nothing else)."""
    with sessions() as session:
        return {
            "users": [
                (u.email, u.password_hash, u.status, u.mfa_enabled, u.mfa_last_step, u.last_login_at)
                for u in session.scalars(select(User).order_by(User.id))
            ],
            "sessions": [(s.sid, s.revoked_at) for s in session.scalars(select(UserSession).order_by(UserSession.id))],
            "refresh": [
                (t.token_hash, t.rotated_at) for t in session.scalars(select(RefreshToken).order_by(RefreshToken.id))
            ],
        }


def actions(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def assert_problem(answer: Any, status: int, detail: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json() == {"type": "about:blank", "title": answer.reason_phrase, "status": status, "detail": detail}


# --- password sign-in --------------------------------------------------------------------------------


def test_login_gives_an_api_client_both_tokens_and_me_answers_who(
    sessions: sessionmaker[Session], portal: BlockingPortal
) -> None:
    site = make_site(sessions, portal)
    add_user(sessions, role=Role.ADMIN)
    body = site.signed_in()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert (body["email"], body["organization"], body["role"], body["platform_admin"]) == (EMAIL, "", "admin", False)
    assert "set-cookie" not in site.login().headers  # API clients get no cookie
    me = site.http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json() == {
        "email": EMAIL,
        "organization": "",
        "role": "admin",
        "platform_admin": False,
        "impersonator": None,
        "via": "session",
    }
    assert me.headers["cache-control"] == "no-store"
    assert actions(sessions).count("user.login") == 2
    assert all(GOOD not in str(row) for row in snapshot(sessions).values())


BAD_LOGINS = {
    "wrong password": {"email": EMAIL, "password": "wrong-password-1234"},
    "unknown email": {"email": "nobody@example.com", "password": GOOD},
    "email in other case, wrong password": {"email": "ADA@example.com", "password": GOOD + "x"},
    "disabled account": {"email": "off@example.com", "password": GOOD},
    "invited account (no password yet)": {"email": "new@example.com", "password": GOOD},
}


@pytest.mark.parametrize("body", BAD_LOGINS.values(), ids=BAD_LOGINS.keys())
def test_bad_logins_get_one_answer_and_change_nothing(
    sessions: sessionmaker[Session], portal: BlockingPortal, body: dict[str, str]
) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    add_user(sessions, "off@example.com", status=UserStatus.DISABLED)
    add_user(sessions, "new@example.com", status=UserStatus.INVITED)
    with sessions.begin() as session:
        session.execute(User.__table__.update().where(User.email == "new@example.com").values(password_hash=None))
    before = snapshot(sessions)
    answer = site.login(**body)
    assert_problem(answer, 401, routes.INVALID_LOGIN)
    assert "set-cookie" not in answer.headers
    assert snapshot(sessions) == before
    assert actions(sessions) == ["user.login_failed"]


MALFORMED = [
    ({}, 400, "email is required."),
    ({"email": EMAIL}, 400, "password is required."),
    ({"email": 5, "password": GOOD}, 400, "email must be text."),
    ({"email": EMAIL, "password": GOOD, "use_cookies": "yes"}, 400, "use_cookies must be true or false."),
    ({"email": EMAIL, "password": GOOD, "organization": "acme"}, 403, routes.NOT_A_MEMBER),
]


@pytest.mark.parametrize(("body", "status", "detail"), MALFORMED)
def test_malformed_logins_are_refused_exactly(
    sessions: sessionmaker[Session], portal: BlockingPortal, body: dict[str, Any], status: int, detail: str
) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    before = snapshot(sessions)
    assert_problem(site.http.post("/api/v1/auth/login", json=body), status, detail)
    assert snapshot(sessions) == before


def test_a_body_that_is_not_a_json_object_is_refused(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    for raw in (b"[1]", b"{", b'"x"'):
        answer = site.http.post("/api/v1/auth/login", content=raw, headers={"content-type": "application/json"})
        assert_problem(answer, 400, routes.BODY_NOT_JSON)


def test_failures_are_throttled_with_the_wait_and_retry_after(
    sessions: sessionmaker[Session], portal: BlockingPortal
) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    for _ in range(6):  # five free failures, the sixth starts a 1 s wait
        assert_problem(site.login(password="wrong-password-1234"), 401, routes.INVALID_LOGIN)
    before = snapshot(sessions)
    refused = site.login()  # the right password, but the account waits: not even checked
    assert_problem(refused, 429, "Too many attempts: try again in 1 s.")
    assert refused.headers["retry-after"] == "1"
    assert snapshot(sessions) == before
    site.clock.now += timedelta(seconds=1)
    assert site.login().status_code == 200


def test_an_unknown_email_is_throttled_like_an_account(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    for _ in range(6):
        site.login(email="nobody@example.com")
    assert_problem(site.login(email="nobody@example.com"), 429, "Too many attempts: try again in 1 s.")


# --- two-factor authentication -------------------------------------------------------------------------


def test_login_with_totp_and_every_bad_second_step(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    enrol(site)
    first = site.signed_in()
    assert set(first) == {"mfa_required", "mfa_token"}
    assert first["mfa_required"] is True
    token = first["mfa_token"]
    before = snapshot(sessions)
    bad = site.http.post("/api/v1/auth/mfa", json={"mfa_token": token, "code": "000000"})
    assert_problem(bad, 401, routes.INVALID_CODE)
    assert_problem(
        site.http.post("/api/v1/auth/mfa", json={"mfa_token": token + "x", "code": site.code()}),
        401,
        routes.MFA_STEP_INVALID,
    )
    assert snapshot(sessions) == before
    good = site.http.post("/api/v1/auth/mfa", json={"mfa_token": token, "code": site.code()})
    assert good.status_code == 200, good.text
    assert good.json()["email"] == EMAIL
    assert "refresh_token" in good.json()
    after = snapshot(sessions)
    # The step token once only; the same code (same time step) never twice.
    again = site.http.post("/api/v1/auth/mfa", json={"mfa_token": token, "code": site.code()})
    assert_problem(again, 401, routes.MFA_STEP_INVALID)
    second = site.signed_in()["mfa_token"]
    assert_problem(
        site.http.post("/api/v1/auth/mfa", json={"mfa_token": second, "code": site.code()}), 401, routes.INVALID_CODE
    )
    assert snapshot(sessions)["sessions"] == after["sessions"]
    assert "user.login_failed" in actions(sessions)


def test_an_mfa_step_token_expires_after_five_minutes(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    enrol(site)
    token = site.signed_in()["mfa_token"]
    site.clock.now += timedelta(minutes=5)
    before = snapshot(sessions)
    answer = site.http.post("/api/v1/auth/mfa", json={"mfa_token": token, "code": site.code()})
    assert_problem(answer, 401, routes.MFA_STEP_INVALID)
    assert snapshot(sessions) == before


def test_wrong_codes_are_throttled_per_account(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    enrol(site)
    token = site.signed_in()["mfa_token"]
    for _ in range(6):
        assert_problem(
            site.http.post("/api/v1/auth/mfa", json={"mfa_token": token, "code": "000000"}), 401, routes.INVALID_CODE
        )
    answer = site.http.post("/api/v1/auth/mfa", json={"mfa_token": token, "code": site.code()})
    assert_problem(answer, 429, "Too many attempts: try again in 1 s.")
    assert answer.headers["retry-after"] == "1"


def test_enrolment_of_the_signed_in_user_then_totp_at_the_next_login(
    sessions: sessionmaker[Session], portal: BlockingPortal
) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    bearer = {"Authorization": f"Bearer {site.signed_in()['access_token']}"}
    shown = site.http.post("/api/v1/auth/mfa/enrol", headers=bearer)
    assert shown.status_code == 200, shown.text
    assert shown.json()["uri"].startswith("otpauth://totp/SpectraMonitor:ada%40example.com?secret=")
    assert shown.json()["qr_svg"].startswith("<svg")
    site.secrets[EMAIL] = shown.json()["secret"].replace(" ", "")
    wrong = site.http.post("/api/v1/auth/mfa/confirm", headers=bearer, json={"code": "000000"})
    assert_problem(wrong, 400, "that code is not valid: enter the 6-digit code your authenticator app shows now")
    confirmed = site.http.post("/api/v1/auth/mfa/confirm", headers=bearer, json={"code": site.code()})
    assert confirmed.status_code == 200, confirmed.text
    assert len(confirmed.json()["recovery_codes"]) == 10
    assert site.signed_in()["mfa_required"] is True


def test_enrolment_is_refused_while_impersonating(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    user_id = add_user(sessions)
    admin_id = add_user(sessions, "root@example.com", organization=None, platform_admin=True)
    principal = Principal(
        user_id=user_id,
        email=EMAIL,
        organization="",
        role=Role.USER,
        session_id="s" * 43,
        impersonator_id=admin_id,
        impersonator_email="root@example.com",
    )
    token = access_tokens.issue(principal, now=NOW)
    before = snapshot(sessions)
    answer = site.http.post("/api/v1/auth/mfa/enrol", headers={"Authorization": f"Bearer {token}"})
    assert_problem(answer, 403, "not while impersonating: self.mfa stays with the person impersonated")
    assert snapshot(sessions) == before
    everywhere = site.http.post("/api/v1/auth/logout-everywhere", headers={"Authorization": f"Bearer {token}"})
    assert_problem(everywhere, 403, routes.NOT_WHILE_IMPERSONATING)


def test_an_organization_that_requires_mfa_enrols_before_any_session(
    sessions: sessionmaker[Session], portal: BlockingPortal
) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    with sessions.begin() as session:  # the organization's admins required it (spectra.auth.organization_settings)
        session.add(OrganizationSettings(organization="", require_mfa=True))
    first = site.signed_in()
    assert set(first) == {"mfa_enrolment_required", "mfa_token"}
    assert snapshot(sessions)["sessions"] == []
    shown = site.http.post("/api/v1/auth/mfa/enrol", json={"mfa_token": first["mfa_token"]}).json()
    site.secrets[EMAIL] = shown["secret"].replace(" ", "")
    done = site.http.post("/api/v1/auth/mfa/confirm", json={"mfa_token": first["mfa_token"], "code": site.code()})
    assert done.status_code == 200, done.text
    assert len(done.json()["recovery_codes"]) == 10
    assert "access_token" in done.json()
    again = site.http.post("/api/v1/auth/mfa/confirm", json={"mfa_token": first["mfa_token"], "code": site.code()})
    assert_problem(again, 401, routes.MFA_STEP_INVALID)


# --- refresh and logout ---------------------------------------------------------------------------------


def refresh(site: Site, token: str) -> Any:
    return site.http.post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_refresh_rotates_and_reuse_ends_the_session(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    first = site.signed_in()["refresh_token"]
    second = refresh(site, first)
    assert second.status_code == 200
    newest = second.json()["refresh_token"]
    assert newest != first
    assert_problem(refresh(site, first), 401, "Your session has ended. Sign in again.")  # reuse
    assert_problem(refresh(site, newest), 401, "Your session has ended. Sign in again.")  # the family is gone
    assert "session.reuse_detected" in actions(sessions)


def test_refresh_after_logout_and_logout_everywhere(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    one, two = site.signed_in(), site.signed_in()
    bearer = {"Authorization": f"Bearer {one['access_token']}"}
    assert site.http.post("/api/v1/auth/logout", headers=bearer).json() == {"signed_out": True}
    assert_problem(refresh(site, one["refresh_token"]), 401, "Your session has ended. Sign in again.")
    assert refresh(site, two["refresh_token"]).status_code == 200
    three = site.signed_in()
    site.http.post("/api/v1/auth/logout-everywhere", headers={"Authorization": f"Bearer {three['access_token']}"})
    with sessions() as session:
        assert (
            session.scalar(select(func.count()).select_from(UserSession).where(UserSession.revoked_at.is_(None))) == 0
        )


def test_refresh_needs_a_token(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    assert_problem(site.http.post("/api/v1/auth/refresh", json={}), 400, routes.NO_REFRESH_TOKEN)
    assert_problem(refresh(site, "not-a-token"), 401, "Your session has ended. Sign in again.")


# --- access tokens ----------------------------------------------------------------------------------------


def forged(token: str, change: str) -> str:
    header_part, claims_part, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(claims_part + "=" * (-len(claims_part) % 4)))
    header = json.loads(base64.urlsafe_b64decode(header_part + "=" * (-len(header_part) % 4)))
    if change == "alg none":
        return jwt.encode(claims, "", algorithm="none", headers={"kid": header["kid"]})
    if change == "another key":
        return jwt.encode(claims, "another-key-" + "x" * 40, algorithm="HS256", headers={"kid": header["kid"]})
    changed = {"org": {**claims, "org": "acme"}, "role": {**claims, "role": "admin"}}[change]
    body = base64.urlsafe_b64encode(json.dumps(changed).encode()).rstrip(b"=").decode()
    return f"{header_part}.{body}.{signature}"


@pytest.mark.parametrize("change", ["alg none", "another key", "org", "role", "expired", "garbage"])
def test_a_bad_access_token_is_refused(sessions: sessionmaker[Session], portal: BlockingPortal, change: str) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    token = site.signed_in()["access_token"]
    if change == "expired":
        site.clock.now += timedelta(minutes=10)
        presented = token
    elif change == "garbage":
        presented = "a.b.c"
    else:
        presented = forged(token, change)
    answer = site.http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {presented}"})
    assert_problem(answer, 401, "Your session has ended. Sign in again.")
    assert answer.headers["www-authenticate"] == 'Bearer realm="spectra", error="invalid_token"'


def test_no_credentials(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    answer = make_site(sessions, portal).http.get("/api/v1/auth/me")
    assert_problem(answer, 401, routes.NOT_SIGNED_IN)
    assert answer.headers["www-authenticate"] == 'Bearer realm="spectra"'


# --- cookies and CSRF -----------------------------------------------------------------------------------


def cookie_lines(answer: Any) -> dict[str, str]:
    return {line.split("=", 1)[0]: line for line in answer.headers.get_list("set-cookie")}


def test_cookies_over_http_have_no_prefix_and_no_secure(
    sessions: sessionmaker[Session], portal: BlockingPortal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPECTRA_PUBLIC_URL", raising=False)
    site = make_site(sessions, portal)
    add_user(sessions)
    lines = cookie_lines(site.login(use_cookies=True))
    assert set(lines) == {"spectra-access", "spectra-refresh", "spectra-csrf"}
    for name, line in lines.items():
        flags = [part.strip().lower() for part in line.split(";")]
        assert "samesite=strict" in flags
        assert "path=/" in flags
        assert "secure" not in flags
        assert ("httponly" in flags) == (name != "spectra-csrf")


def test_cookies_over_https_are_host_prefixed_and_secure(
    sessions: sessionmaker[Session], portal: BlockingPortal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPECTRA_PUBLIC_URL", "https://status.example")
    site = make_site(sessions, portal, base_url="https://status.example")
    add_user(sessions)
    answer = site.login(use_cookies=True)
    lines = cookie_lines(answer)
    assert set(lines) == {"__Host-spectra-access", "__Host-spectra-refresh", "__Host-spectra-csrf"}
    for name, line in lines.items():
        flags = [part.strip().lower() for part in line.split(";")]
        assert {"secure", "samesite=strict", "path=/"} <= set(flags)
        assert not any(f.startswith("domain") for f in flags)
        assert ("httponly" in flags) == (name != "__Host-spectra-csrf")
    assert "access_token" not in answer.json()
    assert "refresh_token" not in answer.json()
    me = site.http.get("/api/v1/auth/me")  # the cookie alone, on a GET: no CSRF token needed
    assert me.status_code == 200
    assert me.json()["email"] == EMAIL


def test_csrf_on_cookie_requests(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    other = make_site(sessions, portal)
    other_csrf = other.login(use_cookies=True).json()["csrf_token"]
    csrf = site.login(use_cookies=True).json()["csrf_token"]
    before = snapshot(sessions)
    for headers in ({}, {"X-CSRF-Token": other_csrf}, {"X-CSRF-Token": csrf + "x"}):
        assert_problem(site.http.post("/api/v1/auth/logout", headers=headers), 403, routes.CSRF_REFUSED)
        assert_problem(site.http.post("/api/v1/auth/refresh", headers=headers), 403, routes.CSRF_REFUSED)
    # Another session's token in both places (a cookie planted over plain http): still not ours.
    planted = Client(site.http.client._transport.app, portal)  # type: ignore[attr-defined]  # a jar of its own
    jar = site.http.cookies
    cookie = (
        f"spectra-access={jar['spectra-access']}; spectra-refresh={jar['spectra-refresh']}; spectra-csrf={other_csrf}"
    )
    for path in ("/api/v1/auth/refresh", "/api/v1/auth/logout"):
        answer = planted.post(path, headers={"Cookie": cookie, "X-CSRF-Token": other_csrf})
        assert_problem(answer, 403, routes.CSRF_REFUSED)
    assert snapshot(sessions) == before
    rotated = site.http.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": csrf})
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()["csrf_token"]
    assert site.http.post("/api/v1/auth/logout", headers={"X-CSRF-Token": fresh}).status_code == 200


def test_bearer_requests_need_no_csrf(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    token = site.signed_in()["access_token"]
    answer = site.http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200


# --- pages ----------------------------------------------------------------------------------------------------


def test_the_first_admin_link_page(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    with sessions.begin() as session:
        token = first_admin_link(session, now=NOW)
    assert token is not None
    before = snapshot(sessions)
    shown = site.http.get(f"/setup/{token}")
    assert shown.status_code == 200
    assert 'name="email"' in shown.text
    assert shown.headers["content-security-policy"].startswith("default-src 'none'")
    assert snapshot(sessions) == before  # GET changes nothing
    form = {"email": "root@example.com", "name": "Root", "password": GOOD, "password_again": GOOD + "x"}
    differ = site.http.post(f"/setup/{token}", data=form)
    assert differ.status_code == 400
    assert routes.PASSWORDS_DIFFER in differ.text
    weak = site.http.post(f"/setup/{token}", data={**form, "password": "password", "password_again": "password"})
    assert weak.status_code == 400
    assert "The password needs at least 12 characters." in weak.text
    assert snapshot(sessions) == before
    done = site.http.post(f"/setup/{token}", data={**form, "password_again": GOOD})
    assert done.status_code == 200
    assert "Your password is set" in done.text
    used = site.http.get(f"/setup/{token}")
    assert used.status_code == 400
    assert "This link has already been used." in used.text
    assert site.signed_in(email="root@example.com")["platform_admin"] is True


@pytest.mark.parametrize("purpose", [Purpose.INVITE, Purpose.RESET])
def test_invitation_and_reset_pages(sessions: sessionmaker[Session], portal: BlockingPortal, purpose: Purpose) -> None:
    site = make_site(sessions, portal)
    add_user(sessions, status=UserStatus.INVITED if purpose is Purpose.INVITE else UserStatus.ACTIVE)
    with sessions.begin() as session:
        user = session.scalars(select(User).where(User.email == EMAIL)).one()
        token = make_link_token(purpose, user, now=NOW)
    path = f"/{'invite' if purpose is Purpose.INVITE else 'reset'}/{token}"
    assert site.http.get(path[:-2] + "xx").status_code == 400  # tampered
    new = "quiet-lantern-harbour-47"
    assert site.http.post(path, data={"password": new, "password_again": new}).status_code == 200
    assert site.login(password=new).status_code == 200
    assert "this link has already been used" in site.http.post(path, data={"password": new}).text.lower()


def test_login_form_and_reset_request_page(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    assert 'name="password"' in site.http.get("/login").text
    wrong = site.http.post("/login", data={"email": EMAIL, "password": "wrong-password-1234"})
    assert wrong.status_code == 401
    assert routes.INVALID_LOGIN in wrong.text
    done = site.http.post("/login", data={"email": EMAIL, "password": GOOD})
    assert done.status_code == 200
    assert "signed in as ada@example.com" in done.text
    assert set(cookie_lines(done)) == {"spectra-access", "spectra-refresh", "spectra-csrf"}
    known = site.http.post("/reset-request", data={"email": EMAIL})
    unknown = site.http.post("/reset-request", data={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text


def test_create_app_mounts_sign_in_only_when_asked(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    def parts(sign_in: bool) -> AppParts:
        return AppParts(sessions, Metrics(), Readiness(), sign_in=sign_in)

    assert Client(create_app(parts(True)), portal).get("/login").status_code == 200
    assert Client(create_app(parts(False)), portal).get("/login").status_code == 404
