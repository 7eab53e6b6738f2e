"""The JSON endpoints for organization admins and platform admins (spectra.web.admin_routes): each one's
work as stored and audited, and its refusals (exact answer, nothing changed); through the app's routes on
a real database (SQLite and MariaDB), the clock held still."""

from __future__ import annotations

import base64
import csv
import functools
import io
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware

from spectra.api import parse_object
from spectra.auth import access_tokens, totp
from spectra.auth import sessions as auth_sessions
from spectra.auth.identity import Principal
from spectra.auth.impersonation import REASON_TOO_SHORT, TOO_LONG
from spectra.domain.global_maintenance import current
from spectra.notify.outbox import message_of
from spectra.reconcile import apply_set
from spectra.runtime.cross_site import CrossSiteRefusal
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import Readiness
from spectra.store import GlobalMaintenance, Notification
from spectra.store.accounts import (
    ApiToken,
    AuditLog,
    Impersonation,
    Membership,
    OrganizationSettings,
    Role,
    User,
    UserSession,
    UserStatus,
)
from spectra.web import admin_routes
from spectra.web import auth_routes as routes
from spectra.web.app import AppParts, create_app
from tests.factories.manifests import organization
from tests.support.web import GOOD, NOW, Client, Clock, good_hash
from tests.web.test_auth_routes import assert_problem

ROOT = "root@spectra.example"  # a platform admin in no organization
OPS = "ops@spectra.example"  # a platform admin who is also a member of acme
ADA = "ada@acme.example"  # acme's admin
BOB = "bob@acme.example"  # acme's user
CARL = "carl@acme.example"  # acme's user, whom the admins change
GINA = "gina@globex.example"  # globex's admin
REASON = "Ticket 4711: the customer cannot see their status page"
SIGN_IN_AGAIN = "Your session has ended. Sign in again."


@dataclass
class Site:
    sessions: sessionmaker[Session]
    clock: Clock
    http: Client

    def call(self, method: str, url: str, who: str | dict[str, str] | None = None, **options: Any) -> httpx.Response:
        """`method url` as `who`: an email (a new session of theirs, as a Bearer token), headers, or nobody
        (the client's cookies)."""
        headers = dict(options.pop("headers", {}))
        if isinstance(who, str):
            headers.update(bearer(self.sessions, who))
        elif who is not None:
            headers.update(who)
        request = functools.partial(self.http.client.request, method, url, headers=headers, **options)
        return self.http.portal.call(request)


def bearer(sessions: sessionmaker[Session], email: str, organization: str | None = "") -> dict[str, str]:
    """A new session of `email` in their first organization (none: a platform admin outside any)."""
    with sessions.begin() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        names = sorted(m.organization for m in user.memberships)
        where = (names[0] if names else None) if organization == "" else organization
        issued = auth_sessions.start(
            session, user, organization=where, now=NOW, mfa_verified=True, ip="127.0.0.1", user_agent="test"
        )
        return {"Authorization": f"Bearer {issued.access_token}"}


def make_site(sessions: sessionmaker[Session], portal: BlockingPortal) -> Site:
    clock = Clock()
    app = Starlette(
        routes=[
            *routes.auth_routes(sessions, clock=clock),
            *admin_routes.admin_routes(sessions, clock=clock),
        ],
        middleware=[Middleware(CrossSiteRefusal)],
    )
    return Site(sessions, clock, Client(app, portal))


@pytest.fixture
def site(sessions: sessionmaker[Session], portal: BlockingPortal) -> Site:
    """acme (namespace shop) and globex, their people, and two platform admins."""
    with sessions.begin() as session:
        apply_set(
            session,
            [parse_object(organization("acme", ["shop"])), parse_object(organization("globex", ["globex"]))],
            "test",
        )
        people = [
            (ROOT, None, None, True),
            (OPS, "acme", Role.USER, True),
            (ADA, "acme", Role.ADMIN, False),
            (BOB, "acme", Role.USER, False),
            (CARL, "acme", Role.USER, False),
            (GINA, "globex", Role.ADMIN, False),
        ]
        for email, where, role, platform_admin in people:
            user = User(
                email=email,
                display_name=email.split("@")[0].title(),
                password_hash=good_hash(),
                status=UserStatus.ACTIVE,
                platform_admin=platform_admin,
            )
            if where is not None and role is not None:
                user.memberships.append(Membership(organization=where, role=role))
            session.add(user)
    return make_site(sessions, portal)


