"""The account page (spectra.web.account_pages) and the browser's two-factor set-up at sign-in
(spectra.web.auth_routes' /login form): forms only, no script; on a real database, the clock held still."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware

from spectra.runtime.cross_site import CrossSiteRefusal
from spectra.store import Role
from spectra.store.accounts import OrganizationSettings, RecoveryCode, User, UserSession
from spectra.web import auth_routes as routes
from spectra.web.account_pages import account_routes
from tests.support.web import GOOD, Client, Clock
from tests.web.test_auth_routes import EMAIL, Site, add_user, enrol, snapshot

SECRET = re.compile(r'<code id="secret">([A-Z2-7 ]+)</code>')
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
MFA_TOKEN = re.compile(r'name="mfa_token" value="([^"]+)"')


def make_site(sessions: sessionmaker[Session], portal: BlockingPortal) -> Site:
    clock = Clock()
    app = Starlette(
        routes=[*routes.auth_routes(sessions, clock=clock), *account_routes(sessions, clock=clock)],
        middleware=[Middleware(CrossSiteRefusal)],
    )
    return Site(sessions, clock, Client(app, portal))


def form_login(site: Site, **fields: str) -> str:
    answer = site.http.post("/login", data={"email": EMAIL, "password": GOOD, **fields})
    assert answer.status_code == 200, answer.text
    return answer.text


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found is not None, page
    return found.group(1)


def mfa_enabled(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return bool(session.scalar(select(User.mfa_enabled).where(User.email == EMAIL)))


def test_the_account_page_needs_a_session(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    answer = site.http.get("/account")
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    assert site.http.post("/account/mfa/enrol", data={"csrf": "x"}).status_code == 303


def test_enrol_from_the_account_page_then_sign_in_with_a_code(
    sessions: sessionmaker[Session], portal: BlockingPortal
) -> None:
    site = make_site(sessions, portal)
    add_user(sessions, role=Role.ADMIN)
    assert "Your account" in form_login(site)
    before = snapshot(sessions)
    page = site.http.get("/account")
    assert page.status_code == 200
    assert EMAIL in page.text
    assert 'id="mfa-state">Off.' in page.text
    assert 'href="/console/organization/tokens"' in page.text  # a member finds their API tokens from here
    assert page.headers["cache-control"] == "no-store"
    assert snapshot(sessions) == before  # GET changes nothing

    started = site.http.post("/account/mfa/enrol", data={"csrf": csrf_of(page.text)})
    assert started.status_code == 200, started.text
    assert "<svg" in started.text
    found = SECRET.search(started.text)
    assert found is not None
    secret = found.group(1).replace(" ", "")
    wrong = site.http.post("/account/mfa/confirm", data={"csrf": csrf_of(started.text), "code": "000000"})
    assert wrong.status_code == 400
    assert not mfa_enabled(sessions)
    assert 'action="/account/mfa/confirm"' in wrong.text  # the same secret: no new one to scan
    assert "<svg" not in wrong.text
    assert 'id="mfa-state">Off.' in site.http.get("/account").text
    done = site.http.post(
        "/account/mfa/confirm", data={"csrf": csrf_of(started.text), "code": pyotp.TOTP(secret).at(site.clock.now)}
    )
    assert done.status_code == 200, done.text
    assert len(re.findall(r"<li><code>", done.text)) == 10
    assert mfa_enabled(sessions)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(RecoveryCode)) == 10

    site.clock.now += timedelta(seconds=30)
    signed_out = site.http.post("/account/logout", data={"csrf": csrf_of(done.text)})
    assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/login")
    assert site.http.get("/account").status_code == 303
    with sessions() as session:
        assert session.scalars(select(UserSession.revoked_at)).all() != [None]

    step = form_login(site)
    token = MFA_TOKEN.search(step)
    assert token is not None
    signed_in = site.http.post(
        "/login", data={"mfa_token": token.group(1), "code": pyotp.TOTP(secret).at(site.clock.now)}
    )
    assert signed_in.status_code == 200
    assert "You are signed in as" in signed_in.text
    assert 'id="mfa-state">On.' in site.http.get("/account").text


def test_account_forms_refuse_a_missing_or_foreign_csrf_token(
    sessions: sessionmaker[Session], portal: BlockingPortal
) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    form_login(site)
    other = make_site(sessions, portal)
    form_login(other)
    foreign = csrf_of(other.http.get("/account").text)
    before = snapshot(sessions)
    for data in ({}, {"csrf": ""}, {"csrf": foreign}):
        for path in ("/account/mfa/enrol", "/account/logout", "/account/logout-everywhere"):
            answer = site.http.post(path, data=data)
            assert answer.status_code == 403, (path, data)
            assert routes.CSRF_REFUSED in answer.text
    assert snapshot(sessions) == before
    assert not mfa_enabled(sessions)


def test_sign_out_everywhere_ends_every_session(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    form_login(site)
    other = make_site(sessions, portal)
    form_login(other)
    answer = site.http.post("/account/logout-everywhere", data={"csrf": csrf_of(site.http.get("/account").text)})
    assert answer.status_code == 303
    with sessions() as session:
        assert None not in session.scalars(select(UserSession.revoked_at)).all()


def test_an_enrolled_user_sees_no_second_enrolment(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    enrol(site)
    step = form_login(site)
    token = MFA_TOKEN.search(step)
    assert token is not None
    site.http.post("/login", data={"mfa_token": token.group(1), "code": site.code()})
    page = site.http.get("/account").text
    assert 'id="mfa-state">On.' in page
    assert "/account/mfa/enrol" not in page


@pytest.mark.parametrize("first_code_wrong", [False, True], ids=["right code", "wrong code first"])
def test_an_organization_that_requires_mfa_sets_it_up_at_sign_in(
    sessions: sessionmaker[Session], portal: BlockingPortal, first_code_wrong: bool
) -> None:
    site = make_site(sessions, portal)
    add_user(sessions)
    with sessions.begin() as session:
        session.add(OrganizationSettings(organization="", require_mfa=True))
    step = form_login(site)
    assert "Set up two-factor authentication" in step
    assert "<svg" in step
    found, token = SECRET.search(step), MFA_TOKEN.search(step)
    assert found is not None
    assert token is not None
    secret = found.group(1).replace(" ", "")
    if first_code_wrong:
        wrong = site.http.post("/login", data={"mfa_token": token.group(1), "enrol": "1", "code": "000000"})
        assert wrong.status_code == 401
        assert routes.INVALID_CODE in wrong.text
        assert "<svg" not in wrong.text  # the secret being set up stays the one scanned
        assert token.group(1) in wrong.text
    code = pyotp.TOTP(secret).at(site.clock.now)
    done = site.http.post("/login", data={"mfa_token": token.group(1), "enrol": "1", "code": code})
    assert done.status_code == 200, done.text
    assert "You are signed in as" in done.text
    assert len(re.findall(r"<li><code>", done.text)) == 10
    assert mfa_enabled(sessions)
    assert site.http.get("/account").status_code == 200
