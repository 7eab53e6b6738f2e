"""Single sign-on end to end: the real app (spectra.web.app.create_app with SPECTRA_SSO_PROVIDERS) against a
real OpenID Connect provider, oidc-provider-mock, served on 127.0.0.1 from a thread. The test plays the
browser with httpx, following each redirect by hand: our app through ASGI, the provider over HTTP. On
SQLite and MariaDB."""

from __future__ import annotations

import html
import re
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
import werkzeug.serving
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import sso
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import Readiness
from spectra.store.accounts import AuditLog, Membership, Role, User, UserSession
from spectra.web import sso_routes
from spectra.web.app import AppParts, create_app
from tests.factories.accounts import member, organization_resource

# The provider is authlib's server side, which warns about its own deprecated parts (in its thread).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*")

PUBLIC_URL = "http://127.0.0.1:8080"
SECRET_ENV = "SPECTRA_TEST_SSO_CLIENT_SECRET"
ANA = "ana@acme.example"


@pytest.fixture
def idp() -> Iterator[str]:
    """The provider's issuer URL: oidc-provider-mock on 127.0.0.1, any client id and secret accepted."""
    with warnings.catch_warnings():
        import authlib.deprecate  # noqa: F401 - first: its "always" filter would beat the next line

        warnings.simplefilter("ignore", DeprecationWarning)  # the provider imports authlib's deprecated jose
        import oidc_provider_mock
    server = werkzeug.serving.make_server("127.0.0.1", 0, oidc_provider_mock.app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class Browser:
    """One person's browser: our app through ASGI, the provider over HTTP, redirects followed by hand."""

    def __init__(self, app: Any, idp: str) -> None:
        self.app = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)
        self.idp = httpx.AsyncClient(base_url=idp)

    async def close(self) -> None:
        await self.app.aclose()
        await self.idp.aclose()

    async def set_user(self, sub: str, **claims: Any) -> None:
        answer = await self.idp.put(f"/users/{sub}", json=claims)
        assert answer.status_code == 204, answer.text

    async def authorize_url(self, provider: str = "acme") -> str:
        started = await self.app.get(f"/sso/{provider}")
        assert started.status_code == 302, started.text
        assert started.headers["cache-control"] == "no-store"
        return started.headers["location"]

    async def at_provider(self, authorize_url: str, *, sub: str | None = None, deny: bool = False) -> str:
        """The provider's form submitted; the callback URL it redirects to."""
        answer = await self.idp.post(authorize_url, data={"action": "deny"} if deny else {"sub": sub})
        assert answer.status_code == 302, answer.text
        location: str = answer.headers["location"]
        assert location.startswith(f"{PUBLIC_URL}/sso/"), location
        return location

    async def callback(self, url: str) -> httpx.Response:
        parts = urlsplit(url)
        return await self.app.get(f"{parts.path}?{parts.query}")


def error_of(answer: httpx.Response) -> str:
    """The refusal the page shows a person."""
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', answer.text, re.DOTALL)
    assert found is not None, answer.text
    return html.unescape(found.group(1))


def replaced(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **params})))


@pytest.fixture
async def browser(idp: str, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Browser]:
    with sessions.begin() as session:
        organization_resource(session, "acme", ["shop"])
        member(session, "boss@acme.example", "acme", Role.ADMIN)
    provider = sso.Provider.model_validate(
        {
            "name": "acme",
            "title": "Acme SSO",
            "issuer": idp,
            "client_id": "spectra",
            "client_secret_env": SECRET_ENV,
            "mappings": [
                {"group": "acme-ops", "organization": "acme", "role": "admin"},
                {"group": "acme-staff", "organization": "acme", "role": "user"},
            ],
        }
    )
    monkeypatch.setenv(SECRET_ENV, "client-secret-of-the-test")
    monkeypatch.setenv(sso.PROVIDERS_ENV, f"[{provider.model_dump_json()}]")
    monkeypatch.setenv("SPECTRA_PUBLIC_URL", PUBLIC_URL)
    app = create_app(AppParts(sessions, Metrics(), Readiness(), sign_in=True))
    running = Browser(app, idp)
    yield running
    await running.close()


