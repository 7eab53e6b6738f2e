"""The organization pages (/console/organization): members, settings, plan and trial, API tokens, the audit
log; each change as stored and audited, and each refusal with its exact sentence and nothing changed; on
SQLite and MariaDB."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import api_tokens, audit
from spectra.auth.identity import Actor, Principal
from spectra.console.organization import service
from spectra.store import Role
from spectra.store.accounts import ApiToken, AuditLog, Membership, OrganizationSettings, User, UserStatus
from spectra.web.auth_routes import CSRF_REFUSED
from tests.factories.accounts import member, token_of
from tests.factories.platform import tenant
from tests.support.console import ConsoleSite
from tests.support.web import good_hash

ADA, ALF, UMA, GINA, ROOT = (
    "ada@acme.example", "alf@acme.example", "uma@acme.example", "gina@globex.example", "root@example.com",
)  # fmt: skip


@pytest.fixture
def site(sessions: sessionmaker[Session], portal: BlockingPortal) -> ConsoleSite:
    made = ConsoleSite.make(sessions, portal)
    with sessions.begin() as session:
        tenant(
            session, "acme", ["acme"], plan={"maxMonitors": 10, "maxStatusPages": 2},
            trialEnds=(made.clock() + timedelta(days=3, hours=1)).isoformat(),
        )  # fmt: skip
        tenant(session, "globex", ["globex"])
        member(session, ADA, "acme", Role.ADMIN)
        member(session, ALF, "acme", Role.ADMIN)
        member(session, UMA, "acme", Role.USER)
        member(session, GINA, "globex", Role.ADMIN)
        member(session, ROOT, None, None, platform_admin=True)
        for user in session.scalars(select(User)):
            user.password_hash = good_hash()  # accounts set up (enabling one makes it active again)
    return made


def text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def audited(site: ConsoleSite, action: str) -> list[tuple[str, str | None, str | None, str | None]]:
    with site.sessions() as session:
        rows = session.execute(
            select(AuditLog.actor, AuditLog.impersonator, AuditLog.organization, AuditLog.target_name)
            .where(AuditLog.action == action)
            .order_by(AuditLog.id)
        )
        return [(row.actor, row.impersonator, row.organization, row.target_name) for row in rows]


def status_of(site: ConsoleSite, email: str) -> str:
    with site.sessions() as session:
        return str(session.scalars(select(User.status).where(User.email == email)).one())


def count(site: ConsoleSite, what: object) -> int:
    with site.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(what)) or 0)  # type: ignore[arg-type]


def test_an_admin_sees_members_plan_usage_and_trial(site: ConsoleSite) -> None:
    answer = site.browser(ADA).get("/console/organization")
    assert answer.status_code == 200
    page = text(answer.text)
    assert "Organization Acme" in page
    assert "Monitors 0 of 10" in page
    assert "Status pages 0 of 2" in page
    assert "4 days left" in page  # 3 days and an hour: rounded up
    for email in (ADA, ALF, UMA):
        assert email in page
    assert GINA not in page
    assert '<label class="inline" for="role-1">Role of ada@acme.example</label>' in answer.text
    assert 'action="/console/organization/members/uma%40acme.example/disable"' in answer.text
    assert audited(site, "users.listed") == [(ADA, None, "acme", None)]


@pytest.mark.parametrize("path", ["/console/organization", "/console/organization/audit"])
def test_a_user_cannot_open_the_organization_pages(site: ConsoleSite, path: str) -> None:
    answer = site.browser(UMA).get(path)
    assert answer.status_code == 403
    wanted = "members.manage" if path.endswith("organization") else "audit.read"
    assert f"the role user does not allow {wanted}" in answer.text
    assert audited(site, "users.listed") == []


def test_members_are_invited_changed_and_removed_from_the_page(site: ConsoleSite) -> None:
    ada = site.browser(ADA)
    invited = ada.post("/console/organization/members", {"email": "New@Acme.example", "role": "user", "name": "Ned"})
    assert (invited.status_code, invited.headers["location"]) == (
        303, "/console/organization?done=new%40acme.example+invited+as+user",
    )  # fmt: skip
    assert "new@acme.example invited as user" in ada.get(invited.headers["location"]).text
    assert status_of(site, "new@acme.example") == UserStatus.INVITED
    base = "/console/organization/members/uma%40acme.example"
    assert ada.post(f"{base}/role", {"role": "admin"}).status_code == 303
    assert ada.post(f"{base}/disable").status_code == 303
    assert status_of(site, UMA) == UserStatus.DISABLED
    assert ada.post(f"{base}/enable").status_code == 303
    assert status_of(site, UMA) == UserStatus.ACTIVE
    again = ada.post(f"{base}/enable")
    assert again.headers["location"] == "/console/organization?done=uma%40acme.example%3A+nothing+to+change"
    assert ada.post(f"{base}/remove").status_code == 303
    with site.sessions() as session:
        assert session.scalar(select(Membership).join(User).where(User.email == UMA)) is None
    for action in ("member.invited", "member.role_changed", "user.disabled", "user.enabled", "member.removed"):
        rows = audited(site, action)
        assert rows, action
        assert rows[-1][:3] == (ADA, None, "acme"), action


def test_bad_input_is_refused_with_its_sentence_and_nothing_changes(site: ConsoleSite) -> None:
    ada = site.browser(ADA)
    before = count(site, AuditLog), count(site, User), count(site, Membership)
    cases = [
        ("/console/organization/members", {"email": "not-an-address", "role": "user"}, 400,
         "this is not a valid email address"),
        ("/console/organization/members", {"email": "x@acme.example", "role": "owner"}, 400, service.BAD_ROLE),
        ("/console/organization/members/uma%40acme.example/role", {"role": "owner"}, 400, service.BAD_ROLE),
        ("/console/organization/members/gina%40globex.example/disable", {}, 404,
         "gina@globex.example is not a member of acme"),
        ("/console/organization/members/uma%40acme.example/explode", {}, 404, "There is no such change."),
        ("/console/organization/settings", {"require_mfa": "maybe"}, 400, "require_mfa must be on or off."),
    ]  # fmt: skip
    for path, data, status, sentence in cases:
        answer = ada.post(path, data)
        assert (answer.status_code, sentence in html.unescape(answer.text)) == (status, True), path
    assert ada.post("/console/organization/members/alf%40acme.example/remove").status_code == 303
    last = ada.post("/console/organization/members/ada%40acme.example/remove")
    assert last.status_code == 400
    assert "ada@acme.example is the last admin of acme and cannot be removed" in html.unescape(last.text)
    assert status_of(site, GINA) == UserStatus.ACTIVE
    assert (count(site, User), count(site, Membership)) == (before[1], before[2] - 1)
    assert count(site, AuditLog) == before[0] + 1  # alf's removal only


def test_a_user_may_not_change_members_and_a_form_needs_its_csrf_token(site: ConsoleSite) -> None:
    uma = site.browser(UMA)
    refused = uma.post("/console/organization/members/ada%40acme.example/disable")
    assert refused.status_code == 403
    assert "the role user does not allow members.manage" in refused.text
    forged = site.browser(ADA).post("/console/organization/members", {"email": "x@acme.example", "role": "user"},
                                    csrf=False)  # fmt: skip
    assert (forged.status_code, CSRF_REFUSED in forged.text) == (403, True)
    assert status_of(site, ADA) == UserStatus.ACTIVE
    assert count(site, AuditLog) == 0
    with site.sessions() as session:
        assert session.scalar(select(User).where(User.email == "x@acme.example")) is None


def test_two_factor_authentication_is_required_and_released(site: ConsoleSite) -> None:
    ada = site.browser(ADA)
    on = ada.post("/console/organization/settings", {"require_mfa": "on"})
    assert "Two-factor authentication required of every member" in ada.get(on.headers["location"]).text
    assert "Stop requiring it" in ada.get("/console/organization").text
    with site.sessions() as session:
        assert session.scalars(select(OrganizationSettings.require_mfa)).one() is True
    ada.post("/console/organization/settings", {"require_mfa": "off"})
    assert [row[0] for row in audited(site, "org.require_mfa_on") + audited(site, "org.require_mfa_off")] == [ADA, ADA]


def test_a_token_secret_is_shown_once_and_never_again(site: ConsoleSite) -> None:
    uma = site.browser(UMA)
    form = {"name": "ci", "scopes": ["read", "incidents:write"], "expires_in": "30"}
    made = uma.post("/console/organization/tokens", form)  # type: ignore[arg-type]  # a checkbox list
    assert made.status_code == 200
    assert made.headers["cache-control"] == "no-store"
    secret = re.search(r'value="(spt_[A-Za-z0-9_-]{43})"', made.text)
    assert secret is not None
    assert "shown this once and never again" in made.text
    listing = uma.get("/console/organization/tokens").text
    assert secret.group(1) not in listing
    assert f"spt_{secret.group(1)[4:12]}" in listing
    assert "Members&#39; tokens" not in listing
    assert "Members' tokens" not in listing  # a user sees only their own
    assert "Members and plan" not in listing  # nor the admins' pages
    with site.sessions.begin() as session:
        row = session.scalars(select(ApiToken)).one()
        assert (row.name, list(row.scopes)) == ("ci", ["read", "incidents:write"])
        assert row.expires_at == site.clock() + timedelta(days=30)
        assert api_tokens.authenticate(session, secret.group(1), now=site.clock()).email == UMA
        assert secret.group(1) not in str(session.scalars(select(AuditLog.details)).all())
    assert audited(site, "token.created") == [(UMA, None, "acme", "ci")]


def test_token_refusals_say_why_and_make_nothing(site: ConsoleSite) -> None:
    uma = site.browser(UMA)
    cases = [
        ({"name": "ci", "expires_in": "30"}, 400, "a token needs at least one scope"),
        ({"name": "ci", "scopes": "read", "expires_in": "12"}, 400, service.BAD_EXPIRY),
        ({"name": " ", "scopes": "read"}, 400, "a token needs a name"),
        ({"name": "ci", "scopes": "admin"}, 403, "the role user cannot give a token the scope admin"),
    ]
    for data, status, sentence in cases:
        answer = uma.post("/console/organization/tokens", data)
        assert (answer.status_code, sentence in answer.text) == (status, True), data
    assert count(site, ApiToken) == 0
    assert count(site, AuditLog) == 0


def test_admins_see_and_revoke_members_tokens_and_nobody_else_does(site: ConsoleSite) -> None:
    with site.sessions.begin() as session:
        uma_id, gina_id = (session.scalars(select(User.id).where(User.email == e)).one() for e in (UMA, GINA))
        token_of(
            session, Principal(user_id=uma_id, email=UMA, organization="acme", role=Role.USER), "read", name="uma-ci"
        )
        token_of(
            session,
            Principal(user_id=gina_id, email=GINA, organization="globex", role=Role.ADMIN),
            "read",
            name="gina-ci",
        )
        ids = dict(session.execute(select(ApiToken.name, ApiToken.id)).all())
    ada = site.browser(ADA)
    listing = text(ada.get("/console/organization/tokens").text)
    assert "Members' tokens" in listing
    assert "Members and plan" in listing  # the organization's pages, for its admins
    assert "uma@acme.example uma-ci" in listing
    assert "gina-ci" not in listing
    other = ada.post(f"/console/organization/tokens/{ids['gina-ci']}/revoke")
    assert other.status_code == 404
    refused = site.browser(ALF).post(f"/console/organization/tokens/{ids['uma-ci']}/revoke", csrf=False)
    assert refused.status_code == 403
    with site.sessions() as session:
        assert session.scalars(select(ApiToken.revoked_at)).all() == [None, None]
    revoked = ada.post(f"/console/organization/tokens/{ids['uma-ci']}/revoke")
    assert revoked.headers["location"] == "/console/organization/tokens?done=Token+uma-ci+of+uma%40acme.example+revoked"
    assert audited(site, "token.revoked") == [(ADA, None, "acme", "uma-ci")]
    bad = ada.post("/console/organization/tokens/abc/revoke")
    assert bad.status_code == 404


def test_the_audit_log_filters_pages_and_links_its_exports(site: ConsoleSite) -> None:
    with site.sessions.begin() as session:
        for n in range(60):
            audit.record(session, Actor(name=UMA, organization="acme"), "member.poked", now=site.clock(),
                         target=("User", None, f"n{n}"))  # fmt: skip
        audit.record(session, Actor(name=GINA, organization="globex"), "member.poked", now=site.clock())
        audit.record(session, Actor(name=ADA, organization="acme"), "user.login", now=site.clock())
    ada = site.browser(ADA)
    first = ada.get("/console/organization/audit?action=member.&actor=uma%40acme.example").text
    assert first.count("<code>member.poked</code>") == 50
    assert GINA not in first
    assert "user.login" not in first
    older = re.search(r'<a href="([^"]+)" rel="next">Older records</a>', first)
    assert older is not None
    rest = ada.get(html.unescape(older.group(1))).text
    assert rest.count("<code>member.poked</code>") == 10
    assert 'rel="next"' not in rest
    assert (
        'href="/api/v1/audit?action=member.&amp;actor=uma%40acme.example&amp;organization=acme&amp;format=csv"' in first
    )
    export = ada.get("/api/v1/audit?action=member.&actor=uma%40acme.example&organization=acme&format=csv")
    assert export.status_code == 200
    assert len(export.text.strip().splitlines()) == 61
    bad = ada.get("/console/organization/audit?since=yesterday")
    assert bad.status_code == 400
    assert "since must be a time in ISO 8601 with an offset, e.g. 2026-03-02T09:00:00Z." in bad.text
