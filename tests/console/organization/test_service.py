"""spectra.console.organization.service on its own: the policy before anything is read, token expiry
choices, and the audit log's pages at their edges; on SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import api_tokens, audit, policy
from spectra.auth.identity import Actor
from spectra.console.organization import service
from spectra.store import Role
from spectra.store.accounts import AuditLog
from tests.factories.accounts import member
from tests.factories.platform import tenant
from tests.support.web import NOW


def test_a_user_is_refused_before_anything_is_read_or_audited(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        tenant(session, "acme", ["acme"])
        uma = member(session, "uma@acme.example", "acme", Role.USER)
        with pytest.raises(policy.Forbidden, match=r"the role user does not allow members\.manage"):
            service.overview(session, uma, actor=Actor.of(uma), now=NOW)
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 0
        lists = service.token_lists(session, uma, now=NOW)
        assert (lists.own, lists.members, lists.admin) == ([], None, False)
        assert lists.scopes == ("read", "incidents:write", "statuspages:write")


def test_standalone_s_organization_has_no_plan(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        ada = member(session, "ada@example.com", "", Role.ADMIN)
        found = service.overview(session, ada, actor=Actor.of(ada), now=NOW)
    assert (found.organization, found.tenant, [m.email for m in found.members]) == ("", None, ["ada@example.com"])


@pytest.mark.parametrize(("choice", "days"), [("", None), ("7", 7), ("365", 365)])
def test_token_expiry_choices(choice: str, days: int | None) -> None:
    assert service.expiry(choice, now=NOW) == (None if days is None else NOW + timedelta(days=days))


@pytest.mark.parametrize("choice", ["1", "-7", "never", "30d"])
def test_other_expiries_are_refused(choice: str) -> None:
    with pytest.raises(api_tokens.TokenProblem, match=service.BAD_EXPIRY):
        service.expiry(choice, now=NOW)


@pytest.mark.parametrize(("records", "pages"), [(0, [0]), (3, [3]), (4, [3, 1]), (6, [3, 3])])
def test_audit_pages_end_where_the_records_do(sessions: sessionmaker[Session], records: int, pages: list[int]) -> None:
    with sessions.begin() as session:
        for n in range(records):
            audit.record(session, Actor(name="ada@acme.example", organization="acme"), f"member.n{n}", now=NOW)
    where = audit.AuditFilter(organization="acme")
    seen, before = [], None
    with sessions() as session:
        while True:
            page = service.audit_page(session, where, before=before, limit=3)
            seen.append(len(page.records))
            if page.following is None:
                break
            before = page.following
    assert seen == pages