def stored(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """What single sign-on may change: accounts, memberships, sessions and the audit log."""
    with sessions() as session:
        return {
            "users": sorted(session.scalars(select(User.email))),
            "memberships": sorted(
                (email, org, role)
                for email, org, role in session.execute(
                    select(User.email, Membership.organization, Membership.role).join(User)
                )
            ),
            "sessions": session.scalar(select(func.count()).select_from(UserSession)),
            "audit": [(row.action, row.actor) for row in session.scalars(select(AuditLog).order_by(AuditLog.id))],
        }


async def test_a_mapped_group_gives_membership_role_and_a_working_session(
    browser: Browser, sessions: sessionmaker[Session]
) -> None:
    await browser.set_user("ana", email=ANA, email_verified=True, name="Ana", groups=["acme-ops", "elsewhere"])
    authorize = await browser.authorize_url()
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["client_id"] == ["spectra"]
    assert query["redirect_uri"] == [f"{PUBLIC_URL}/sso/acme/callback"]
    assert set(query["scope"][0].split()) == {"openid", "email", "profile"}
    assert query["nonce"][0]
    assert query["state"][0]
    assert query["code_challenge"][0]
    state_cookie = browser.app.cookies.jar
    assert [(c.name, c.path) for c in state_cookie] == [("spectra-sso", "/sso")]

    signed_in = await browser.callback(await browser.at_provider(authorize, sub="ana"))

    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == "/"
    assert {c.name for c in browser.app.cookies.jar} == {"spectra-access", "spectra-refresh", "spectra-csrf"}
    me = await browser.app.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json() == {
        "email": ANA,
        "organization": "acme",
        "role": "admin",
        "platform_admin": False,
        "impersonator": None,
        "via": "session",
    }
    refreshed = await browser.app.post(
        "/api/v1/auth/refresh", headers={"X-CSRF-Token": browser.app.cookies["spectra-csrf"]}
    )
    assert refreshed.status_code == 200, refreshed.text  # the same rotating sessions as /login's
    now = stored(sessions)
    assert now["users"] == [ANA, "boss@acme.example"]
    assert (ANA, "acme", "admin") in now["memberships"]
    assert now["audit"] == [
        ("user.created", "sso:acme"),
        ("member.added", "sso:acme"),
        ("user.login", ANA),
    ]
    with sessions() as session:
        user = session.scalars(select(User).where(User.email == ANA)).one()
        assert (user.status, user.password_hash, user.display_name) == ("active", None, "Ana")
        login = session.scalars(select(AuditLog).where(AuditLog.action == "user.login")).one()
        assert login.details == {"method": "sso", "provider": "acme", "mfa": False, "mfa_by": "identity provider"}
        assert login.organization == "acme"


async def test_the_login_page_lists_the_provider(browser: Browser) -> None:
    page = await browser.app.get("/login")
    assert page.status_code == 200
    assert '<a href="/sso/acme">Sign in with Acme SSO</a>' in page.text


async def test_an_unmapped_user_is_refused_with_nothing_stored(
    browser: Browser, sessions: sessionmaker[Session]
) -> None:
    await browser.set_user("eve", email="eve@acme.example", email_verified=True, groups=["visitors"])
    before = stored(sessions)
    refused = await browser.callback(await browser.at_provider(await browser.authorize_url(), sub="eve"))
    assert refused.status_code == 403
    assert (
        error_of(refused) == "Your account at Acme SSO is in no group that gives access here: ask your administrator."
    )
    after = stored(sessions)
    assert after["audit"] == [*before["audit"], ("user.login_failed", "anonymous")]
    assert {k: v for k, v in after.items() if k != "audit"} == {k: v for k, v in before.items() if k != "audit"}
    assert "spectra-access" not in browser.app.cookies


async def test_an_unverified_email_is_refused(browser: Browser, sessions: sessionmaker[Session]) -> None:
    await browser.set_user("ana", email=ANA, email_verified=False, groups=["acme-ops"])
    before = stored(sessions)
    refused = await browser.callback(await browser.at_provider(await browser.authorize_url(), sub="ana"))
    assert refused.status_code == 403
    assert error_of(refused) == sso.NOT_VERIFIED
    after = stored(sessions)
    assert after["users"] == before["users"]
    assert after["sessions"] == before["sessions"]
    assert after["audit"] == [*before["audit"], ("user.login_failed", "anonymous")]


async def test_a_tampered_state_is_refused(browser: Browser, sessions: sessionmaker[Session]) -> None:
    await browser.set_user("ana", email=ANA, email_verified=True, groups=["acme-ops"])
    callback = await browser.at_provider(await browser.authorize_url(), sub="ana")
    before = stored(sessions)
    refused = await browser.callback(replaced(callback, state="x" + parse_qs(urlsplit(callback).query)["state"][0]))
    assert refused.status_code == 400
    assert error_of(refused) == sso_routes.STATE_INVALID
    assert stored(sessions) == before


async def test_a_callback_from_another_browser_is_refused(browser: Browser, sessions: sessionmaker[Session]) -> None:
    await browser.set_user("ana", email=ANA, email_verified=True, groups=["acme-ops"])
    callback = await browser.at_provider(await browser.authorize_url(), sub="ana")
    browser.app.cookies.clear()  # the state cookie stayed in the browser that started
    before = stored(sessions)
    refused = await browser.callback(callback)
    assert refused.status_code == 400
    assert error_of(refused) == sso_routes.STATE_INVALID
    assert stored(sessions) == before


async def test_a_replayed_callback_is_refused(browser: Browser, sessions: sessionmaker[Session]) -> None:
    await browser.set_user("ana", email=ANA, email_verified=True, groups=["acme-ops"])
    callback = await browser.at_provider(await browser.authorize_url(), sub="ana")
    state_cookie = browser.app.cookies["spectra-sso"]
    assert (await browser.callback(callback)).status_code == 303
    before = stored(sessions)
    browser.app.cookies.clear()
    browser.app.cookies.set("spectra-sso", state_cookie, domain="127.0.0.1", path="/sso")
    replayed = await browser.callback(callback)
    assert replayed.status_code == 401
    assert error_of(replayed) == sso_routes.UNVERIFIED
    assert stored(sessions) == before
    assert "spectra-access" not in browser.app.cookies


async def test_a_nonce_other_than_ours_is_refused(browser: Browser, sessions: sessionmaker[Session]) -> None:
    await browser.set_user("ana", email=ANA, email_verified=True, groups=["acme-ops"])
    authorize = replaced(await browser.authorize_url(), nonce="a-nonce-of-another-sign-in")
    before = stored(sessions)
    refused = await browser.callback(await browser.at_provider(authorize, sub="ana"))
    assert refused.status_code == 401
    assert error_of(refused) == sso_routes.UNVERIFIED
    assert stored(sessions) == before


async def test_a_code_issued_to_another_client_is_refused(browser: Browser, sessions: sessionmaker[Session]) -> None:
    # The provider binds the code (and the ID token's audience) to the client it was issued to.
    await browser.set_user("ana", email=ANA, email_verified=True, groups=["acme-ops"])
    authorize = replaced(await browser.authorize_url(), client_id="another-application")
    before = stored(sessions)
    refused = await browser.callback(await browser.at_provider(authorize, sub="ana"))
    assert refused.status_code == 401
    assert error_of(refused) == sso_routes.UNVERIFIED
    assert stored(sessions) == before


async def test_a_denied_sign_in_says_so(browser: Browser, sessions: sessionmaker[Session]) -> None:
    before = stored(sessions)
    refused = await browser.callback(await browser.at_provider(await browser.authorize_url(), deny=True))
    assert refused.status_code == 401
    assert error_of(refused) == "Acme SSO did not sign you in (access denied)."
    assert stored(sessions) == before


async def test_an_unknown_provider_is_not_found(browser: Browser) -> None:
    answer = await browser.app.get("/sso/nobody")
    assert answer.status_code == 404
    assert error_of(answer) == sso_routes.UNKNOWN_PROVIDER


def test_bad_settings_stop_the_app_at_start(sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    # serve_app turns this ValueError into the log line and exit code 1 of `spectra run` and `spectra web`.
    monkeypatch.setenv(sso.PROVIDERS_ENV, '[{"name": "acme"}]')
    with pytest.raises(ValueError, match=r"^SPECTRA_SSO_PROVIDERS\[0\]\.title: is required$"):
        create_app(AppParts(sessions, Metrics(), Readiness(), sign_in=True))
    create_app(AppParts(sessions, Metrics(), Readiness(), sign_in=False))  # no sign-in, no single sign-on
