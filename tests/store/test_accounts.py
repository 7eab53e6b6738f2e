"""Users, sessions and the audit log."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.store import AuditLog, User, UserSession

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_user_email_is_normalised_and_unique(session: Session) -> None:
    session.add(User(email="Alice@Example.com", role="admin"))
    session.commit()
    assert session.scalars(sa.select(User.email)).one() == "alice@example.com"
    session.add(User(email="alice@example.COM", role="viewer"))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_sessions_are_keyed_by_token_hash_and_go_with_the_user(session: Session) -> None:
    token = "raw-session-token"
    user = User(email="bob@example.com", role="viewer", display_name="Bob")
    user.sessions.append(
        UserSession(id=hashlib.sha256(token.encode()).hexdigest(), expires_at=T0 + timedelta(days=1), ip="2001:db8::1")
    )
    session.add(user)
    session.commit()
    assert session.get(UserSession, hashlib.sha256(token.encode()).hexdigest()) is not None
    assert (user.disabled, user.password_hash) == (False, None)

    session.execute(sa.delete(User))
    session.commit()
    assert session.scalar(sa.select(sa.func.count()).select_from(UserSession)) == 0


def test_expired_sessions_query(session: Session) -> None:
    user = User(email="c@example.com", role="viewer")
    user.sessions = [
        UserSession(id="a" * 64, expires_at=T0 - timedelta(seconds=1)),
        UserSession(id="b" * 64, expires_at=T0 + timedelta(hours=1)),
    ]
    session.add(user)
    session.commit()
    assert session.scalars(sa.select(UserSession.id).where(UserSession.expires_at < T0)).all() == ["a" * 64]


def test_audit_log_targets_are_optional(session: Session) -> None:
    session.add_all(
        [
            AuditLog(at=T0, actor="alice@example.com", action="login"),
            AuditLog(
                at=T0 + timedelta(seconds=1),
                actor="alice@example.com",
                action="incident.acknowledge",
                target_kind="Incident",
                target_namespace="default",
                target_name="K7Q2",
                details={"via": "console"},
            ),
        ]
    )
    session.commit()
    rows = session.execute(sa.select(AuditLog.action, AuditLog.target_kind).order_by(AuditLog.at)).all()
    assert [tuple(row) for row in rows] == [("login", None), ("incident.acknowledge", "Incident")]