def snapshot(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Everything these endpoints may change; a refusal leaves all of it as it was."""
    with sessions() as session:

        def rows(*columns: Any) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in session.execute(select(*columns).order_by(columns[0]))]

        return {
            "users": rows(User.email, User.status, User.platform_admin, User.mfa_enabled, User.display_name),
            "memberships": rows(Membership.id, Membership.user_id, Membership.organization, Membership.role),
            "sessions": rows(UserSession.sid, UserSession.revoked_at),
            "tokens": rows(ApiToken.id, ApiToken.name, ApiToken.revoked_at),
            "impersonations": rows(Impersonation.id, Impersonation.ended_at),
            "settings": rows(OrganizationSettings.organization, OrganizationSettings.require_mfa),
            "maintenance": rows(GlobalMaintenance.id, GlobalMaintenance.active, GlobalMaintenance.message),
            "audit": rows(AuditLog.id, AuditLog.action),
            "mail": rows(Notification.id),
        }


def audited(sessions: sessionmaker[Session], action: str) -> list[AuditLog]:
    with sessions() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def membership(sessions: sessionmaker[Session], email: str, organization: str = "acme") -> str | None:
    with sessions() as session:
        return session.scalar(
            select(Membership.role)
            .join(User, User.id == Membership.user_id)
            .where(User.email == email, Membership.organization == organization)
        )


def status_of(sessions: sessionmaker[Session], email: str) -> str | None:
    with sessions() as session:
        return session.scalar(select(User.status).where(User.email == email))


# --- members ---------------------------------------------------------------------------------------------------


def test_an_admin_lists_the_organization_s_members_only_and_it_is_audited(site: Site) -> None:
    answer = site.call("GET", "/api/v1/members", ADA)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["next"] is None
    assert [m["email"] for m in body["items"]] == [ADA, BOB, CARL, OPS]
    ada = body["items"][0]
    assert ada == {
        "email": ADA,
        "name": "Ada",
        "role": "admin",
        "status": "active",
        "mfa": False,
        "platformAdmin": False,
        "createdAt": ada["createdAt"],
        "lastSignInAt": None,
    }
    (listed,) = audited(site.sessions, "users.listed")
    assert (listed.actor, listed.organization, listed.details) == (ADA, "acme", {"count": 4})


def test_an_invitation_is_mailed_through_the_outbox_and_audited(site: Site) -> None:
    answer = site.call("POST", "/api/v1/members", ADA, json={"email": "New@Acme.example", "role": "user", "name": "Nu"})
    assert answer.status_code == 201, answer.text
    assert answer.json() == {
        "email": "new@acme.example",
        "name": "Nu",
        "role": "user",
        "status": "invited",
        "mailed": True,
    }
    assert membership(site.sessions, "new@acme.example") == "user"
    assert status_of(site.sessions, "new@acme.example") == "invited"
    with site.sessions() as session:
        (mail,) = [message_of(row) for row in session.scalars(select(Notification))]
    assert mail.recipient == "new@acme.example"
    assert mail.subject == "You are invited to Acme on SpectraMonitor"
    assert f"{ADA} invited you" in mail.text
    (invited,) = audited(site.sessions, "member.invited")
    assert (invited.actor, invited.organization, invited.target_name) == (ADA, "acme", "new@acme.example")
    assert invited.details == {"role": "user", "again": False, "mailed": True}


def test_platform_admins_manage_any_organization_s_members_by_naming_it(site: Site) -> None:
    """Onboarding a tenant or helping one whose only admin is locked out, without being a member."""
    listed = site.call("GET", "/api/v1/members?organization=globex", ROOT)
    assert listed.status_code == 200, listed.text
    assert [m["email"] for m in listed.json()["items"]] == [GINA]
    invited = site.call(
        "POST", "/api/v1/members?organization=globex", ROOT, json={"email": "hal@globex.example", "role": "admin"}
    )
    assert invited.status_code == 201, invited.text
    assert membership(site.sessions, "hal@globex.example", "globex") == "admin"
    (row,) = audited(site.sessions, "member.invited")
    assert (row.actor, row.organization) == (ROOT, "globex")
    # Not the organization's settings or tokens: those are reached by impersonation.
    settings = site.call("PUT", "/api/v1/organization/settings?organization=globex", ROOT, json={"requireMfa": True})
    assert settings.status_code == 404, settings.text
    # Nor does an organization admin reach another organization's members by naming it.
    assert site.call("GET", "/api/v1/members?organization=globex", ADA).status_code == 404


def test_an_admin_changes_a_member_s_role_disables_enables_resets_mfa_and_removes(site: Site) -> None:
    path = f"/api/v1/members/{CARL}"
    promoted = site.call("POST", f"{path}/role", ADA, json={"role": "admin"})
    assert promoted.json() == {"email": CARL, "role": "admin"}
    assert membership(site.sessions, CARL) == "admin"
    assert site.call("POST", f"{path}/role", ADA, json={"role": "user"}).json() == {"email": CARL, "role": "user"}

    assert site.call("POST", f"{path}/disable", ADA).json() == {"email": CARL, "changed": True}
    assert status_of(site.sessions, CARL) == "disabled"
    assert site.call("POST", f"{path}/disable", ADA).json() == {"email": CARL, "changed": False}
    assert site.call("POST", f"{path}/enable", ADA).json() == {"email": CARL, "changed": True}
    assert status_of(site.sessions, CARL) == "active"

    with site.sessions.begin() as session:  # Carl has two-factor authentication
        carl = session.scalars(select(User).where(User.email == CARL)).one()
        secret = totp.begin_enrolment(session, carl, now=NOW).secret_text.replace(" ", "")
        totp.confirm_enrolment(session, carl, pyotp.TOTP(secret).at(NOW), now=NOW)
    assert site.call("POST", f"{path}/reset-mfa", ADA).json() == {"email": CARL, "changed": True}
    with site.sessions() as session:
        assert session.scalar(select(User.mfa_enabled).where(User.email == CARL)) is False
    assert site.call("POST", f"{path}/reset-mfa", ADA).json() == {"email": CARL, "changed": False}

    removed = site.call("DELETE", path, ADA)
    assert removed.json() == {"email": CARL, "removed": True}
    assert membership(site.sessions, CARL) is None
    for action in ("member.role_changed", "user.disabled", "user.enabled", "mfa.reset", "member.removed"):
        rows = audited(site.sessions, action)
        assert rows, action
        assert {(row.actor, row.target_name) for row in rows} == {(ADA, CARL)}, action
        assert {row.organization for row in rows} == {"acme"}, action


MEMBER_REFUSALS = [
    # (who, method, path, body, status, detail)
    (BOB, "GET", "/api/v1/members", None, 403, "the role user does not allow members.manage"),
    (
        BOB,
        "POST",
        "/api/v1/members",
        {"email": "x@acme.example", "role": "user"},
        403,
        "the role user does not allow members.manage",
    ),
    (BOB, "POST", f"/api/v1/members/{CARL}/disable", None, 403, "the role user does not allow members.manage"),
    (BOB, "DELETE", f"/api/v1/members/{CARL}", None, 403, "the role user does not allow members.manage"),
    (ROOT, "GET", "/api/v1/members", None, 404, "not found"),
    (ADA, "GET", "/api/v1/members?organization=globex", None, 404, "not found"),
    (ADA, "POST", f"/api/v1/members/{GINA}/disable", None, 404, f"{GINA} is not a member of acme"),
    (ADA, "POST", f"/api/v1/members/{GINA}/role", {"role": "user"}, 404, f"{GINA} is not a member of acme"),
    (ADA, "DELETE", f"/api/v1/members/{GINA}", None, 404, f"{GINA} is not a member of acme"),
    (
        ADA,
        "POST",
        "/api/v1/members/nobody@acme.example/reset-mfa",
        None,
        404,
        "nobody@acme.example is not a member of acme",
    ),
    (ADA, "POST", "/api/v1/members", {}, 400, "email: required field is missing; role: required field is missing"),
    (ADA, "POST", "/api/v1/members", {"email": 7, "role": "user"}, 400, "email: Input should be a valid string"),
    (
        ADA,
        "POST",
        "/api/v1/members",
        {"email": "not-an-address", "role": "user"},
        400,
        "email: this is not a valid email address",
    ),
    (
        ADA,
        "POST",
        "/api/v1/members",
        {"email": "x@acme.example", "role": "owner"},
        400,
        "role: Input should be 'user' or 'admin'",
    ),
    (
        ADA,
        "POST",
        "/api/v1/members",
        {"email": "x@acme.example", "role": "user", "nick": "x"},
        400,
        "nick: unknown field (check the spelling; see the field reference)",
    ),
    (
        ADA,
        "POST",
        "/api/v1/members",
        {"email": "x@acme.example", "role": "user", "name": "n" * 256},
        400,
        "name: String should have at most 255 characters",
    ),
    (ADA, "POST", "/api/v1/members", [1], 400, routes.BODY_NOT_JSON),
    (ADA, "POST", "/api/v1/members", {"email": BOB, "role": "user"}, 400, f"{BOB} is already a member of acme"),
    (ADA, "POST", f"/api/v1/members/{CARL}/role", {"role": "boss"}, 400, "role: Input should be 'user' or 'admin'"),
    (
        ADA,
        "POST",
        f"/api/v1/members/{ADA}/role",
        {"role": "user"},
        400,
        f"{ADA} is the last admin of acme and cannot be demoted: make another member admin first",
    ),
    (
        ADA,
        "POST",
        f"/api/v1/members/{OPS}/disable",
        None,
        400,
        f"{OPS} is a platform admin: only platform admins manage that account",
    ),
]


@pytest.mark.parametrize(("who", "method", "path", "body", "status", "detail"), MEMBER_REFUSALS)
def test_member_refusals_are_exact_and_change_nothing(
    site: Site, who: str, method: str, path: str, body: Any, status: int, detail: str
) -> None:
    headers = bearer(site.sessions, who)
    before = snapshot(site.sessions)
    options = {} if body is None else {"json": body}
    assert_problem(site.call(method, path, headers, **options), status, detail)
    assert snapshot(site.sessions) == before


def test_a_session_that_ended_loses_admin_powers_at_once(site: Site) -> None:
    headers = bearer(site.sessions, ADA)
    assert site.call("POST", "/api/v1/auth/logout", headers).status_code == 200
    before = snapshot(site.sessions)
    answer = site.call("POST", f"/api/v1/members/{CARL}/disable", headers)  # the access token is still good
    assert_problem(answer, 401, SIGN_IN_AGAIN)
    assert answer.headers["www-authenticate"] == 'Bearer realm="spectra", error="invalid_token"'
    assert snapshot(site.sessions) == before


# --- organization settings -------------------------------------------------------------------------------------


def test_an_admin_requires_two_factor_authentication_of_every_member(site: Site) -> None:
    on = site.call("PUT", "/api/v1/organization/settings", ADA, json={"requireMfa": True})
    assert on.json() == {"organization": "acme", "requireMfa": True, "changed": True}
    again = site.call("PUT", "/api/v1/organization/settings", ADA, json={"requireMfa": True})
    assert again.json()["changed"] is False
    with site.sessions() as session:
        row = session.get(OrganizationSettings, "acme")
        assert row is not None
        assert (row.require_mfa, row.updated_by) == (True, ADA)
    (record,) = audited(site.sessions, "org.require_mfa_on")
    assert (record.actor, record.organization) == (ADA, "acme")


@pytest.mark.parametrize(
    ("who", "path", "body", "status", "detail"),
    [
        (BOB, "/api/v1/organization/settings", {"requireMfa": True}, 403, "the role user does not allow org.settings"),
        (ADA, "/api/v1/organization/settings?organization=globex", {"requireMfa": True}, 404, "not found"),
        (
            ADA,
            "/api/v1/organization/settings",
            {"requireMfa": "yes"},
            400,
            "requireMfa: Input should be a valid boolean",
        ),
        (ADA, "/api/v1/organization/settings", {}, 400, "requireMfa: required field is missing"),
    ],
)
def test_settings_refusals(site: Site, who: str, path: str, body: Any, status: int, detail: str) -> None:
    headers = bearer(site.sessions, who)
    before = snapshot(site.sessions)
    assert_problem(site.call("PUT", path, headers, json=body), status, detail)
    assert snapshot(site.sessions) == before


# --- API tokens ------------------------------------------------------------------------------------------------------


def test_the_caller_makes_lists_uses_and_revokes_their_own_api_tokens(site: Site) -> None:
    headers = bearer(site.sessions, ADA)
    made = site.call(
        "POST", "/api/v1/tokens", headers, json={"name": "ci", "scopes": ["admin", "read"], "expiresAt": None}
    )
    assert made.status_code == 201, made.text
    created = made.json()
    secret = created.pop("token")
    assert secret.startswith("spt_")
    assert created["scopes"] == ["read", "admin"]
    assert (created["name"], created["state"], created["prefix"]) == ("ci", "active", secret[4:12])
    listed = site.call("GET", "/api/v1/tokens", headers).json()
    assert listed == {"items": [created], "next": None}  # never the secret again
    assert secret not in json.dumps(listed)
    me = site.call("GET", "/api/v1/auth/me", {"Authorization": f"Bearer {secret}"}).json()
    assert (me["email"], me["via"]) == (ADA, "api-token")
    members = site.call("GET", "/api/v1/members", {"Authorization": f"Bearer {secret}"})
    assert members.status_code == 200  # its `admin` scope
    revoked = site.call("DELETE", f"/api/v1/tokens/{created['id']}", headers)
    assert revoked.json()["state"] == "revoked"
    assert site.call("GET", "/api/v1/auth/me", {"Authorization": f"Bearer {secret}"}).status_code == 401
    (made_row,) = audited(site.sessions, "token.created")
    (revoked_row,) = audited(site.sessions, "token.revoked")
    assert (made_row.actor, made_row.target_name, revoked_row.actor) == (ADA, "ci", ADA)


def test_token_refusals(site: Site) -> None:
    with site.sessions.begin() as session:
        ada = session.scalars(select(User).where(User.email == ADA)).one()
        admin_id = session.scalars(select(User.id).where(User.email == ROOT)).one()
        ada_id = ada.id
    made = site.call("POST", "/api/v1/tokens", ADA, json={"name": "ci", "scopes": ["read"]}).json()
    secret = made["token"]
    impersonated = access_tokens.issue(
        Principal(
            user_id=ada_id,
            email=ADA,
            organization="acme",
            role=Role.ADMIN,
            session_id="s" * 43,
            impersonator_id=admin_id,
            impersonator_email=ROOT,
        ),
        now=NOW,
    )
    cases: list[tuple[Any, str, str, Any, int, str]] = [
        (GINA, "DELETE", f"/api/v1/tokens/{made['id']}", None, 404, "not found"),
        (ADA, "DELETE", "/api/v1/tokens/99999", None, 404, "not found"),
        (ADA, "DELETE", "/api/v1/tokens/abc", None, 404, "not found"),
        (
            ADA,
            "POST",
            "/api/v1/tokens",
            {"name": "x", "scopes": ["write"]},
            400,
            "unknown scope 'write': the scopes are read, incidents:write, statuspages:write, admin",
        ),
        (ADA, "POST", "/api/v1/tokens", {"name": "x", "scopes": []}, 400, "a token needs at least one scope"),
        (ADA, "POST", "/api/v1/tokens", {"name": "x", "scopes": "read"}, 400, "scopes: Input should be a valid array"),
        (
            ADA,
            "POST",
            "/api/v1/tokens",
            {"name": "ci", "scopes": ["read"]},
            400,
            "you already have a token named 'ci' in this organization",
        ),
        (
            ADA,
            "POST",
            "/api/v1/tokens",
            {"name": "x", "scopes": ["read"], "expiresAt": "2026-04-01T00:00:00"},
            400,
            "expiresAt: Input should have timezone info",
        ),
        (
            ADA,
            "POST",
            "/api/v1/tokens",
            {"name": "x", "scopes": ["read"], "expiresAt": "2026-03-01T00:00:00Z"},
            400,
            "a token's expiry must be in the future",
        ),
        (
            BOB,
            "POST",
            "/api/v1/tokens",
            {"name": "x", "scopes": ["admin"]},
            403,
            "the role user cannot give a token the scope admin",
        ),
        (
            ROOT,
            "POST",
            "/api/v1/tokens",
            {"name": "x", "scopes": ["read"]},
            403,
            "self.tokens needs a membership of an organization",
        ),
        (
            {"Authorization": f"Bearer {secret}"},
            "POST",
            "/api/v1/tokens",
            {"name": "x", "scopes": ["read"]},
            403,
            "an API token cannot do self.tokens: sign in for it",
        ),
        (
            {"Authorization": f"Bearer {impersonated}"},
            "GET",
            "/api/v1/tokens",
            None,
            403,
            "not while impersonating: self.tokens stays with the person impersonated",
        ),
    ]
    for who, method, path, body, status, detail in cases:
        headers = bearer(site.sessions, who) if isinstance(who, str) else who
        before = snapshot(site.sessions)
        options = {} if body is None else {"json": body}
        assert_problem(site.call(method, path, headers, **options), status, detail)
        assert snapshot(site.sessions) == before, (path, body)


# --- the audit log ------------------------------------------------------------------------------------------------


def fill_audit(site: Site) -> None:
    """Records in acme (Ada's role changes) and globex (Gina's settings), at known times."""
    for minutes, role in ((1, "admin"), (2, "user"), (3, "admin")):
        site.clock.now = NOW + timedelta(minutes=minutes)
        assert site.call("POST", f"/api/v1/members/{CARL}/role", ADA, json={"role": role}).status_code == 200
    site.clock.now = NOW + timedelta(minutes=4)
    assert site.call("PUT", "/api/v1/organization/settings", GINA, json={"requireMfa": True}).status_code == 200
    site.clock.now = NOW + timedelta(minutes=5)


def test_an_admin_reads_the_organization_s_audit_log_page_by_page(site: Site) -> None:
    fill_audit(site)
    headers = bearer(site.sessions, ADA)
    first = site.call("GET", "/api/v1/audit?action=member.&limit=2", headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [r["details"]["to"] for r in page["items"]] == ["admin", "user"]  # newest first
    assert {r["organization"] for r in page["items"]} == {"acme"}
    assert page["next"] == f"/api/v1/audit?action=member.&limit=2&cursor={cursor_of(page['items'][-1]['id'])}"
    second = site.call("GET", page["next"], headers).json()
    assert [r["details"]["to"] for r in second["items"]] == ["admin"]
    assert second["next"] is None
    everything = site.call("GET", "/api/v1/audit", headers).json()["items"]
    assert {r["organization"] for r in everything} == {"acme"}  # never globex's
    window = site.call("GET", "/api/v1/audit?since=2026-03-02T09:02:07Z&until=2026-03-02T09:03:07Z", headers)
    assert [r["details"]["to"] for r in window.json()["items"]] == ["user"]
    by_actor = site.call("GET", f"/api/v1/audit?actor={GINA}", headers).json()["items"]
    assert by_actor == []


def test_platform_admins_read_every_organization_s_audit_log(site: Site) -> None:
    fill_audit(site)
    headers = bearer(site.sessions, ROOT)
    everything = site.call("GET", "/api/v1/audit", headers).json()["items"]
    assert {"acme", "globex"} <= {r["organization"] for r in everything}
    globex = site.call("GET", "/api/v1/audit?organization=globex", headers).json()["items"]
    assert [(r["actor"], r["action"]) for r in globex] == [(GINA, "org.require_mfa_on")]


def test_audit_exports_stream_csv_and_json_lines_and_are_audited(site: Site) -> None:
    fill_audit(site)
    headers = bearer(site.sessions, ADA)
    exported = site.call("GET", "/api/v1/audit?format=csv&action=member.", headers)
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    assert exported.headers["content-disposition"] == 'attachment; filename="spectra-audit-20260302T090507Z.csv"'
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(row["actor"], row["action"], row["targetName"]) for row in table] == [
        (ADA, "member.role_changed", CARL)
    ] * 3
    assert json.loads(table[0]["details"]) == {"from": "user", "to": "admin"}
    lines = site.call("GET", "/api/v1/audit?format=jsonl", headers)
    assert lines.headers["content-type"] == "application/x-ndjson; charset=utf-8"
    assert lines.headers["content-disposition"].endswith('.jsonl"')
    records = [json.loads(line) for line in lines.text.splitlines()]
    assert {r["organization"] for r in records} == {"acme"}
    assert list(records[1]) == [  # the JSON page's names, as the CSV header names them
        "at", "actor", "impersonator", "organization", "ip", "action", "targetKind", "targetNamespace", "targetName",
        "details",
    ]  # fmt: skip
    assert records[0]["action"] == "audit.exported"  # the csv export, recorded before it ran
    assert records[0]["details"] == {"format": "csv", "organization": "acme", "action": "member."}
    assert [row.actor for row in audited(site.sessions, "audit.exported")] == [ADA, ADA]


@pytest.mark.parametrize(
    ("who", "query", "status", "detail"),
    [
        (BOB, "", 403, "the role user does not allow audit.read"),
        (ADA, "?organization=globex", 404, "not found"),
        (ADA, "?since=yesterday", 400, "since must be a time in ISO 8601 with an offset, e.g. 2026-03-02T09:00:00Z."),
        (
            ADA,
            "?until=2026-03-02T09:00:00",
            400,
            "until must be a time in ISO 8601 with an offset, e.g. 2026-03-02T09:00:00Z.",
        ),
        (
            ADA,
            "?before=7",
            400,
            "before: not a parameter of the audit log (action, actor, since, until, organization, limit, cursor, "
            "format).",
        ),
        (ADA, "?cursor=x", 400, admin_routes.BAD_CURSOR),
        (ADA, f"?cursor={base64.urlsafe_b64encode(b'ada').decode()}", 400, admin_routes.BAD_CURSOR),
        (ADA, f"?action={'a' * 101}", 400, "action has at most 100 characters."),
        (ADA, "?limit=0", 400, admin_routes.BAD_LIMIT),
        (ADA, "?limit=501", 400, admin_routes.BAD_LIMIT),
        (ADA, "?limit=x", 400, admin_routes.BAD_LIMIT),
        (ADA, "?format=xml", 400, admin_routes.BAD_FORMAT),
        (BOB, "?format=csv", 403, "the role user does not allow audit.read"),
    ],
)
def test_audit_refusals(site: Site, who: str, query: str, status: int, detail: str) -> None:
    headers = bearer(site.sessions, who)
    before = snapshot(site.sessions)
    assert_problem(site.call("GET", f"/api/v1/audit{query}", headers), status, detail)
    assert snapshot(site.sessions) == before


# --- platform: tenants ----------------------------------------------------------------------------------------------


def test_platform_admins_list_tenants(site: Site) -> None:
    answer = site.call("GET", "/api/v1/platform/tenants", ROOT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["next"] is None
    acme, globex = answer.json()["items"]
    assert (acme["name"], globex["name"]) == ("acme", "globex")
    assert acme == {
        "name": "acme",
        "displayName": "Acme",
        "namespaces": ["shop"],
        "plan": {"maxMonitors": None, "maxStatusPages": None, "minIntervalSeconds": None},
        "usage": {"monitors": 0, "statusPages": 0},
        "trialEnds": None,
        "trialDaysLeft": None,
        "trialEnded": False,
        "suspended": False,
        "effect": "Active.",
        "members": 4,
        "admins": 1,
        "lastActivity": acme["lastActivity"],
    }


# --- platform: impersonation ---------------------------------------------------------------------------------------


def test_impersonation_from_start_to_end_with_both_identities_in_the_audit_log(site: Site) -> None:
    staff = bearer(site.sessions, ROOT)
    started = site.call(
        "POST",
        "/api/v1/platform/impersonations",
        staff,
        json={"email": ADA, "organization": "acme", "reason": REASON, "minutes": 15},
    )
    assert started.status_code == 201, started.text
    body = started.json()
    assert (body["email"], body["organization"], body["role"]) == (ADA, "acme", "admin")
    assert body["impersonator"] == {"email": ROOT}
    assert body["impersonation"]["expiresAt"] == "2026-03-02T09:15:07Z"
    assert (body["platformAdmin"], body["tokenType"], body["expiresIn"]) == (False, "Bearer", 600)  # the access token's
    assert body["accessExpiresAt"] == "2026-03-02T09:10:07Z"
    assert "access_token" not in body  # OAuth 2.0's names are /api/v1/auth's
    impersonation_id = body["impersonation"]["id"]
    claims = access_tokens.verify(body["accessToken"], now=NOW)
    assert (claims.email, claims.impersonator_email) == (ADA, ROOT)  # the `act` claim

    as_ada = {"Authorization": f"Bearer {body['accessToken']}"}
    changed = site.call("POST", f"/api/v1/members/{CARL}/role", as_ada, json={"role": "admin"})
    assert changed.status_code == 200, changed.text
    (role_change,) = audited(site.sessions, "member.role_changed")
    assert (role_change.actor, role_change.impersonator, role_change.organization) == (ADA, ROOT, "acme")

    active = site.call("GET", "/api/v1/platform/impersonations", staff).json()
    assert active == {
        "items": [
            {
                "id": impersonation_id,
                "impersonator": ROOT,
                "email": ADA,
                "organization": "acme",
                "reason": REASON,
                "startedAt": "2026-03-02T09:00:07Z",
                "expiresAt": "2026-03-02T09:15:07Z",
            }
        ],
        "next": None,
    }
    with site.sessions() as session:  # the organization's admins were mailed
        mails = [message_of(row) for row in session.scalars(select(Notification))]
    assert [mail.recipient for mail in mails] == [ADA]

    ended = site.call("DELETE", f"/api/v1/platform/impersonations/{impersonation_id}", staff)
    assert ended.json() == {"id": impersonation_id, "ended": True}
    assert site.call("DELETE", f"/api/v1/platform/impersonations/{impersonation_id}", staff).json()["ended"] is False
    refreshed = site.http.post("/api/v1/auth/refresh", json={"refresh_token": body["refreshToken"]})
    assert_problem(refreshed, 401, SIGN_IN_AGAIN)
    before = snapshot(site.sessions)
    assert_problem(site.call("POST", f"/api/v1/members/{CARL}/role", as_ada, json={"role": "user"}), 401, SIGN_IN_AGAIN)
    assert snapshot(site.sessions) == before
    assert site.call("GET", "/api/v1/platform/impersonations", staff).json() == {"items": [], "next": None}

    for action in ("impersonation.started", "impersonation.ended"):
        platform_row, organization_row = audited(site.sessions, action)
        assert (platform_row.actor, platform_row.impersonator, platform_row.organization) == (ROOT, None, None)
        assert (organization_row.actor, organization_row.impersonator, organization_row.organization) == (
            ADA,
            ROOT,
            "acme",
        )


def test_the_impersonated_session_ends_its_own_impersonation_with_cookies(site: Site) -> None:
    started = site.call(
        "POST",
        "/api/v1/platform/impersonations",
        ROOT,
        json={"email": BOB, "organization": "acme", "reason": REASON, "useCookies": True},
    )
    assert started.status_code == 201, started.text
    body = started.json()
    assert "accessToken" not in body
    assert body["impersonation"]["expiresAt"] == "2026-03-02T09:30:07Z"  # 30 minutes unless asked
    impersonation_id = body["impersonation"]["id"]
    other = site.call(
        "POST",
        "/api/v1/platform/impersonations",
        ROOT,
        json={"email": CARL, "organization": "acme", "reason": REASON},
    ).json()["impersonation"]["id"]
    csrf = {"X-CSRF-Token": body["csrfToken"]}
    assert site.call("GET", "/api/v1/auth/me").json()["impersonator"] == {"email": ROOT}  # the cookies
    before = snapshot(site.sessions)
    refused = site.call("DELETE", f"/api/v1/platform/impersonations/{other}", headers=csrf)
    assert_problem(refused, 403, "not while impersonating: impersonate is a platform admin's own")
    assert snapshot(site.sessions) == before
    ended = site.call("DELETE", f"/api/v1/platform/impersonations/{impersonation_id}", headers=csrf)
    assert ended.json() == {"id": impersonation_id, "ended": True}
    platform_row, organization_row = audited(site.sessions, "impersonation.ended")
    assert (platform_row.actor, platform_row.impersonator, organization_row.impersonator) == (BOB, ROOT, ROOT)
    assert (platform_row.details or {})["ended_by"] == BOB


def test_impersonation_refusals(site: Site) -> None:
    good = {"email": ADA, "organization": "acme", "reason": REASON}
    cases: list[tuple[str, str, str, Any, int, str]] = [
        (ADA, "POST", "/api/v1/platform/impersonations", good, 403, "only platform admins may do impersonate"),
        (ADA, "GET", "/api/v1/platform/impersonations", None, 403, "only platform admins may do impersonate"),
        (
            ROOT,
            "POST",
            "/api/v1/platform/impersonations",
            {**good, "email": OPS},
            403,
            "a platform admin cannot be impersonated",
        ),
        (ROOT, "POST", "/api/v1/platform/impersonations", {**good, "reason": "because"}, 400, REASON_TOO_SHORT),
        (ROOT, "POST", "/api/v1/platform/impersonations", {**good, "minutes": 61}, 400, TOO_LONG),
        (
            ROOT,
            "POST",
            "/api/v1/platform/impersonations",
            {**good, "minutes": "10"},
            400,
            "minutes: Input should be a valid integer",
        ),
        (
            ROOT,
            "POST",
            "/api/v1/platform/impersonations",
            {**good, "email": GINA},
            400,
            f"{GINA} is not a member of acme",
        ),
        (
            ROOT,
            "POST",
            "/api/v1/platform/impersonations",
            {**good, "organization": "initech"},
            400,
            "there is no Organization named 'initech'",
        ),
        (
            ROOT,
            "POST",
            "/api/v1/platform/impersonations",
            {"email": ADA},
            400,
            "organization: required field is missing; reason: required field is missing",
        ),
        (ROOT, "DELETE", "/api/v1/platform/impersonations/999", None, 404, "there is no impersonation 999"),
        (ROOT, "DELETE", "/api/v1/platform/impersonations/x", None, 404, "not found"),
        (ADA, "DELETE", "/api/v1/platform/impersonations/1", None, 403, "only platform admins may do impersonate"),
    ]
    for who, method, path, body, status, detail in cases:
        headers = bearer(site.sessions, who)
        before = snapshot(site.sessions)
        options = {} if body is None else {"json": body}
        assert_problem(site.call(method, path, headers, **options), status, detail)
        assert snapshot(site.sessions) == before, (path, body)


# --- platform: tenants and global maintenance refusals --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/platform/tenants"),
        ("GET", "/api/v1/platform/global-maintenance"),
        ("PUT", "/api/v1/platform/global-maintenance"),
        ("DELETE", "/api/v1/platform/global-maintenance"),
    ],
)
def test_organization_admins_may_not_call_platform_endpoints(site: Site, method: str, path: str) -> None:
    action = "tenants.manage" if path.endswith("tenants") else "maintenance.global"
    headers = bearer(site.sessions, ADA)
    before = snapshot(site.sessions)
    options = {"json": {"message": "upgrade"}} if method == "PUT" else {}
    assert_problem(site.call(method, path, headers, **options), 403, f"only platform admins may do {action}")
    assert snapshot(site.sessions) == before


def test_global_maintenance_on_and_off_shows_in_current_and_the_audit_log(site: Site) -> None:
    headers = bearer(site.sessions, ROOT)
    path = "/api/v1/platform/global-maintenance"
    assert site.call("GET", path, headers).json()["on"] is False
    on = site.call("PUT", path, headers, json={"message": "Database upgrade", "until": "2h", "showOnStatusPages": True})
    assert on.status_code == 200, on.text
    assert on.json() == {
        "on": True,
        "message": "Database upgrade",
        "until": "2026-03-02T11:00:07Z",
        "showOnStatusPages": True,
        "startedBy": ROOT,
        "startedAt": "2026-03-02T09:00:07Z",
        "endedAt": None,
    }
    with site.sessions() as session:
        status = current(session, now=NOW)
        assert (status.on, status.message, status.banner) == (True, "Database upgrade", "Database upgrade")
    assert site.call("GET", path, headers).json() == on.json()
    site.clock.now = NOW + timedelta(minutes=5)
    off = site.call("DELETE", path, headers)
    assert off.json()["on"] is False
    assert off.json()["endedAt"] == "2026-03-02T09:05:07Z"
    with site.sessions() as session:
        assert current(session, now=site.clock.now).on is False
    (turned_on,) = audited(site.sessions, "maintenance.global_on")
    (turned_off,) = audited(site.sessions, "maintenance.global_off")
    assert (turned_on.actor, (turned_on.details or {})["message"], turned_off.actor) == (ROOT, "Database upgrade", ROOT)
    before = snapshot(site.sessions)
    again = site.call("DELETE", path, headers)
    assert_problem(
        again, 409, "global maintenance is not on (the last one ended 2026-03-02T09:05:07Z); nothing changed"
    )
    assert snapshot(site.sessions) == before


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"message": "  "}, "the message is empty: say why nothing is paged"),
        (
            {"message": "x", "until": "soon"},
            "until 'soon' is neither a time (ISO 8601 with an offset, e.g. 2026-03-02T12:00+01:00) nor a duration (e.g. 90m, 2h, 1d)",
        ),
        (
            {"message": "x", "until": "2026-03-01T00:00:00Z"},
            "until 2026-03-01T00:00:00Z is not in the future (now: 2026-03-02T09:00:07Z)",
        ),
        ({"message": "x", "showOnStatusPages": 1}, "showOnStatusPages: Input should be a valid boolean"),
        ({"until": "2h"}, "message: required field is missing"),
    ],
)
def test_global_maintenance_bad_bodies(site: Site, body: Any, detail: str) -> None:
    headers = bearer(site.sessions, ROOT)
    before = snapshot(site.sessions)
    assert_problem(site.call("PUT", "/api/v1/platform/global-maintenance", headers, json=body), 400, detail)
    assert snapshot(site.sessions) == before


# --- pages ----------------------------------------------------------------------------------------------------------


def cursor_of(key: int | str) -> str:
    """The cursor after an item of key `key` (base64url of the key, unpadded: opaque to clients)."""
    return base64.urlsafe_b64encode(str(key).encode()).decode().rstrip("=")


def every_page(site: Site, path: str, who: str | dict[str, str]) -> list[list[Any]]:
    """The items of each page of `path`, following `next` to the last page."""
    headers = bearer(site.sessions, who) if isinstance(who, str) else who
    pages: list[list[Any]] = []
    following: str | None = path
    while following is not None:
        answer = site.call("GET", following, headers)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json()["items"])
        following = answer.json()["next"]
        assert len(pages) < 20, following
    return pages


def make_tokens(site: Site, email: str, names: list[str]) -> list[int]:
    headers = bearer(site.sessions, email)
    made = [site.call("POST", "/api/v1/tokens", headers, json={"name": name, "scopes": ["read"]}) for name in names]
    assert {answer.status_code for answer in made} == {201}
    return [answer.json()["id"] for answer in made]


def start_impersonations(site: Site, emails: list[str]) -> list[int]:
    headers = bearer(site.sessions, ROOT)
    body = {"organization": "acme", "reason": REASON}
    made = [site.call("POST", "/api/v1/platform/impersonations", headers, json={**body, "email": e}) for e in emails]
    assert {answer.status_code for answer in made} == {201}
    return [answer.json()["impersonation"]["id"] for answer in made]


def test_members_come_page_by_page_by_email_keeping_the_query(site: Site) -> None:
    pages = every_page(site, "/api/v1/members?limit=1", ADA)
    assert [[m["email"] for m in page] for page in pages] == [[ADA], [BOB], [CARL], [OPS]]
    first = site.call("GET", "/api/v1/members?organization=acme&limit=3", ROOT).json()
    assert first["next"] == f"/api/v1/members?organization=acme&limit=3&cursor={cursor_of(CARL)}"
    # A member invited before the cursor meanwhile is not on a later page, nor is anyone twice.
    invited = site.call("POST", "/api/v1/members", ADA, json={"email": "abe@acme.example", "role": "user"})
    assert invited.status_code == 201, invited.text
    assert [m["email"] for m in site.call("GET", first["next"], ROOT).json()["items"]] == [OPS]


def test_tokens_tenants_and_impersonations_come_page_by_page(site: Site) -> None:
    ids = make_tokens(site, ADA, ["a", "b", "c"])
    pages = every_page(site, "/api/v1/tokens?limit=2", ADA)
    assert [[t["id"] for t in page] for page in pages] == [ids[:0:-1], ids[:1]]  # newest first
    first = site.call("GET", "/api/v1/tokens?limit=2", ADA).json()
    make_tokens(site, ADA, ["d"])  # newer than the cursor: the next page goes on where the first ended
    assert [t["id"] for t in site.call("GET", first["next"], ADA).json()["items"]] == ids[:1]

    pages = every_page(site, "/api/v1/platform/tenants?limit=1", ROOT)
    assert [[t["name"] for t in page] for page in pages] == [["acme"], ["globex"]]

    started = start_impersonations(site, [ADA, BOB, CARL])
    pages = every_page(site, "/api/v1/platform/impersonations?limit=2", ROOT)
    assert [[i["id"] for i in page] for page in pages] == [started[:0:-1], started[:1]]


def test_the_audit_log_s_last_page_has_no_next_even_when_it_is_full(site: Site) -> None:
    fill_audit(site)
    full = site.call("GET", "/api/v1/audit?action=member.&limit=3", ADA).json()
    assert (len(full["items"]), full["next"]) == (3, None)
    pages = every_page(site, "/api/v1/audit?action=member.&limit=1", ADA)
    assert [[r["details"]["to"] for r in page] for page in pages] == [["admin"], ["user"], ["admin"]]
    newest = full["items"][0]["id"]
    exported = site.call("GET", f"/api/v1/audit?format=jsonl&action=member.&cursor={cursor_of(newest)}", ADA)
    assert [json.loads(line)["details"]["to"] for line in exported.text.splitlines()] == ["user", "admin"]


LISTS = [
    (ADA, "/api/v1/members"),
    (ADA, "/api/v1/tokens"),
    (ADA, "/api/v1/audit"),
    (ROOT, "/api/v1/platform/tenants"),
    (ROOT, "/api/v1/platform/impersonations"),
]


@pytest.mark.parametrize(("who", "path"), LISTS)
def test_every_list_takes_a_limit_from_1_to_200(site: Site, who: str, path: str) -> None:
    headers = bearer(site.sessions, who)
    for limit in ("1", "500"):
        answer = site.call("GET", f"{path}?limit={limit}", headers)
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) == {"items", "next"}
        assert len(answer.json()["items"]) <= int(limit)
    for limit in ("0", "501", "-1", "1.5", "x", ""):
        assert_problem(site.call("GET", f"{path}?limit={limit}", headers), 400, admin_routes.BAD_LIMIT)


@pytest.mark.parametrize(("who", "path"), LISTS)
@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "a b",
        "x" * 401,
        "_w",  # the byte 0xff: not UTF-8
        "MTI=",  # padded: never made
        "MTJ",  # "12" with other trailing bits: never made
    ],
)
def test_every_list_refuses_a_cursor_it_never_made(site: Site, who: str, path: str, cursor: str) -> None:
    headers = bearer(site.sessions, who)
    before = snapshot(site.sessions)
    refused = site.call("GET", path, headers, params={"cursor": cursor})
    assert_problem(refused, 400, admin_routes.BAD_CURSOR)
    assert refused.headers["content-type"] == "application/problem+json"
    assert snapshot(site.sessions) == before


@pytest.mark.parametrize(
    ("who", "path"), [(ADA, "/api/v1/tokens"), (ADA, "/api/v1/audit"), (ROOT, "/api/v1/platform/impersonations")]
)
def test_lists_kept_by_id_refuse_a_cursor_of_another_list(site: Site, who: str, path: str) -> None:
    assert_problem(site.call("GET", f"{path}?cursor={cursor_of(ADA)}", who), 400, admin_routes.BAD_CURSOR)


# --- camelCase bodies ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "detail"),
    [
        (ADA, "PUT", "/api/v1/organization/settings", {"require_mfa": True}, "require_mfa"),
        (ADA, "POST", "/api/v1/tokens", {"name": "x", "scopes": ["read"], "expires_at": None}, "expires_at"),
        (
            ROOT,
            "POST",
            "/api/v1/platform/impersonations",
            {"email": ADA, "organization": "acme", "reason": REASON, "use_cookies": True},
            "use_cookies",
        ),
        (ROOT, "PUT", "/api/v1/platform/global-maintenance", {"message": "x", "show_on_status_pages": True},
         "show_on_status_pages"),
    ],
)  # fmt: skip
def test_a_snake_case_body_field_is_an_unknown_field(
    site: Site, who: str, method: str, path: str, body: Any, detail: str
) -> None:
    """The names are camelCase only: the old spelling is refused, never quietly taken or ignored."""
    headers = bearer(site.sessions, who)
    before = snapshot(site.sessions)
    refused = site.call(method, path, headers, json=body)
    assert refused.status_code == 400, refused.text
    assert f"{detail}: unknown field (check the spelling; see the field reference)" in refused.json()["detail"]
    assert snapshot(site.sessions) == before


# --- cookies and CSRF ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "method", "path", "body"),
    [
        (ADA, "POST", "/api/v1/members", {"email": "new@acme.example", "role": "user"}),
        (ADA, "POST", f"/api/v1/members/{CARL}/disable", None),
        (ADA, "PUT", "/api/v1/organization/settings", {"requireMfa": True}),
        (ADA, "POST", "/api/v1/tokens", {"name": "ci", "scopes": ["read"]}),
        (ROOT, "PUT", "/api/v1/platform/global-maintenance", {"message": "upgrade"}),
        (ROOT, "POST", "/api/v1/platform/impersonations", {"email": ADA, "organization": "acme", "reason": REASON}),
    ],
)
def test_cookie_callers_need_the_csrf_token_to_change_anything(
    site: Site, email: str, method: str, path: str, body: Any
) -> None:
    signed_in = site.http.post("/api/v1/auth/login", json={"email": email, "password": GOOD, "use_cookies": True})
    assert signed_in.status_code == 200, signed_in.text
    csrf = signed_in.json()["csrf_token"]
    options = {} if body is None else {"json": body}
    before = snapshot(site.sessions)
    for headers in ({}, {"X-CSRF-Token": csrf + "x"}):
        assert_problem(site.call(method, path, headers=headers, **options), 403, routes.CSRF_REFUSED)
    assert snapshot(site.sessions) == before
    done = site.call(method, path, headers={"X-CSRF-Token": csrf}, **options)
    assert done.status_code in (200, 201), done.text


def test_cookie_callers_read_without_the_csrf_token(site: Site) -> None:
    signed_in = site.http.post("/api/v1/auth/login", json={"email": ADA, "password": GOOD, "use_cookies": True})
    assert signed_in.status_code == 200
    assert site.call("GET", "/api/v1/members").status_code == 200
    assert site.call("GET", "/api/v1/audit").status_code == 200


def test_no_credentials_and_no_state_change_on_get(site: Site) -> None:
    answer = site.call("GET", "/api/v1/members")
    assert_problem(answer, 401, routes.NOT_SIGNED_IN)
    assert site.call("GET", f"/api/v1/members/{CARL}/disable", ADA).status_code == 405
    assert site.call("GET", "/api/v1/organization/settings", ADA).status_code == 405


def test_create_app_mounts_the_admin_endpoints_with_sign_in_only(
    sessions: sessionmaker[Session], portal: BlockingPortal
) -> None:
    def parts(sign_in: bool) -> AppParts:
        return AppParts(sessions, Metrics(), Readiness(), sign_in=sign_in)

    assert_problem(Client(create_app(parts(True)), portal).get("/api/v1/members"), 401, routes.NOT_SIGNED_IN)
    assert Client(create_app(parts(False)), portal).get("/api/v1/members").status_code == 404
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 0
