"""Identity tables: users, memberships, sessions and refresh tokens, API tokens, the audit log."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.store import (
    ApiToken,
    AuditLog,
    Impersonation,
    Membership,
    RecoveryCode,
    RefreshToken,
    Role,
    User,
    UserSession,
    UserStatus,
)

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_user_email_is_normalised_and_unique(session: Session) -> None:
    session.add(User(email="Alice@Example.com"))
    session.commit()
    user = session.scalars(sa.select(User)).one()
    assert (user.email, user.status, user.platform_admin, user.mfa_enabled) == (
        "alice@example.com",
        UserStatus.ACTIVE,
        False,
        False,
    )
    session.add(User(email="alice@example.COM"))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_one_membership_per_organization(session: Session) -> None:
    user = User(email="bob@example.com", memberships=[Membership(organization="acme", role=Role.ADMIN)])
    session.add(user)
    session.commit()
    session.add(Membership(user_id=user.id, organization="acme", role=Role.USER))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()
    session.rollback()
    session.add(Membership(user_id=user.id, organization="globex"))
    session.commit()
    assert sorted(m.organization for m in user.memberships) == ["acme", "globex"]


def test_a_session_family_goes_with_the_user(session: Session) -> None:
    user = User(email="carol@example.com")
    family = UserSession(sid="s" * 43, expires_at=T0 + timedelta(days=1), ip="2001:db8::1")
    family.refresh_tokens = [
        RefreshToken(token_hash=digest("first"), rotated_at=T0),
        RefreshToken(token_hash=digest("second")),
    ]
    user.sessions.append(family)
    session.add(user)
    session.commit()
    session.add_all(
        [
            ApiToken(
                user_id=user.id,
                organization="acme",
                name="ci",
                token_hash=digest("t"),
                prefix="spt_ab12",
                scopes=["read"],
            ),
            RecoveryCode(user_id=user.id, code_hash=digest("code")),
        ]
    )
    session.commit()
    assert (
        session.scalar(sa.select(RefreshToken.session_id).where(RefreshToken.token_hash == digest("first")))
        == family.id
    )

    session.execute(sa.delete(User))
    session.commit()
    for table in (UserSession, RefreshToken, ApiToken, RecoveryCode):
        assert session.scalar(sa.select(sa.func.count()).select_from(table)) == 0


def test_a_refresh_token_digest_is_unique(session: Session) -> None:
    user = User(email="dan@example.com")
    user.sessions = [
        UserSession(sid="a" * 43, expires_at=T0, refresh_tokens=[RefreshToken(token_hash=digest("x"))]),
        UserSession(sid="b" * 43, expires_at=T0, refresh_tokens=[RefreshToken(token_hash=digest("x"))]),
    ]
    session.add(user)
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_an_impersonation_session_names_both_people(session: Session) -> None:
    staff = User(email="staff@spectra.example", platform_admin=True)
    member = User(email="erin@acme.example")
    session.add_all([staff, member])
    session.flush()
    impersonation = Impersonation(
        impersonator_id=staff.id, user_id=member.id, organization="acme", reason="ticket 4711", expires_at=T0
    )
    session.add(impersonation)
    session.flush()
    session.add(UserSession(sid="i" * 43, user_id=member.id, impersonation_id=impersonation.id, expires_at=T0))
    session.commit()
    found = session.scalars(sa.select(UserSession).where(UserSession.impersonation_id.is_not(None))).one()
    assert found.user_id == member.id


def test_audit_log_targets_are_optional_and_records_outlive_users(session: Session) -> None:
    user = User(email="frank@example.com")
    session.add(user)
    session.flush()
    session.add_all(
        [
            AuditLog(at=T0, actor=user.email, actor_user_id=user.id, organization="acme", action="login"),
            AuditLog(
                at=T0 + timedelta(seconds=1),
                actor=user.email,
                actor_user_id=user.id,
                impersonator="staff@spectra.example",
                organization="acme",
                ip="192.0.2.7",
                action="incident.acknowledge",
                target_kind="Incident",
                target_namespace="default",
                target_name="K7Q2",
                details={"via": "console"},
            ),
        ]
    )
    session.commit()
    session.delete(user)
    session.commit()
    rows = session.execute(
        sa.select(AuditLog.action, AuditLog.target_kind, AuditLog.impersonator).order_by(AuditLog.at)
    ).all()
    assert [tuple(row) for row in rows] == [
        ("login", None, None),
        ("incident.acknowledge", "Incident", "staff@spectra.example"),
    ]
