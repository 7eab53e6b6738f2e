"""The organization admins' JSON endpoints (served by spectra.web.admin_routes) answer what the models the
OpenAPI document is made from say (spectra.console.organization.models), field for field and by their
camelCase names only; on SQLite and MariaDB."""

from __future__ import annotations

import pytest
from anyio.from_thread import BlockingPortal
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from spectra.console.organization import models
from spectra.store import Role
from tests.factories.accounts import member
from tests.factories.platform import tenant
from tests.support.console import ConsoleSite

ADA, UMA = "ada@acme.example", "uma@acme.example"


@pytest.fixture
def site(sessions: sessionmaker[Session], portal: BlockingPortal) -> ConsoleSite:
    made = ConsoleSite.make(sessions, portal)
    with sessions.begin() as session:
        tenant(session, "acme", ["acme"])
        member(session, ADA, "acme", Role.ADMIN)
        member(session, UMA, "acme", Role.USER)
    return made


def answer_of(response: object, model: type[BaseModel], status: int = 200) -> BaseModel:
    """The answer as `model`, read by alias only: a snake_case name would be an unknown field."""
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    return model.model_validate(response.json(), by_alias=True, by_name=False)  # type: ignore[attr-defined]


def test_the_members_endpoints_answer_their_models(site: ConsoleSite) -> None:
    ada = site.browser(ADA)
    members = answer_of(ada.get("/api/v1/members"), models.Members)
    assert isinstance(members, models.Members)
    assert [m.email for m in members.items] == [ADA, UMA]
    assert members.next is None
    answer_of(
        ada.api("POST", "/api/v1/members", json={"email": "new@acme.example", "role": "user"}), models.Invited, 201
    )
    answer_of(ada.api("POST", f"/api/v1/members/{UMA}/role", json={"role": "admin"}), models.RoleSet)
    for change in ("disable", "enable", "reset-mfa"):
        answer_of(ada.api("POST", f"/api/v1/members/{UMA}/{change}"), models.MemberChanged)
    answer_of(ada.api("DELETE", "/api/v1/members/new@acme.example"), models.MemberRemoved)
    answer_of(ada.api("PUT", "/api/v1/organization/settings", json={"requireMfa": True}), models.Settings)


def test_the_token_and_audit_endpoints_answer_their_models(site: ConsoleSite) -> None:
    ada = site.browser(ADA)
    made = answer_of(
        ada.api("POST", "/api/v1/tokens", json={"name": "ci", "scopes": ["read"]}), models.TokenCreated, 201
    )
    assert isinstance(made, models.TokenCreated)
    assert made.token.startswith("spt_")
    answer_of(ada.api("POST", "/api/v1/tokens", json={"name": "cd", "scopes": ["admin"],
                                                       "expiresAt": "2027-01-01T00:00:00Z"}), models.TokenCreated, 201)  # fmt: skip
    listed = answer_of(ada.get("/api/v1/tokens"), models.Tokens)
    assert isinstance(listed, models.Tokens)
    assert len(listed.items) == 2
    answer_of(ada.api("DELETE", f"/api/v1/tokens/{made.id}"), models.Token)
    page = answer_of(ada.get("/api/v1/audit?limit=2"), models.AuditPage)
    assert isinstance(page, models.AuditPage)
    assert page.next is not None
    assert len(page.items) == 2
