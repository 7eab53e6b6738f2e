"""The platform pages (/console/platform): tenants, impersonation started from the page (the browser
becomes the member's session, the banner shows, both names are audited), global maintenance, every
organization's audit log and the system page made from real leases in the store; refusals with their
exact sentence and nothing changed; on SQLite and MariaDB."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import audit
from spectra.auth.identity import Actor
from spectra.auth.impersonation import REASON_TOO_SHORT, TOO_SHORT
from spectra.auth.tenants import SUSPENDED_EFFECT, TRIAL_EFFECT
from spectra.console.platform.views import BAD_MINUTES
from spectra.domain.global_maintenance import current
from spectra.store import Role
from spectra.store.accounts import AuditLog, Impersonation, User
from spectra.store.migrate import head_revision
from spectra.store.worker_leases import ensure_leases
from spectra.web.auth_routes import CSRF_REFUSED
from spectra.web.credentials import cookie_names
from tests.factories.accounts import member
from tests.factories.platform import leader, outbox_message, tenant, worker_holding
from tests.factories.store import monitor_factory
from tests.support.console import ConsoleSite
from tests.support.web import good_hash

ADA, UMA, GINA, ROOT = "ada@acme.example", "uma@acme.example", "gina@globex.example", "root@example.com"
REASON = "Ticket 4711: the customer cannot see their status page"


@pytest.fixture
def site(sessions: sessionmaker[Session], portal: BlockingPortal) -> ConsoleSite:
    made = ConsoleSite.make(sessions, portal)
    with sessions.begin() as session:
        tenant(
            session,
            "acme",
            ["acme"],
            plan={"maxMonitors": 10},
            trialEnds=(made.clock() + timedelta(days=2)).isoformat(),
        )
        tenant(session, "globex", ["globex"], suspended=True)
        member(session, ADA, "acme", Role.ADMIN)
        member(session, UMA, "acme", Role.USER)
        member(session, GINA, "globex", Role.ADMIN)
        member(session, ROOT, None, None, platform_admin=True)
        for user in session.scalars(select(User)):
            user.password_hash = good_hash()
    return made


def text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def audit_rows(site: ConsoleSite, action: str) -> list[tuple[str, str | None, str | None]]:
    with site.sessions() as session:
        rows = session.execute(
            select(AuditLog.actor, AuditLog.impersonator, AuditLog.organization)
            .where(AuditLog.action == action)
            .order_by(AuditLog.id)
        )
        return [(row.actor, row.impersonator, row.organization) for row in rows]


def count(site: ConsoleSite, what: object) -> int:
    with site.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(what)) or 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["/console/platform", "/console/platform/system", "/console/platform/audit"])
def test_an_organization_admin_cannot_open_the_platform_pages(site: ConsoleSite, path: str) -> None:
    answer = site.browser(ADA).get(path)
    assert answer.status_code == 403
    assert "only platform admins may do" in answer.text


def test_an_organization_admin_cannot_impersonate_or_switch_maintenance(site: ConsoleSite) -> None:
    ada = site.browser(ADA)
    started = ada.post("/console/platform/impersonations", {"email": UMA, "organization": "acme", "reason": REASON})
    assert (started.status_code, "only platform admins may do impersonate" in started.text) == (403, True)
    switched = ada.post("/console/platform/maintenance", {"message": "Racks"})
    assert (switched.status_code, "only platform admins may do maintenance.global" in switched.text) == (403, True)
    assert count(site, Impersonation) == 0
    assert count(site, AuditLog) == 0
    with site.sessions() as session:
        assert current(session, now=site.clock()).on is False


def test_tenants_show_plan_usage_trial_and_suspension(site: ConsoleSite) -> None:
    page = text(site.browser(ROOT).get("/console/platform").text)
    assert "Acme acme namespaces: acme 0 of 10 0 of no limit 2 days left" in page
    assert TRIAL_EFFECT in page
    assert SUSPENDED_EFFECT in page
    assert "suspended" in page
    assert "1 (1 admin)" in page


def test_impersonation_from_the_page_shows_the_banner_and_both_names_in_the_audit_log(site: ConsoleSite) -> None:
    root = site.browser(ROOT)
    own_access = root.http.cookies.get(cookie_names().access)
    started = root.post(
        "/console/platform/impersonations", {"email": ADA, "organization": "acme", "reason": REASON, "minutes": "15"}
    )
    assert (started.status_code, started.headers["location"]) == (303, "/console")
    assert root.http.cookies.get(cookie_names().access) != own_access  # this browser is the member's session now
    home = root.get("/console/organization")
    assert home.status_code == 200
    assert f"You ({ROOT}) are impersonating {ADA} in acme" in home.text
    with site.sessions() as session:
        row = session.scalars(select(Impersonation)).one()
        assert (row.reason, row.expires_at - row.started_at) == (REASON, timedelta(minutes=15))
    assert audit_rows(site, "impersonation.started") == [(ROOT, None, None), (ADA, ROOT, "acme")]
    assert (ADA, ROOT, "acme") in audit_rows(site, "users.listed")  # what it did carries both names
    refused = root.get("/console/platform")
    assert refused.status_code == 403
    assert "not while impersonating: tenants.manage is a platform admin&#39;s own" in refused.text
    ended = root.post("/console/impersonation/end")
    assert ended.headers["location"] == "/login"
    assert audit_rows(site, "impersonation.ended")[-1] == (ADA, ROOT, "acme")


def test_impersonation_refusals_say_why_and_start_nothing(site: ConsoleSite) -> None:
    root = site.browser(ROOT)
    cases = [
        ({"email": ADA, "organization": "acme", "reason": "because"}, 400, REASON_TOO_SHORT),
        ({"email": ADA, "organization": "acme", "reason": REASON, "minutes": "0"}, 400, TOO_SHORT),
        ({"email": ADA, "organization": "acme", "reason": REASON, "minutes": "soon"}, 400, BAD_MINUTES),
        ({"email": GINA, "organization": "acme", "reason": REASON}, 400, f"{GINA} is not a member of acme"),
        ({"email": ROOT, "organization": "acme", "reason": REASON}, 400, f"{ROOT} is not a member of acme"),
        ({"email": ADA, "organization": "initech", "reason": REASON}, 400, "there is no Organization named 'initech'"),
    ]  # fmt: skip
    own = root.http.cookies.get(cookie_names().access)
    for data, status, sentence in cases:
        answer = root.post("/console/platform/impersonations", data)
        assert (answer.status_code, sentence in html.unescape(answer.text)) == (status, True), data
    forged = root.post("/console/platform/impersonations", {"email": ADA, "organization": "acme", "reason": REASON},
                       csrf=False)  # fmt: skip
    assert (forged.status_code, CSRF_REFUSED in forged.text) == (403, True)
    assert root.http.cookies.get(cookie_names().access) == own
    assert count(site, Impersonation) == 0
    assert count(site, AuditLog) == 0


def test_a_platform_admin_ends_an_impersonation_from_the_page(site: ConsoleSite) -> None:
    support = site.browser(ROOT)
    support.post("/console/platform/impersonations", {"email": UMA, "organization": "acme", "reason": REASON})
    root = site.browser(ROOT)
    listed = root.get("/console/platform").text
    found = re.search(r'action="/console/platform/impersonations/(\d+)/end"', listed)
    assert found is not None
    assert REASON in listed
    assert root.post("/console/platform/impersonations/999/end").status_code == 404
    ended = root.post(f"/console/platform/impersonations/{found.group(1)}/end")
    assert ended.headers["location"] == "/console/platform?done=Impersonation+ended"
    assert support.get("/console").status_code == 303  # the member's session ended with it
    assert audit_rows(site, "impersonation.ended")[0] == (ROOT, None, None)


def test_global_maintenance_is_turned_on_and_off_from_the_page(site: ConsoleSite) -> None:
    root = site.browser(ROOT)
    bad = root.post("/console/platform/maintenance", {"message": "Racks", "until": "later"})
    assert bad.status_code == 400
    assert "until &#39;later&#39; is neither a time" in bad.text
    empty = root.post("/console/platform/maintenance", {"message": " ", "until": "2h"})
    assert empty.status_code == 400
    assert audit_rows(site, "maintenance.global_on") == []
    on = root.post(
        "/console/platform/maintenance", {"message": "Moving racks", "until": "2h", "show_on_status_pages": "on"}
    )
    assert on.headers["location"] == "/console/platform?done=Global+maintenance+is+on%3A+nobody+is+paged"
    with site.sessions() as session:
        status = current(session, now=site.clock())
    assert (status.on, status.message, status.until, status.show_on_status_pages) == (
        True, "Moving racks", site.clock() + timedelta(hours=2), True,
    )  # fmt: skip
    page = root.get("/console/platform").text
    assert "Global maintenance: nobody is paged until" in page
    assert "Turn it off" in page
    root.post("/console/platform/maintenance/off")
    with site.sessions() as session:
        assert current(session, now=site.clock()).on is False
    again = root.post("/console/platform/maintenance/off")
    assert (again.status_code, "global maintenance is not on" in again.text) == (400, True)
    assert [row[0] for row in audit_rows(site, "maintenance.global_on") + audit_rows(site, "maintenance.global_off")] == [
        ROOT, ROOT,
    ]  # fmt: skip


def test_every_organization_s_audit_log_and_one_of_them(site: ConsoleSite) -> None:
    with site.sessions.begin() as session:
        audit.record(session, Actor(name=ADA, organization="acme"), "member.poked", now=site.clock())
        audit.record(session, Actor(name=GINA, organization="globex"), "member.poked", now=site.clock())
    root = site.browser(ROOT)
    every = root.get("/console/platform/audit").text
    assert ADA in every
    assert GINA in every
    one = root.get("/console/platform/audit?organization=globex").text
    assert GINA in one
    assert ADA not in one
    assert 'href="/api/v1/audit?organization=globex&amp;format=jsonl"' in one


def test_the_system_page_shows_workers_leases_the_alerter_the_outbox_and_the_database(site: ConsoleSite) -> None:
    now = site.clock()
    with site.sessions.begin() as session:
        make = monitor_factory(session)
        ids = [make(namespace="acme", locations=("eu-west",)).resource_id for _ in range(3)]
        ensure_leases(session, ids, "eu-west")  # as every worker of the location does
        assert (
            worker_holding(session, "probe-eu-1", "eu-west", ids[:2], now=now, until=now + timedelta(seconds=30)) == 2
        )
        worker_holding(session, "probe-eu-2", "eu-west", [], now=now - timedelta(minutes=5), until=now)
        leader(session, "alerter", "alerter-7f3c", now=now, until=now + timedelta(seconds=6))
        outbox_message(session, "a", "pending", created_at=now - timedelta(minutes=3))
        outbox_message(session, "b", "failed", created_at=now - timedelta(minutes=1))
        outbox_message(session, "c", "sent", created_at=now - timedelta(hours=1))
    answer = site.browser(ROOT).get("/console/platform/system")
    assert answer.status_code == 200
    page = text(answer.text)
    assert "eu-west 3 monitors, 1 owned by no worker." in page
    assert "probe-eu-1 live" in page
    assert "probe-eu-2 silent" in page
    assert re.search(r"probe-eu-1 live \S+ \S+ 2 ", page)
    assert "Active alerter: active alerter-7f3c" in page
    assert "Backlog: 2 messages, the oldest queued" in page
    assert "(180 s ago)" in page
    assert "A secret" not in page
    assert "someone@example.com" not in page
    assert f"{head_revision()} at head" in page
    dialect = site.sessions.kw["bind"].dialect.name
    assert f"Dialect {dialect}" in page
