"""An organization's admins require two-factor authentication of every member; nobody else can."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.auth import policy
from spectra.auth.identity import Principal
from spectra.auth.organization_settings import require_mfa, requires_mfa
from spectra.store import AuditLog, OrganizationSettings, Role

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
ADMIN = Principal(user_id=1, email="ada@acme.example", organization="acme", role=Role.ADMIN)


def test_an_admin_turns_it_on_and_off_audited(session: Session) -> None:
    assert not requires_mfa(session, "acme")
    assert require_mfa(session, ADMIN, True, now=NOW, ip="192.0.2.9")
    assert not require_mfa(session, ADMIN, True, now=NOW)  # already on: no change, no record
    session.commit()
    assert requires_mfa(session, "acme")
    assert not requires_mfa(session, "globex")
    assert not requires_mfa(session, None)
    assert require_mfa(session, ADMIN, False, now=NOW)
    session.commit()
    assert not requires_mfa(session, "acme")
    actions = session.execute(sa.select(AuditLog.action, AuditLog.organization, AuditLog.ip).order_by(AuditLog.id))
    assert [tuple(row) for row in actions] == [
        ("org.require_mfa_on", "acme", "192.0.2.9"),
        ("org.require_mfa_off", "acme", None),
    ]


@pytest.mark.parametrize(
    ("principal", "refusal"),
    [
        (Principal(user_id=2, email="bo@acme.example", organization="acme", role=Role.USER), policy.Forbidden),
        (
            Principal(
                user_id=1,
                email="ada@acme.example",
                organization="acme",
                role=Role.ADMIN,
                scopes=frozenset({"read"}),
                via="api-token",
            ),
            policy.Forbidden,
        ),
        (
            Principal(user_id=3, email="staff@spectra.example", organization=None, role=None, platform_admin=True),
            policy.Denied,
        ),
    ],
)
def test_nobody_else_may(session: Session, principal: Principal, refusal: type[policy.Denied]) -> None:
    with pytest.raises(refusal):
        require_mfa(session, principal, True, now=NOW)
    assert session.scalar(sa.select(sa.func.count()).select_from(OrganizationSettings)) == 0
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditLog)) == 0
